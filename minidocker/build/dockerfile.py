"""The Dockerfile grammar (moby ``buildkit/frontend/dockerfile/parser`` and ``shell.Lex``).

Parsing keeps what the builder needs and nothing else::

    df = parse(text)                 # Dockerfile: .directives, .instructions (with line numbers)
    for ins in df.instructions:
        ins.cmd, ins.flags, ins.args, ins.json_form, ins.original, ins.line

Rules followed:
* parser directives (``# escape=`` and ``# syntax=``) are only read before anything else;
* comment lines are dropped everywhere, also between continued lines; so are empty lines inside a
  continuation; a line ending in the escape character (``\\`` or the ``# escape=`` one) continues;
* RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD and VOLUME take a JSON array (exec form) or a string;
* ``--name=value`` flags before the arguments (``COPY --chown=1:1``, ``FROM --platform=x``).

Variable substitution (:func:`expand`) is done later by the builder, and only for the
instructions where Docker does it (``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``,
``${VAR-word}``, ``${VAR+word}``; quotes removed; the escape character protects ``$``).

>>> df = parse('FROM busybox\\nRUN echo \\\\\\n  hi\\nCMD ["sh"]\\n')
>>> [(i.cmd, i.args, i.line) for i in df.instructions]
[('from', ['busybox'], 1), ('run', 'echo   hi', 2), ('cmd', ['sh'], 4)]
>>> expand("${A:-x}/$B", {"B": "b"})
'x/b'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from minidocker.errors import InvalidInput

INSTRUCTIONS = {"add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
                "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir"}  # fmt: skip
JSON_FORMS = {"run", "cmd", "entrypoint", "shell", "copy", "add", "volume"}
# instructions whose arguments go through variable substitution (moby replaceEnvAllowed)
EXPANDED = {"add", "copy", "env", "expose", "from", "label", "stopsignal", "user", "volume", "workdir", "arg",
            "onbuild"}  # fmt: skip
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"^--([a-zA-Z0-9-]+)(?:=(.*))?$")


class DockerfileError(InvalidInput):
    """A parse or instruction error; the message names the line (``Dockerfile:3``)."""


@dataclass
class Instruction:
    cmd: str  # lower case
    args: list[str] | str  # a list for the exec (JSON) form and word-split instructions
    original: str  # the instruction text as written (continuations joined)
    line: int  # 1-based line where it starts
    flags: dict[str, str] = field(default_factory=dict)
    json_form: bool = False
    rest: str = ""  # the raw text after the instruction name and flags
    # LABEL from ``build --label``: taken as given (no word splitting, no ``$`` expansion)
    literal_pairs: list[tuple[str, str]] | None = None
    heredocs: list[Heredoc] = field(default_factory=list)  # RUN/COPY/ADD ``<<EOF`` bodies, in order


@dataclass
class Heredoc:
    """One ``<<NAME`` body (BuildKit's syntax; the classic builder has none): ``content`` ends with
    a newline unless empty; ``expand`` is False for a quoted name (``<<"EOF"``), where ``$`` stays;
    ``<<-NAME`` has already lost the leading tabs of each line."""

    name: str
    content: str
    expand: bool = True
    strip_tabs: bool = False


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    directives: dict[str, str]
    escape: str = "\\"


_HEREDOC_WORD = re.compile(r"^\d*<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2$")
HEREDOC_INSTRUCTIONS = ("run", "copy", "add")


def heredoc_markers(line: str, escape: str = "\\") -> list[tuple[str, bool, bool]]:
    """(name, expand, strip_tabs) of each ``<<NAME`` word of a RUN/COPY/ADD line, in order.

    >>> heredoc_markers("RUN python3 <<-'EOF' > out")
    [('EOF', False, True)]
    >>> heredoc_markers('RUN echo "<<EOF" <<<x')
    []
    """
    words = split_words(line, escape)
    if not words or words[0].lower() not in HEREDOC_INSTRUCTIONS:
        return []
    out = []
    for w in words[1:]:
        m = _HEREDOC_WORD.match(w)
        if m:
            out.append((m.group(3), not m.group(2), m.group(1) == "-"))
    return out


def _logical_lines(text: str) -> tuple[dict[str, str], str, list[tuple[int, str, list[Heredoc]]]]:
    lines = text.splitlines()
    directives: dict[str, str] = {}
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip()) if lines[i].strip().startswith("#") else None
        if not m or m.group(1).lower() not in ("escape", "syntax") or m.group(1).lower() in directives:
            break
        directives[m.group(1).lower()] = m.group(2)
        i += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid ESCAPE '{escape}'. Must be ` or \\")
    out: list[tuple[int, str, list[Heredoc]]] = []
    buf: list[str] = []
    start = 0
    cont = re.compile(re.escape(escape) + r"[ \t]*$")
    n = i - 1
    while n + 1 < len(lines):
        n += 1
        raw = lines[n]
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments vanish, also inside a continuation
        if not stripped:
            continue  # empty lines end nothing (Docker warns about them inside continuations)
        if not buf:
            start = n + 1
            raw = raw.lstrip()
        m = cont.search(raw)
        if m:
            buf.append(raw[: m.start()])
            continue
        buf.append(raw)
        logical = "".join(buf)
        buf = []
        docs: list[Heredoc] = []
        # heredoc bodies follow the line verbatim: no comments, no continuations, up to the name
        for name, expand, strip_tabs in heredoc_markers(logical, escape):
            body: list[str] = []
            while True:
                n += 1
                if n >= len(lines):
                    raise DockerfileError(
                        f"Dockerfile parse error line {start}: unterminated heredoc {name} (no line '{name}')"
                    )
                line = lines[n].lstrip("\t") if strip_tabs else lines[n]
                if line == name:
                    break
                body.append(line + "\n")
            docs.append(Heredoc(name, "".join(body), expand, strip_tabs))
        out.append((start, logical, docs))
    if buf:
        out.append((start, "".join(buf), []))
    return directives, escape, out


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes (moby ``parseWords``)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            cur.append(ch + text[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            cur.append(ch)
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile; raises :class:`DockerfileError` naming the line."""
    directives, escape, lines = _logical_lines(text)
    out: list[Instruction] = []
    for lineno, line, docs in lines:
        name, _, rest = line.strip().partition(" ")
        if "\t" in name:
            name, _, more = name.partition("\t")
            rest = more + " " + rest
        cmd = name.lower()
        if cmd not in INSTRUCTIONS:
            raise DockerfileError(
                f"Dockerfile parse error line {lineno}: unknown instruction: {name.upper()}"
            )
        rest = rest.strip()
        flags: dict[str, str] = {}
        if cmd in ("from", "copy", "add", "run", "healthcheck"):
            while rest.startswith("--"):
                word, _, after = rest.partition(" ")
                m = _FLAG.match(word)
                if not m:
                    break
                flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
                rest = after.strip()
        args: list[str] | str = rest
        json_form = False
        if cmd in JSON_FORMS and rest.startswith("["):
            try:
                value = json.loads(rest)
            except ValueError:
                value = None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                args, json_form = value, True
        if not json_form and cmd in ("from", "copy", "add", "expose", "volume", "arg", "env", "label"):
            args = split_words(rest, escape)
        problem = _arg_count_problem(cmd, args, rest)
        if problem:
            raise DockerfileError(f"Dockerfile parse error line {lineno}: {problem}")
        out.append(Instruction(cmd, args, line.strip(), lineno, flags, json_form, rest, heredocs=docs))
    return Dockerfile(out, directives, escape)


# moby instructions/parse.go: checked for the whole file before any step runs
_EXACTLY_ONE = {"workdir", "user", "stopsignal", "maintainer"}
_AT_LEAST_ONE = {"env", "label", "expose", "volume", "onbuild", "shell", "arg", "healthcheck"}


def _arg_count_problem(cmd: str, args: list[str] | str, rest: str) -> str | None:
    """Docker's argument-count errors (``EXPOSE requires at least one argument``...)."""
    empty = not args if isinstance(args, list) else not rest
    if cmd in ("copy", "add") and len(args if isinstance(args, list) else rest.split()) < 2:
        return (f"{cmd.upper()} requires at least two arguments, but only one was provided. "
                "Destination could not be determined.")  # fmt: skip
    if cmd in _EXACTLY_ONE and empty:
        return f"{cmd.upper()} requires exactly one argument"
    if cmd in _AT_LEAST_ONE and empty:
        if cmd == "healthcheck":
            return "HEALTHCHECK requires an argument"
        return f"{cmd.upper()} requires at least one argument"
    if cmd == "from" and (empty or len(args) not in (1, 3)):
        return "FROM requires either one or three arguments"
    return None


# -- substitution ------------------------------------------------------------------------------------
def expand(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """Process one word like moby's ``shell.Lex.ProcessWord``: quotes removed, variables expanded."""
    return "".join(_Lexer(word, env, escape).run())


def expand_words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """``ProcessWords``: split on unquoted whitespace, then expand each word."""
    return [expand(w, env, escape) for w in split_words(text, escape)]


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.esc = escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def run(self, stop: str = "") -> list[str]:
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.peek()
            if stop and ch == stop:
                break
            if ch == self.esc:
                self.next()
                out.append(self.next())
            elif ch == "'":
                self.next()
                start = self.i
                while self.i < len(self.s) and self.s[self.i] != "'":
                    self.i += 1
                out.append(self.s[start : self.i])
                self.next()
            elif ch == '"':
                self.next()
                out.append(self.double())
            elif ch == "$":
                out.append(self.dollar())
            else:
                out.append(self.next())
        return out

    def double(self) -> str:
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.peek()
            if ch == '"':
                self.next()
                break
            if ch == "$":
                out.append(self.dollar())
            elif ch == self.esc and self.i + 1 < len(self.s) and self.s[self.i + 1] in ('"', "$", self.esc):
                self.next()
                out.append(self.next())
            else:
                out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()  # $
        ch = self.peek()
        if ch == "{":
            self.next()
            name = self.name()
            if not name:
                raise DockerfileError(f"missing variable name in {self.s!r}")
            op = self.peek()
            if op == "}":
                self.next()
                return self.env.get(name, "")
            if op == ":":
                self.next()
                op = ":" + self.next()
            else:
                self.next()
            word = "".join(self.run(stop="}"))
            if self.next() != "}":
                raise DockerfileError(f"missing '}}' in {self.s!r}")
            value = self.env.get(name)
            if op == ":-":
                return value if value else word
            if op == "-":
                return value if value is not None else word
            if op == ":+":
                return word if value else ""
            if op == "+":
                return word if value is not None else ""
            raise DockerfileError(f"unsupported modifier ({op}) in substitution {self.s!r}")
        name = self.name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def name(self) -> str:
        start = self.i
        if self.peek().isdigit():
            self.next()
            return self.s[start : self.i]
        while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] == "_"):
            self.i += 1
        return self.s[start : self.i]


