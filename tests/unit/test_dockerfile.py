"""Dockerfile parsing and variable substitution (minidocker.build.dockerfile), .dockerignore rules
and the history formatting helpers of the builder. No root needed."""

from __future__ import annotations

import os

import pytest

from minidocker.build import dockerfile as dfp
from minidocker.build.builder import go_duration, go_quote_list, parse_duration
from minidocker.build.context import BuildContext
from minidocker.errors import InvalidInput


def test_comments_continuations_and_line_numbers() -> None:
    df = dfp.parse(
        "# a comment\n"
        "FROM busybox AS build\n"
        "\n"
        "RUN echo a \\\n"
        "# comment inside\n"
        "    && echo b\n"
        '  cmd ["sh", "-c"]\n'
    )
    got = [(i.cmd, i.args, i.line) for i in df.instructions]
    assert got == [
        ("from", ["busybox", "AS", "build"], 2),
        ("run", "echo a     && echo b", 4),
        ("cmd", ["sh", "-c"], 7),
    ]
    assert df.instructions[2].json_form and not df.instructions[1].json_form


def test_escape_directive_and_syntax_ignored() -> None:
    df = dfp.parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert df.instructions[1].args == "dir c:\\   /w"
    # a directive after the first instruction is a plain comment
    assert dfp.parse("FROM x\n# escape=`\n").escape == "\\"


def test_flags_and_shell_form_fallback() -> None:
    df = dfp.parse('COPY --chown=1:2 --from=build a b/\nRUN ["broken json\nADD --chmod=644 x y\n')
    copy, run, add = df.instructions
    assert copy.flags == {"chown": "1:2", "from": "build"} and copy.args == ["a", "b/"]
    assert run.args == '["broken json' and not run.json_form
    assert add.flags == {"chmod": "644"}


def test_unknown_instruction_names_the_line() -> None:
    with pytest.raises(dfp.DockerfileError, match="line 2: unknown instruction: FROB"):
        dfp.parse("FROM x\nfrob y\n")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "a"),
        ("${A}b", "ab"),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${A:+alt}", "alt"),
        ("${UNSET:+alt}", ""),
        ("'$A'", "$A"),
        ('"$A b"', "a b"),
        ("\\$A", "$A"),
        ("${A:-${B}}", "a"),
        ("${UNSET:-${B}x}", "bx"),
        ("a$", "a$"),
    ],
)
def test_substitution(word: str, expected: str) -> None:
    assert dfp.expand(word, {"A": "a", "B": "b", "EMPTY": ""}) == expected


def test_key_values_forms() -> None:
    env = {"X": "1"}
    assert dfp.key_values(dfp.split_words('A=$X B="two words" C=\'$X\''), env, "env") == [
        ("A", "1"), ("B", "two words"), ("C", "$X"),
    ]  # fmt: skip
    assert dfp.key_values(["KEY", "legacy", "value"], env, "env") == [("KEY", "legacy value")]
    with pytest.raises(InvalidInput, match="can't find ="):
        dfp.key_values(["A=1", "B"], env, "label")


def test_go_formatting_helpers() -> None:
    assert go_quote_list(["/bin/sh", "-c", 'echo "hi"']) == '["/bin/sh" "-c" "echo \\"hi\\""]'
    assert go_duration(0) == "0s"
    assert go_duration(30 * 10**9) == "30s"
    assert go_duration(90 * 10**9) == "1m30s"
    assert go_duration(3600 * 10**9) == "1h0m0s"
    assert parse_duration("1m30s") == 90 * 10**9
    assert parse_duration("500ms") == 500 * 10**6


