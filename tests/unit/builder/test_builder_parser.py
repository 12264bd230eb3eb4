"""The Dockerfile parser against docker's behaviour (messages checked against dockerd's)."""

import pytest

from hostbridge.guest.builder import instructions as ins
from hostbridge.guest.builder.parser import DockerfileParseError, extract_flags, parse, parse_words


def nodes(text):
    return parse(text).nodes


def test_instruction_names_are_case_insensitive_and_lines_counted():
    ns = nodes("from busybox\n\n# comment\nRun echo hi\ncMd [\"sh\"]\n")
    assert [(n.name, n.start_line) for n in ns] == [("from", 1), ("run", 4), ("cmd", 5)]


def test_comments_and_blank_lines_are_skipped_and_leading_space_allowed():
    ns = nodes("# top\n   # indented comment\n\n   FROM busybox\n\t\tRUN x\n")
    assert [(n.name, n.args, n.start_line) for n in ns] == [("from", ["busybox"], 4), ("run", ["x"], 5)]


def test_line_continuation_joins_lines_and_spans_them():
    (_, run) = nodes("FROM a\nRUN echo a \\\n    b \\\n  c\n")
    assert run.args == ["echo a     b   c"]
    assert (run.start_line, run.end_line) == (2, 4)


def test_comment_lines_inside_a_continuation_are_dropped():
    (_, run) = nodes("FROM a\nRUN echo a \\\n# not part\n  b\n")
    assert run.args == ["echo a   b"]


def test_empty_continuation_line_warns_and_continues():
    r = parse("FROM a\nRUN echo a \\\n\n  b\n")
    assert r.nodes[1].args == ["echo a   b"]
    assert r.warnings == ["Empty continuation line found in: RUN echo a   b"]


def test_continuation_at_end_of_file():
    (_, run) = nodes("FROM a\nRUN echo a \\")
    assert run.args == ["echo a"]


def test_backslash_followed_by_spaces_still_continues():
    (_, run) = nodes("FROM a\nRUN a \\   \n b\n")
    assert run.args == ["a  b"]


def test_escape_directive_backtick():
    r = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  x\n")
    assert r.escape == "`"
    assert r.nodes[1].args == ["dir c:\\   x"]


def test_escape_directive_after_instruction_is_a_comment():
    r = parse("FROM a\n# escape=`\nRUN a `\n")
    assert r.escape == "\\"
    assert r.nodes[1].args == ["a `"]


def test_directives_only_before_first_comment_or_blank():
    r = parse("# a comment\n# escape=`\nFROM a\n")
    assert r.escape == "\\"
    r = parse("\n# escape=`\nFROM a\n")
    assert r.escape == "\\"


def test_directive_spacing_and_case():
    r = parse("#  ESCAPE  =  `\n#syntax=docker/dockerfile:1.4\nFROM a\n")
    assert (r.escape, r.syntax) == ("`", "docker/dockerfile:1.4")


def test_syntax_directive_is_recorded_only():
    r = parse("# syntax=docker/dockerfile:1\nFROM a\n")
    assert r.syntax == "docker/dockerfile:1" and [n.name for n in r.nodes] == ["from"]


def test_bad_escape_directive():
    with pytest.raises(DockerfileParseError) as e:
        parse("# escape=x\nFROM a\n")
    assert "invalid escape token 'x' does not match ` or \\" in str(e.value)
    assert e.value.line == 1


def test_duplicate_directive():
    with pytest.raises(DockerfileParseError, match="only one escape parser directive can be used"):
        parse("# escape=`\n# escape=`\nFROM a\n")


def test_bom_and_crlf():
    (f, r) = nodes("\ufeffFROM a\r\nRUN b \\\r\n c\r\n")
    assert f.args == ["a"] and r.args == ["b  c"]


def test_empty_file_and_only_comments():
    for text in ("", "# c\n\n"):
        with pytest.raises(DockerfileParseError, match="file with no instructions"):
            parse(text)


def test_json_and_shell_forms():
    (_, a, b, c, d) = nodes('FROM a\nRUN ["echo", "hi"]\nRUN echo "hi"\nCMD ["a" "b"]\nENTRYPOINT []\n')
    assert (a.args, a.json) == (["echo", "hi"], True)
    assert (b.args, b.json) == (['echo "hi"'], False)
    assert (c.args, c.json) == (['["a" "b"]'], False)  # not JSON: kept as shell form
    assert (d.args, d.json) == ([], True)


def test_json_with_non_strings_is_an_error_with_line():
    with pytest.raises(DockerfileParseError) as e:
        parse('FROM a\nCMD ["a", 1]\n')
    assert str(e.value) == ("dockerfile parse error on line 2: when using JSON array syntax, "
                            "arrays must be comprised of strings only")


