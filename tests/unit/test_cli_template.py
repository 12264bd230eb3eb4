"""hostbridge.cli.template: the Go-template subset used by --format and inspect -f."""

import pytest

from hostbridge.cli.template import Row, Template, TemplateError, render_rows, wants_field

ROW = {"ID": "abc", "Names": "web", "Image": "busybox", "Status": "Up 1 second", "Command": '"a<b"'}
COLUMNS = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}


def test_fields_and_literals():
    assert Template("{{.ID}}: {{.Names}}").render(ROW) == "abc: web"


def test_nested_fields_json_index_and_go_printing():
    obj = {"State": {"Status": "exited", "Running": False}, "Config": {"Cmd": ["sh", "-c", "x"],
                                                                       "Labels": {"a": "1"}}}
    assert Template("{{.State.Status}} {{.State.Running}}").render(obj) == "exited false"
    assert Template("{{json .Config.Cmd}}").render(obj) == '["sh","-c","x"]'
    assert Template('{{index .Config.Labels "a"}}').render(obj) == "1"
    assert Template("{{.Config.Labels}} {{.Config.Cmd}}").render(obj) == "map[a:1] [sh -c x]"
    # docker runs templates with missingkey=error (checked against the stock CLI)
    with pytest.raises(TemplateError, match='at <.Nope>: map has no entry for key "Nope"'):
        Template("{{.Nope}}").render(obj)
    with pytest.raises(TemplateError, match="at <.Nope>: can't evaluate field Nope"):
        Template("{{.ID}} {{.Nope}}").render(Row(ID="x"))
    with pytest.raises(TemplateError, match="unclosed action"):
        Template("{{.ID")


def test_table_has_headers_and_aligned_columns():
    out = render_rows("table {{.ID}}\\t{{.Names}}\\t{{.Status}}", [ROW], COLUMNS)
    assert out == "CONTAINER ID   NAMES     STATUS\nabc            web       Up 1 second\n"


def test_json_of_a_row_sorts_keys_and_escapes_html_like_docker():
    out = render_rows("{{json .}}", [{"b": "x", "a": "<"}], {})
    assert out == '{"a":"\\u003c","b":"x"}\n'


def test_unsupported_action_is_a_clear_error():
    with pytest.raises(TemplateError, match="unsupported"):
        Template("{{range .Names}}x{{end}}").render(ROW)


def test_wants_field():
    assert wants_field("{{.Size}}", "Size")
    assert wants_field("{{json .}}", "Size")
    assert not wants_field("{{.ID}}", "Size")
