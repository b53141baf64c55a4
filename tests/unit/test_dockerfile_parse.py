"""The Dockerfile parser and word expansion of berth.core.build, and .dockerignore matching,
against what Docker's classic builder does."""

from __future__ import annotations

import pytest

from berth.core.build.ignore import Matcher
from berth.core.build.parser import DockerfileError, Lexer, parse, split_words


def test_continuations_comments_and_the_step_text():
    df = parse("# syntax=docker/dockerfile:1\nFROM busybox AS base\n"
               "# a comment\n"
               "RUN echo a \\\n"
               "    # a comment inside a continuation is dropped\n"
               "\n"
               "    && echo b\n"
               "  cmd [\"sh\", \"-c\", \"echo hi\"]\n")
    assert df.syntax == "docker/dockerfile:1" and df.escape == "\\"
    from_, run, cmd = df.instructions
    assert from_.cmd == "FROM" and from_.words == ["busybox", "AS", "base"]
    assert run.original == "RUN echo a     && echo b" and run.line == 4 and not run.json
    assert run.words == ["echo a     && echo b"]
    assert cmd.cmd == "CMD" and cmd.json and cmd.words == ["sh", "-c", "echo hi"]
    assert [s.name for s in df.stages()] == ["base"]


def test_escape_directive_and_exec_form_fallback():
    df = parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  /w\nCMD [not json\n")
    assert df.escape == "`"
    assert df.instructions[1].words == ["dir c:\\   /w"]
    assert not df.instructions[2].json and df.instructions[2].words == ["[not json"]
    with pytest.raises(DockerfileError, match="invalid ESCAPE"):
        parse("# escape=x\nFROM scratch\n")


def test_a_directive_after_an_instruction_is_a_comment():
    df = parse("FROM scratch\n# escape=`\n")
    assert df.escape == "\\" and len(df.instructions) == 1


def test_env_label_arg_pairs_keep_their_quotes_for_expansion():
    df = parse('FROM scratch\nENV A=1 B="two words" C=\'$x\'\nENV LEGACY some value\nLABEL "k"="v" x=y\n'
               "ARG V\nARG W=default\n")
    env, legacy, label, arg, arg2 = df.instructions[1:]
    assert env.pairs == [("A", "1"), ("B", '"two words"'), ("C", "'$x'")]
    assert legacy.pairs == [("LEGACY", "some value")]
    assert label.pairs == [('"k"', '"v"'), ("x", "y")]
    assert arg.pairs == [("V", None)] and arg2.pairs == [("W", "default")]


def test_flags_and_copy_forms():
    df = parse('FROM --platform=linux/amd64 busybox\nCOPY --from=base --chown=1:2 --chmod=755 a b /d/\n'
               'ADD ["x y", "/dst"]\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/\n'
               "HEALTHCHECK NONE\n")
    from_, copy, add, check, none = df.instructions
    assert from_.flags == {"platform": "linux/amd64"} and from_.words == ["busybox"]
    assert copy.flags == {"from": "base", "chown": "1:2", "chmod": "755"} and copy.words == ["a", "b", "/d/"]
    assert add.json and add.words == ["x y", "/dst"]
    assert check.flags == {"interval": "5s", "retries": "3"} and check.words == ["CMD-SHELL", "curl -f http://x/"]
    assert none.words == ["NONE"]


@pytest.mark.parametrize("text, message", [
    ("FROM scratch\nFOO bar\n", "dockerfile parse error line 2: unknown instruction: FOO"),
    ("RUN true\n", "No build stage in current context"),
    ("", "No build stage in current context"),
    ("FROM scratch\nRUN --mount=type=cache,target=/x true\n", "BuildKit syntax, not supported"),
    ("FROM scratch\nRUN <<EOF\necho hi\nEOF\n", "heredocs"),
    ("FROM scratch\nCOPY --link a /b\n", "BuildKit syntax, not supported"),
    ("FROM scratch\nCOPY --bogus=1 a /b\n", "Unknown flag: bogus"),
    ("FROM scratch\nCOPY a\n", "COPY requires at least two arguments"),
    ("FROM a b\n", "FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", "invalid name for build stage"),
    ("FROM scratch\nENV A=1 B\n", "can't find = in \"B\""),
    ("FROM scratch\nONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM scratch\nSHELL /bin/bash -c\n", "SHELL requires the arguments to be in JSON form"),
    ("FROM scratch\nHEALTHCHECK BOGUS x\n", "Unknown type"),
])
def test_bad_dockerfiles_say_what_is_wrong(text, message):
    with pytest.raises(DockerfileError) as info:
        parse(text).stages()
    assert message in str(info.value) and "\n" not in str(info.value)


ENV = {"A": "a", "EMPTY": "", "SP": "x y"}


@pytest.mark.parametrize("word, expected", [
    ("$A", "a"), ("${A}", "a"), ("pre${A}post", "prEapost".replace("E", "e")),
    ("${NOPE:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""), ("${NOPE-dflt}", "dflt"),
    ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${NOPE+alt}", ""),
    ("${NOPE:-$A}", "a"), ("'$A'", "$A"), ('"$A b"', "a b"), ("\\$A", "$A"), ('"\\$A"', "$A"),
    ("$", "$"), ("$1x", "$1x"), ("${A:-x}${NOPE}", "a"), ('"${NOPE:-a b}"', "a b"),
])
def test_word_expansion(word, expected):
    assert Lexer().word(word, ENV) == expected


def test_words_split_after_expansion_and_required_variables():
    assert Lexer().words("$SP 'q r' 80/tcp", ENV) == ["x", "y", "q r", "80/tcp"]
    with pytest.raises(DockerfileError, match="NOPE: must be set"):
        Lexer().word("${NOPE:?must be set}", ENV)
    assert Lexer("`").word("`$A", ENV) == "$A"
    assert split_words('a "b c" d\\ e') == ["a", '"b c"', "d\\ e"]


@pytest.mark.parametrize("patterns, path, excluded", [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),
    (["node_modules"], "node_modules/x/y.js", True),
    (["/build/"], "build/out", True),
    (["dir/**"], "dir/a/b", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["docs", "!docs/keep.txt"], "docs/keep.txt", False),
    (["docs", "!docs/keep.txt"], "docs/other.txt", True),
    (["!a", "a"], "a", True),
    (["a?c"], "abc", True),
    (["a[0-9]"], "a5", True),
    (["./x/../y"], "y", True),
])
def test_dockerignore_rules(patterns, path, excluded):
    assert Matcher(patterns).excluded(path) is excluded


def test_dockerignore_file_comments_and_blank_lines():
    m = Matcher.parse("# comment\n\n  *.tmp  \n!keep.tmp\n")
    assert m.excluded("x.tmp") and not m.excluded("keep.tmp") and not m.excluded("x.txt")
