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