def test_copy_and_volume_shell_form_split_on_whitespace():
    (_, c, v, vj) = nodes('FROM a\nCOPY a  b\t/c/\nVOLUME /x /y\nVOLUME ["/j k"]\n')
    assert c.args == ["a", "b", "/c/"]
    assert v.args == ["/x", "/y"] and not v.json
    assert vj.args == ["/j k"] and vj.json


def test_flags_are_split_off():
    (_, c) = nodes('FROM a\nCOPY --from=build --chown="1 2" --link src dst\n')
    assert c.flags == ["from=build", "chown=1 2", "link"]
    assert c.args == ["src", "dst"]


def test_extract_flags_double_dash_ends_flags():
    assert extract_flags("--a=1 -- --b c") == ("--b c", ["a=1"])
    assert extract_flags("-x y") == ("-x y", [])


def test_env_new_and_legacy_forms():
    (_, a, b) = nodes('FROM a\nENV A=1 B="x y" C=a\\ b\nENV LEG  legacy  value\n')
    assert a.args == ["A", "1", "B", '"x y"', "C", "a\\ b"] and not a.legacy_kv
    assert b.args == ["LEG", "legacy  value"] and b.legacy_kv


def test_env_errors():
    with pytest.raises(DockerfileParseError, match="line 2: ENV must have two arguments"):
        parse("FROM a\nENV A\n")
    with pytest.raises(DockerfileParseError, match="can't find = in \"B\""):
        parse("FROM a\nENV A=1 B\n")
    with pytest.raises(DockerfileParseError, match="LABEL must have two arguments"):
        parse("FROM a\nLABEL x\n")


def test_parse_words_keeps_quotes_and_escapes():
    assert parse_words('a="b c" d=\'e f\' g=h\\ i') == ['a="b c"', "d='e f'", "g=h\\ i"]
    assert parse_words('x=""') == ['x=""']


def test_healthcheck_node():
    (_, h1, h2) = nodes('FROM a\nHEALTHCHECK --interval=5s CMD curl -f x\nHEALTHCHECK CMD ["a", "b"]\n')
    assert (h1.flags, h1.args, h1.json) == (["interval=5s"], ["CMD", "curl -f x"], False)
    assert (h2.args, h2.json) == (["CMD", "a", "b"], True)


def test_onbuild_holds_a_sub_instruction():
    (_, o) = nodes("FROM a\nONBUILD RUN echo hi\n")
    assert o.sub.name == "run" and o.sub.args == ["echo hi"]


def test_heredoc_run():
    (_, r, c) = nodes("FROM a\nRUN <<EOF\necho hi\n  echo two\nEOF\nCMD x\n")
    assert r.args == ["<<EOF"]
    [doc] = r.heredocs
    assert (doc.name, doc.content, doc.expand, doc.chomp) == ("EOF", "echo hi\n  echo two\n", True, False)
    assert (r.start_line, r.end_line) == (2, 5)
    assert c.start_line == 6


def test_heredoc_chomp_and_quoted_delimiters():
    (_, r) = nodes('FROM a\nRUN <<-"EOT" cat\n\tline $X\n\tEOT\n')
    [doc] = r.heredocs
    assert (doc.name, doc.expand, doc.chomp) == ("EOT", False, True)
    assert doc.content == "\tline $X\n" and doc.data() == "line $X\n"
    (_, r) = nodes("FROM a\nRUN <<'E'\nx\nE\n")
    assert r.heredocs[0].expand is False


def test_multiple_heredocs_and_fd():
    (_, r) = nodes("FROM a\nRUN 3<<A cat /dev/fd/3 <<B\na\nA\nb\nB\n")
    assert [(d.name, d.content, d.fd) for d in r.heredocs] == [("A", "a\n", 3), ("B", "b\n", 0)]


def test_copy_heredoc_source():
    (_, c) = nodes("FROM a\nCOPY <<EOF /dest\nhello\nEOF\n")
    copy = ins.from_node(c)
    assert copy.sources == [] and copy.contents == [["EOF", "hello\n", True]] and copy.dest == "/dest"


def test_heredoc_not_in_json_form_or_other_instructions():
    (_, r, e) = nodes('FROM a\nRUN ["<<EOF"]\nENV A=<<EOF\n')
    assert r.heredocs == [] and e.heredocs == []


def test_unterminated_heredoc():
    with pytest.raises(DockerfileParseError, match="line 2: unterminated heredoc"):
        parse("FROM a\nRUN <<EOF\necho\n")


def test_unknown_instruction_error_has_line_and_upper_name():
    r = parse("FROM busybox\n\n# c\nRUN echo a \\\n  b\nfoo bar\n")
    with pytest.raises(DockerfileParseError) as e:
        ins.from_nodes(r.nodes)
    assert str(e.value) == "dockerfile parse error on line 6: unknown instruction: FOO"
