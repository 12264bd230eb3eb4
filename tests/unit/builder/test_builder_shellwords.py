"""docker's ShellLex: expansion forms, quotes, escapes, word splitting."""

import pytest

from hostbridge.guest.builder.shellwords import Lexer, ShellSyntaxError

ENV = {"A": "x y", "E": "", "P": "/usr/local/bin/app.tar.gz", "N": "1"}


@pytest.mark.parametrize("word,expected", [
    ("$A", "x y"),
    ("${A}z", "x yz"),
    ("$Az", ""),  # the name is Az, unset
    ("pre-$N-post", "pre-1-post"),
    ("$UNSET", ""),
    ("${UNSET:-def}", "def"),
    ("${E:-def}", "def"),
    ("${N:-def}", "1"),
    ("${UNSET-def}", "def"),
    ("${E-def}", ""),
    ("${N:+alt}", "alt"),
    ("${E:+alt}", ""),
    ("${UNSET:+alt}", ""),
    ("${E+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${UNSET:-$N}", "1"),
    ("${UNSET:-${N:+nested}}", "nested"),
    ("${P#*/}", "usr/local/bin/app.tar.gz"),
    ("${P##*/}", "app.tar.gz"),
    ("${P%.*}", "/usr/local/bin/app.tar"),
    ("${P%%.*}", "/usr/local/bin/app"),
    ("${A/ /_}", "x_y"),
    ("$", "$"),
    ("a$", "a$"),
    ("$1", ""),
    ("'$A'", "$A"),
    ('"$A"', "x y"),
    ('"a \\"q\\" \\$A \\\\ \\n"', 'a "q" $A \\ \\n'),
    ("a\\ b", "a b"),
    ("\\$A", "$A"),
    ("a\\", "a"),
    ("'a\\b'", "a\\b"),
    ('x"$A"\'$A\'', "xx y$A"),
])
def test_process_word(word, expected):
    assert Lexer().process_word(word, ENV) == expected


@pytest.mark.parametrize("word,expected", [
    ("a b  c", ["a", "b", "c"]),
    ("$A", ["x", "y"]),  # unquoted expansion is split
    ('"$A"', ["x y"]),
    ("'a b' c", ["a b", "c"]),
    ("a\\ b c", ["a b", "c"]),
    ("${UNSET}", []),
    ("80 $N/udp", ["80", "1/udp"]),
])
def test_process_words(word, expected):
    assert Lexer().process_words(word, ENV) == expected


def test_backtick_escape():
    lx = Lexer("`")
    assert lx.process_word("a` b", {}) == "a b"
    assert lx.process_word("c:\\dir", {}) == "c:\\dir"
    assert lx.process_word('"`"x`$y"', {"y": "Y"}) == '"x$y'


def test_skip_unset_keeps_names():
    lx = Lexer(skip_unset=True)
    assert lx.process_word("$X ${Y} ${Z:-d} $N", {"N": "1"}) == "$X ${Y} ${Z:-d} 1"


@pytest.mark.parametrize("word,message", [
    ('"abc', 'failed to process "\\"abc": unexpected end of statement while looking for matching double-quote'),
    ("'abc", "unexpected end of statement while looking for matching single-quote"),
    ("${A", "syntax error: missing '}'"),
    ("${}", "syntax error: bad substitution"),
    ("${:x}", "syntax error: bad substitution"),
    ("${UNSET:?oops}", "UNSET: oops"),
    ("${UNSET:?}", "UNSET: is not allowed to be unset"),
    ("${E:?}", "E: is not allowed to be empty"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${A:x}", "unsupported modifier (x) in substitution"),
    ("${A!}", "unsupported modifier (!) in substitution"),
])
def test_errors(word, message):
    with pytest.raises(ShellSyntaxError) as e:
        Lexer().process_word(word, ENV)
    assert message in str(e.value)


def test_error_message_names_the_word_as_docker():
    # dockerd 20.10: failed to process "${B:?oops}": B: oops
    with pytest.raises(ShellSyntaxError) as e:
        Lexer().process_word("${B:?oops}", {})
    assert str(e.value) == 'failed to process "${B:?oops}": B: oops'


def test_raw_quotes_keep_quote_characters():
    assert Lexer(raw_quotes=True).process_words("<<'EOF' \"x\"", {}) == ["<<'EOF'", '"x"']


def test_env_and_label_expansion_matches_dockerd():
    """A battery of quoting and substitution cases; the expected Env and Labels are what
    dockerd 20.10's classic builder made of the same file (data/expansion.*)."""
    import json
    import os

    from hostbridge.guest.builder import imageconfig as ic
    from hostbridge.guest.builder import instructions as ins
    from hostbridge.guest.builder import parser
    here = os.path.join(os.path.dirname(__file__), "data")
    with open(os.path.join(here, "expansion.Dockerfile")) as f:
        nodes = parser.parse(f.read()).nodes
    with open(os.path.join(here, "expansion.dockerd-20.10.json")) as f:
        env_text, labels_text = f.read().strip().split("] {", 1)
    expected_env, expected_labels = json.loads(env_text + "]"), json.loads("{" + labels_text)
    config, labels = {"Env": ["PATH=" + ic.DEFAULT_PATH]}, {}
    for node in nodes[1:]:
        inst = ins.from_node(node)
        env = ic.env_map(config["Env"])
        inst.expand(lambda w: Lexer().process_word(w, env))
        for k, v in inst.pairs:
            if inst.name == "ENV":
                ic.set_env(config, k, v)
            else:
                labels[k] = v
    assert config["Env"] == expected_env
    assert labels == expected_labels
