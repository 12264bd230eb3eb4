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


def test_control_structures_variables_and_functions():
    obj = {"Nets": {"b": {"IP": "10.0.0.2"}, "a": {"IP": "10.0.0.1"}}, "Cmd": ["sh", "-c"], "Empty": [],
           "Name": "/web", "On": True, "N": 3}
    assert Template("{{range .Nets}}{{.IP}} {{end}}").render(obj) == "10.0.0.1 10.0.0.2 "
    assert Template("{{range $k, $v := .Nets}}{{$k}}={{$v.IP}};{{end}}").render(obj) == "a=10.0.0.1;b=10.0.0.2;"
    assert Template("{{range .Empty}}x{{else}}none{{end}}").render(obj) == "none"
    assert Template("{{if .On}}yes{{else}}no{{end}} {{if not .On}}a{{else if .N}}b{{else}}c{{end}}").render(obj) \
        == "yes b"
    assert Template("{{with .Nets.a}}{{.IP}}{{end}}{{with .Empty}}x{{else}}-{{end}}").render(obj) == "10.0.0.1-"
    assert Template('{{printf "%s:%d|%-4s|%q" .Name .N "ab" "x"}}').render(obj) == '/web:3|ab  |"x"'
    assert Template('{{len .Cmd}} {{index .Cmd 1}} {{join .Cmd ","}} {{split "a,b" ","}}').render(obj) \
        == "2 -c sh,-c [a b]"
    assert Template('{{.Name | upper}} {{lower "AB"}} {{title "hello world"}} {{json .Cmd}}').render(obj) \
        == '/WEB ab Hello World ["sh","-c"]'
    assert Template('{{$n := .Name}}{{$n}} {{(index .Nets "a").IP}} {{eq .N 3}} {{pad "x" 1 2}}|').render(obj) \
        == "/web 10.0.0.1 true  x  |"
    assert Template("{{- .Name -}}   \n {{- .N}}").render(obj) == "/web3"


def test_template_errors_read_as_go_s():
    with pytest.raises(TemplateError, match='function "nosuch" not defined'):
        Template("{{nosuch .ID}}")
    with pytest.raises(TemplateError, match="unexpected EOF"):
        Template("{{if .ID}}x")
    with pytest.raises(TemplateError, match="range can't iterate over web"):
        Template("{{range .Names}}x{{end}}").render(ROW)


def test_wants_field():
    assert wants_field("{{.Size}}", "Size")
    assert wants_field("{{json .}}", "Size")
    assert not wants_field("{{.ID}}", "Size")