def test_dockerignore_rules(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    for rel in ["a.log", "keep.log", "src/x.py", "src/deep/y.py", "node_modules/m/i.js", "docs/r.md"]:
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        open(os.path.join(root, rel), "w").close()
    with open(os.path.join(root, ".dockerignore"), "w") as f:
        f.write("# comment\n*.log\n!keep.log\nnode_modules\n**/deep\n/docs/*.md\n")
    ctx = BuildContext(root)
    assert ctx.ignored("a.log") and not ctx.ignored("keep.log")
    assert ctx.ignored("node_modules/m/i.js")
    assert ctx.ignored("src/deep/y.py") and not ctx.ignored("src/x.py")
    assert ctx.ignored("docs/r.md")
    names = [n for n, _ in ctx.walk(ctx.sources(["."])[0])]
    assert "keep.log" in names and "a.log" not in names and "node_modules" not in names
    assert [s.rel for s in ctx.sources(["src/*.py"])] == ["src/x.py"]
    with pytest.raises(InvalidInput, match="outside the build context"):
        ctx.sources(["../etc/passwd"])
    with pytest.raises(InvalidInput, match="excluded by .dockerignore"):
        ctx.sources(["a.log"])
    # a symlink resolves as if the context were / (moby FollowSymlinkInScope): never the host's
    os.symlink("/etc", os.path.join(root, "escape"))
    with pytest.raises(InvalidInput, match="file not found in build context"):
        ctx.sources(["escape/passwd"])
    os.makedirs(os.path.join(root, "etc"))
    open(os.path.join(root, "etc", "passwd"), "w").close()
    (src,) = ctx.sources(["escape/passwd"])
    assert (src.rel, src.path, src.base) == ("etc/passwd", os.path.join(root, "etc", "passwd"), "passwd")
    os.symlink("../../../../src", os.path.join(root, "up"))
    (src,) = ctx.sources(["up"])
    assert (src.rel, src.is_dir, src.base) == ("src", True, "up")


def test_content_hash_follows_content(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    with open(os.path.join(root, "f"), "w") as f:
        f.write("one")
    ctx = BuildContext(root)
    h1 = ctx.content_hash(ctx.sources(["f"]))
    assert h1.startswith("file:")
    with open(os.path.join(root, "f"), "w") as f:
        f.write("two")
    assert ctx.content_hash(ctx.sources(["f"])) != h1
    assert ctx.content_hash(ctx.sources(["."])).startswith("dir:")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x\nEXPOSE\n", "line 2: EXPOSE requires at least one argument"),
        ("FROM x\nUSER\n", "line 2: USER requires exactly one argument"),
        ("FROM x\nWORKDIR\n", "line 2: WORKDIR requires exactly one argument"),
        ("FROM x\nENV\n", "line 2: ENV requires at least one argument"),
        ("FROM x\nCOPY a\n", "line 2: COPY requires at least two arguments"),
        ("FROM x\n\nADD --chown=1 a\n", "line 3: ADD requires at least two arguments"),
        ("FROM\n", "line 1: FROM requires either one or three arguments"),
        ("FROM x y\n", "line 1: FROM requires either one or three arguments"),
        ("FROM x\nHEALTHCHECK\n", "line 2: HEALTHCHECK requires an argument"),
    ],
)
def test_argument_counts_are_checked_before_anything_runs(text: str, message: str) -> None:
    """moby's parse-time checks: the whole file is refused with the line, no step runs."""
    with pytest.raises(dfp.DockerfileError, match=message):
        dfp.parse(text)


def test_instructions_without_arguments_that_docker_accepts() -> None:
    assert [i.cmd for i in dfp.parse("FROM x\nCMD\nENTRYPOINT\nRUN\n").instructions] == [
        "from", "cmd", "entrypoint", "run"
    ]  # fmt: skip


def test_heredocs_are_read_verbatim() -> None:
    """BuildKit's ``<<EOF`` syntax: the body lines are neither comments nor continuations."""
    df = dfp.parse(
        "FROM x\n"
        "RUN <<EOF\n"
        "echo a # stays\n"
        "# stays too\n"
        "echo b \\\n"
        "EOF\n"
        'COPY <<-"A" <<B /dst/\n'
        "\t\tline $X\n"
        "\tA\n"
        "b\n"
        "B\n"
        "RUN cat <<EOF > /f\n"
        "\n"
        "EOF\n"
        'CMD ["sh"]\n'
    )
    run, copy, run2, cmd = df.instructions[1:]
    assert run.rest == "<<EOF" and [(d.name, d.content) for d in run.heredocs] == [
        ("EOF", "echo a # stays\n# stays too\necho b \\\n")
    ]
    assert [(d.name, d.content, d.expand, d.strip_tabs) for d in copy.heredocs] == [
        ("A", "line $X\n", False, True),
        ("B", "b\n", True, False),
    ]
    assert copy.args == ['<<-"A"', "<<B", "/dst/"]
    assert run2.heredocs[0].content == "\n" and cmd.cmd == "cmd" and cmd.line == 15
    assert dfp.parse('RUN echo "<<EOF" <<<x\nCMD x\n').instructions[0].heredocs == []


def test_unterminated_heredoc_names_the_line() -> None:
    with pytest.raises(dfp.DockerfileError, match="line 2: unterminated heredoc EOF"):
        dfp.parse("FROM x\nRUN <<EOF\necho\n")