def expand_heredoc(text: str, env: dict[str, str], escape: str) -> str:
    """A COPY heredoc's body: ``$VAR`` / ``${VAR...}`` expanded, quotes and escapes kept
    (BuildKit's raw-quotes lexer mode).

    >>> expand_heredoc('a=$A "q" ${B:-b} `$A', {"A": "1"}, "`")
    'a=1 "q" b `$A'
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and text[i + 1 : i + 2] == "$":
            out.append(text[i : i + 2])
            i += 2
        elif ch == "$":
            lexer = _Lexer(text, env, escape)
            lexer.i = i
            out.append(lexer.dollar())
            i = lexer.i
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def key_values(
    words: list[str], env: dict[str, str], instruction: str, escape: str = "\\"
) -> list[tuple[str, str]]:
    """ENV/LABEL pairs: ``K=V ...`` (each word expanded) or the legacy ``K value words``."""
    if not words:
        raise DockerfileError(f"{instruction.upper()} requires at least one argument")
    if "=" not in words[0]:
        if len(words) < 2:
            raise DockerfileError(f"{instruction.upper()} requires at least two arguments")
        value = " ".join(expand(w, env, escape) for w in words[1:])
        return [(expand(words[0], env, escape), value)]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq:
            raise DockerfileError(f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value')
        out.append((expand(key, env, escape), expand(value, env, escape)))
    return out
