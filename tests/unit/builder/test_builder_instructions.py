"""Typed instructions: arguments, flags and docker's error messages (checked against dockerd)."""

import pytest

from hostbridge.guest.builder import instructions as ins
from hostbridge.guest.builder.parser import DockerfileParseError, parse


def one(text):
    return ins.from_node(parse("FROM a\n" + text).nodes[1])


def err(text):
    with pytest.raises(DockerfileParseError) as e:
        ins.from_nodes(parse(text).nodes)
    return str(e.value)


def test_from_forms():
    f = ins.from_node(parse("FROM --platform=linux/amd64 busybox:1 As Build\n").nodes[0])
    assert (f.base, f.stage_name, f.platform) == ("busybox:1", "build", "linux/amd64")
    assert err("FROM busybox a b\n") == "dockerfile parse error on line 1: FROM requires either one or three arguments"
    assert err("FROM busybox as 1x\n") == ('dockerfile parse error on line 1: invalid name for build stage: "1x", '
                                           "name can't start with a number or contain symbols")


@pytest.mark.parametrize("text,message", [
    ("ENV\n", "ENV requires at least one argument"),
    ("LABEL\n", "LABEL requires at least one argument"),
    ("ARG\n", "ARG requires at least one argument"),
    ("USER\n", "USER requires exactly one argument"),
    ("WORKDIR\n", "WORKDIR requires exactly one argument"),
    ("STOPSIGNAL\n", "STOPSIGNAL requires exactly one argument"),
    ("MAINTAINER\n", "MAINTAINER requires exactly one argument"),
    ("EXPOSE\n", "EXPOSE requires at least one argument"),
    ("VOLUME\n", "VOLUME requires at least one argument"),
    ("VOLUME [\"\"]\n", "VOLUME specified can not be an empty string"),
    ("SHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
    ("COPY a\n", "COPY requires at least two arguments, but only one was provided. Destination could not be determined."),
    ("ADD a\n", "ADD requires at least two arguments, but only one was provided. Destination could not be determined."),
    ("COPY --bogus=1 a b\n", "Unknown flag: bogus"),
    ("ADD --from=x a b\n", "Unknown flag: from"),
    ("COPY --from=a --from=b a b\n", "Duplicate flag specified: from"),
    ("COPY --chown a b\n", "Missing a value on flag: chown"),
    ("COPY a <<EOF\nx\nEOF\n", "COPY cannot accept a heredoc as a destination"),
    ("RUN --mount=type=cache,target=/x true\n", "the --mount option requires BuildKit"),
    ("RUN --network=none true\n", "the --network option requires BuildKit"),
    ("RUN --bogus true\n", "Unknown flag: bogus"),
    ("COPY --parents a b\n", "Unknown flag: parents"),
    ("COPY --link=maybe a b\n", "expecting boolean value for flag link, not: maybe"),
    ("HEALTHCHECK --interval=1x CMD a\n", 'time: unknown unit "x" in duration "1x"'),
    ("HEALTHCHECK --interval=10us CMD a\n", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --retries=-1 CMD a\n", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK FOO x\n", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK CMD\n", "Missing command after HEALTHCHECK CMD"),
    ("ONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER x\n", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("BOGUS x\n", "unknown instruction: BOGUS"),
])
def test_errors_name_line_2(text, message):
    assert err("FROM a\n" + text) == "dockerfile parse error on line 2: " + message


def test_env_and_label_pairs_expand_all_with_the_env_before():
    env = one('ENV A=1 B="$A two" C=${A:-d}\n')
    values = {"A": "old"}
    from hostbridge.guest.builder.shellwords import Lexer
    env.expand(lambda w: Lexer().process_word(w, values))
    assert env.pairs == [["A", "1"], ["B", "old two"], ["C", "old"]]
    legacy = one("ENV K  a \"b\" c\n")
    legacy.expand(lambda w: Lexer().process_word(w, {}))
    assert legacy.pairs == [["K", "a b c"]]


def test_arg_names_and_defaults():
    a = one("ARG A B=2 C=\n")
    assert a.args == [["A", None], ["B", "2"], ["C", ""]]


def test_expose_sorted_as_docker():
    assert one("EXPOSE 80 443/udp 8080\n").ports == ["443/udp", "80", "8080"]


def test_copy_fields():
    c = one("COPY --from=build --chown=1:2 --chmod=640 a b /d/\n")
    assert (c.sources, c.dest, c.from_, c.chown, c.chmod, c.is_add) == (["a", "b"], "/d/", "build", "1:2", "640", False)
    a = one('ADD ["a b", "/d"]\n')
    assert (a.sources, a.dest, a.is_add) == (["a b"], "/d", True)


def test_healthcheck_config_and_history_text():
    h = one("HEALTHCHECK --interval=5s --retries=3 CMD echo ok\n")
    assert h.health == {"Test": ["CMD-SHELL", "echo ok"], "Interval": 5000000000, "Retries": 3}
    # dockerd 20.10: HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" '\x03'}
    assert h.history_text() == '&{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" \'\\x03\'}'
    j = one('HEALTHCHECK --timeout=1m30s --start-period=500ms CMD ["a", "b"]\n')
    assert j.health == {"Test": ["CMD", "a", "b"], "Timeout": 90 * 10 ** 9, "StartPeriod": 5 * 10 ** 8}
    assert j.history_text() == '&{["CMD" "a" "b"] "0s" "1m30s" "500ms" \'\\x00\'}'
    assert one("HEALTHCHECK NONE\n").health == {"Test": ["NONE"]}


def test_onbuild_expression_is_the_original_text():
    assert one("onbuild   RUN echo  hi\n").expression == "RUN echo  hi"


def test_original_text_for_step_lines():
    assert one("RUN echo a \\\n  b\n").original == "RUN echo a   b"
