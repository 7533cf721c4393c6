"""The part of Go's ``text/template`` that Docker's ``--format`` flags use, with Docker's functions.

Supported: text and ``{{action}}``s with ``{{-``/``-}}`` trimming and ``{{/* comments */}}``;
pipelines (``a | b``) of fields (``.State.Pid``, method calls with arguments ``.Label "k"``),
``.``, ``$``, variables (``$x := …``, ``{{range $k, $v := .Labels}}``), parenthesised pipelines,
string/number/bool/nil literals; ``if``/``else if``/``else``/``end``, ``range`` (with ``else``),
``with``; Go's builtins (``index len print printf println and or not eq ne lt le gt ge slice html
js urlquery``) and Docker's (``json split join title lower upper pad truncate``).

Values: ``dict`` is a Go map/struct (field = key), other objects expose exported fields/methods
as attributes (callables are methods). Values print like Go's ``fmt`` ``%v``: ``[a b]``,
``map[k:v]``, ``true``. Errors carry Go's wording (``template: :1: unclosed action``,
``template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"``).

>>> parse('{{.Name}} has {{len .Args}} args: {{join .Args ","}}').execute({"Name": "x", "Args": ["a", "b"]})
'x has 2 args: a,b'
>>> parse('{{range $k, $v := .L}}{{$k}}={{$v}} {{end}}{{if .R}}up{{else}}down{{end}}').execute(
...     {"L": {"b": 2, "a": 1}, "R": False})
'a=1 b=2 down'
"""

from __future__ import annotations

import html as _html
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from minidocker.errors import InvalidInput


class TemplateError(InvalidInput):
    """A template that does not parse (``template: :1: unclosed action``)."""


class ExecError(TemplateError):
    """A template that fails while executing; ``partial`` is what it wrote before failing."""

    def __init__(self, message: str, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


# -- nil values ----------------------------------------------------------------------------------
# Docker executes inspect templates on typed Go structs, where a JSON null is a nil slice ("[]"),
# nil map ("map[]") or nil pointer ("<nil>") depending on the field. The few pointer and map fields
# of Docker's API types are listed; any other null is a slice, by far the most common case.
_NIL_POINTERS = {"Health", "IPAMConfig", "MemorySwappiness", "PidsLimit", "OomKillDisable", "Init",
                 "Node", "Healthcheck", "StopTimeout", "Service", "State", "SizeRw", "SizeRootFs"}  # fmt: skip
# fields of map type (printed map[k:v] with sorted keys); any other object is a struct ({v1 v2})
MAP_FIELDS = {"Volumes", "ExposedPorts", "Labels", "Networks", "Ports", "DriverOpts", "StorageOpt",
              "Tmpfs", "Sysctls", "Options", "PortBindings", "Data"}  # fmt: skip
_NIL = object()
_EXPORTED = re.compile(r"[A-Z][A-Za-z0-9]*")
_OMITTED_NIL = ("Health", "SizeRw", "SizeRootFs", "Node", "ExposedPorts", "Healthcheck", "StopTimeout", "Shell",
                "Init", "Tmpfs", "StorageOpt", "Sysctls")  # fmt: skip
# omitempty fields absent from the JSON still exist in the Go struct: their zero value
OMITTED: dict[str, Any] = {
    **dict.fromkeys(_OMITTED_NIL, _NIL),
    **{k: "" for k in ("MacAddress", "StopSignal", "Runtime", "Variant", "Name", "Driver", "Type")},
    **{k: False for k in ("ArgsEscaped", "NetworkDisabled")},
}


class Nil:
    """A null reached through a map key: prints as its Go type's zero value would."""

    __slots__ = ("text",)

    def __init__(self, key: str | None) -> None:
        self.text = "<nil>" if key in _NIL_POINTERS or key is None else "map[]" if key in MAP_FIELDS else "[]"

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, Nil)

    def __hash__(self) -> int:
        return 0


def _plain(v: Any) -> Any:
    return None if isinstance(v, Nil) else v


# -- printing ------------------------------------------------------------------------------------
def _go_float(f: float) -> str:
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    r = repr(f)
    if "e" in r:
        mant, exp = r.split("e")
        sign = "-" if exp.startswith("-") else "+"
        r = f"{mant}e{sign}{abs(int(exp)):02d}"
    return r


def format_value(v: Any, key: str | None = None, top: bool = True) -> str:
    """Go's ``fmt.Sprint`` of a value (what ``{{.X}}`` prints); ``key`` is the field name the value
    was reached by, which tells a map (``map[k:v]``, keys sorted) from a struct (``{v1 v2}``).

    >>> format_value({"Name": "no", "Count": 0}), format_value({"b": 1, "a": None}, "Labels")
    ('{no 0}', 'map[a:<nil> b:1]')
    >>> format_value(None), format_value([None, "x"])
    ('<no value>', '[<nil> x]')
    """
    if isinstance(v, Nil):
        return v.text
    if v is None:
        return "<no value>" if top else Nil(key).text
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, dict):
        if (
            key in MAP_FIELDS
            or (key is not None and not v)
            or not all(_EXPORTED.fullmatch(str(k)) for k in v)
        ):
            items = sorted(v.items(), key=lambda kv: str(kv[0]))
            return "map[" + " ".join(f"{k}:{format_value(x, None, False)}" for k, x in items) + "]"
        return "{" + " ".join(format_value(x, str(k), False) for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_value(x, None, False) for x in v) + "]"
    return str(v)


_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028",
             "\u2029": "\\u2029"}  # fmt: skip
_JSON_RX = re.compile('["\\\\\x00-\x1f\u2028\u2029\ud800-\udfff]')


def _json_char(m: re.Match[str]) -> str:
    c = m.group(0)
    e = _JSON_ESC.get(c)
    if e is not None:
        return e
    if "\ud800" <= c <= "\udfff":
        return "\ufffd"
    return f"\\u{ord(c):04x}"


def go_json_str(s: str) -> str:
    """A JSON string as Go's encoder writes it with ``SetEscapeHTML(false)`` (Docker's API and
    its ``json`` template function): ``<>&`` stay raw, U+2028/2029 and control bytes escaped."""
    return '"' + _JSON_RX.sub(_json_char, s) + '"'


def go_json(v: Any, indent: str | None = None, _level: int = 0) -> str:
    """``json.Marshal`` (``indent=None``) or ``json.MarshalIndent(v, "", indent)`` without HTML
    escaping; dicts keep their order (build them in Go field order, maps sorted).

    >>> go_json({"a": [1, "<x>"], "b": {}})
    '{"a":[1,"<x>"],"b":{}}'
    >>> print(go_json({"a": [], "b": [True]}, "  "))
    {
      "a": [],
      "b": [
        true
      ]
    }
    """
    v = _plain(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return go_json_str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v) if "e" not in repr(v) else repr(v)
    if isinstance(v, dict):
        if not v:
            return "{}"
        parts = [go_json_str(str(k)) + (": " if indent is not None else ":") + go_json(x, indent, _level + 1)
                 for k, x in v.items()]  # fmt: skip
        return _wrap("{", "}", parts, indent, _level)
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        return _wrap("[", "]", [go_json(x, indent, _level + 1) for x in v], indent, _level)
    to_go = getattr(v, "to_go", None)
    if callable(to_go):
        return go_json(to_go(), indent, _level)
    raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def _wrap(open_: str, close: str, parts: list[str], indent: str | None, level: int) -> str:
    if indent is None:
        return open_ + ",".join(parts) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(parts) + "\n" + indent * level + close


# -- functions -----------------------------------------------------------------------------------
def _truth(v: Any) -> bool:
    v = _plain(v)
    if v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def _index(item: Any, *keys: Any) -> Any:
    for k in keys:
        item = _plain(item)
        if isinstance(item, dict):
            item = item.get(k, "")  # a missing key gives the zero value ("" for Docker's label maps)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(k, int):
                raise ValueError(f"cannot index slice/array with type {type(k).__name__}")
            if not 0 <= k < len(item):
                raise ValueError(f"index out of range: {k}")
            item = item[k]
        elif item is None:
            raise ValueError("index of untyped nil")
        else:
            raise ValueError(f"can't index item of type {type(item).__name__}")
    return item


def _len(v: Any) -> int:
    v = _plain(v)
    if v is None:
        return 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode()) if isinstance(v, str) else len(v)
    raise ValueError(f"len of type {type(v).__name__}")


def _sprint(*args: Any) -> str:
    # fmt.Sprint: a space between operands when neither is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(args[i - 1], str) and not isinstance(a, str):
            out += " "
        out += format_value(a, None, False)
    return out


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _sprintf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def sub(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        try:
            a = _plain(next(it))
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb in "sv":
            text = format_value(a, None, False)
            if prec is not None:
                text = text[: int(prec)]
        elif verb == "q":
            text = go_json_str(str(a)) if isinstance(a, str) else format_value(a, None, False)
        elif verb == "d" and isinstance(a, int):
            text = str(a)
        elif verb in "xX" and isinstance(a, (int, str)):
            text = format(a, verb) if isinstance(a, int) else a.encode().hex()
            text = text.upper() if verb == "X" else text
        elif verb in "fFeEgG" and isinstance(a, (int, float)):
            text = f"%{'.' + prec if prec else ''}{verb}" % a
        elif verb == "t" and isinstance(a, bool):
            text = format_value(a)
        else:
            text = f"%!{verb}({type(a).__name__}={format_value(a, None, False)})"
        if width:
            w = int(width)
            text = text.ljust(w) if "-" in flags else text.rjust(w, "0" if "0" in flags else " ")
        return text

    return _VERB.sub(sub, fmt)


def _cmp(op: str) -> Callable[..., bool]:
    def f(a: Any, *bs: Any) -> bool:
        a = _plain(a)
        if op == "eq":
            if not bs:
                raise ValueError("missing argument for comparison")
            return any(a == _plain(b) for b in bs)
        (b,) = bs
        b = _plain(b)
        if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            if op == "ne":
                raise ValueError("incompatible types for comparison")
            raise ValueError("incompatible types for comparison")
        return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]

    return f


def _slice(item: Any, *idx: int) -> Any:
    item = _plain(item)
    if len(idx) == 0:
        return item
    if len(idx) == 1:
        return item[idx[0] :]
    return item[idx[0] : idx[1]]


def _and(*args: Any) -> Any:
    for a in args:
        if not _truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if _truth(a):
            return a
    return args[-1]


def _pad(s: Any, prefix: int, suffix: int) -> str:
    return " " * prefix + format_value(s, None, False) + " " * suffix


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _title(s: str) -> str:
    # strings.Title: upper-case the first letter of each word (words split on non-letters)
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), s)


def _js(*args: Any) -> str:
    s = _sprint(*args)
    return "".join(
        {
            "\\": "\\\\",
            "'": "\\'",
            '"': "\\u0022",
            "<": "\\u003C",
            ">": "\\u003E",
            "&": "\\u0026",
            "=": "\\u003D",
            "\n": "\\u000A",
            "\r": "\\u000D",
            "\t": "\\u0009",
        }.get(c, c)  # fmt: skip
        for c in s
    )


BUILTINS: dict[str, Callable[..., Any]] = {
    "and": _and,
    "or": _or,
    "not": lambda a: not _truth(a),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _sprint,
    "printf": _sprintf,
    "println": lambda *a: " ".join(format_value(x, None, False) for x in a) + "\n",
    "eq": _cmp("eq"),
    "ne": _cmp("ne"),
    "lt": _cmp("lt"),
    "le": _cmp("le"),
    "gt": _cmp("gt"),
    "ge": _cmp("ge"),
    "html": lambda *a: _html.escape(_sprint(*a)).replace("&#x27;", "&#39;"),
    "js": _js,
    "urlquery": lambda *a: urllib.parse.quote_plus(_sprint(*a)),
    # Docker's (cli/templates): json without HTML escaping, and string helpers
    "json": lambda v: go_json(v),
    "split": _split,
    "join": lambda v, sep: sep.join(format_value(x, None, False) for x in (_plain(v) or [])),
    "title": _title,
    "lower": lambda s: format_value(s, None, False).lower(),
    "upper": lambda s: format_value(s, None, False).upper(),
    "pad": _pad,
    "truncate": lambda s, n: s if len(s) < n else s[:n],
}
# templates.HeaderFunctions: the header row of a `table` format runs through identity functions
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v,
    "split": lambda v, _s: v,
    "join": lambda v, _s: v,
    "title": lambda v: v,
    "lower": lambda v: v,
    "upper": lambda v: v,
    "truncate": lambda v, _n: v,
}


# -- lexer ---------------------------------------------------------------------------------------
@dataclass
class Tok:
    kind: str  # field var ident string number char ( ) | := = , space eof
    text: str
    pos: int
    value: Any = None


_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\n]+)
    |(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
    |(?P<var>\$[A-Za-z0-9_]*)
    |(?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?))
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*")
    |(?P<raw>`[^`]*`)
    |(?P<char>'(?:[^'\\\n]|\\.)+')
    |(?P<declare>:=)
    |(?P<punct>[()|=,])""",
    re.VERBOSE,
)


def _unquote(s: str) -> str:
    try:
        value = json.loads(s)
    except ValueError:
        value = s[1:-1].encode().decode("unicode_escape")
    return str(value)


# -- nodes ---------------------------------------------------------------------------------------
@dataclass
class Node:
    pos: int
    src: str


@dataclass
class Operand(Node):
    kind: str  # field var dot ident literal pipe
    names: list[str] = field(default_factory=list)  # field chain / chain after var or pipe
    value: Any = None  # literal value, var name, Pipe, ident name


@dataclass
class Command(Node):
    args: list[Operand]


@dataclass
class Pipe(Node):
    decl: list[str]
    commands: list[Command]
    assign: bool = False


@dataclass
class Text:
    text: str


@dataclass
class Action(Node):
    pipe: Pipe


@dataclass
class Branch(Node):
    kind: str  # if range with
    pipe: Pipe
    body: list[Any]
    else_body: list[Any] | None


class _Else(Exception):
    def __init__(self, pos: int, chain: Pipe | None, kind: str) -> None:
        self.pos, self.chain, self.kind = pos, chain, kind


class _End(Exception):
    def __init__(self, pos: int) -> None:
        self.pos = pos


# -- parser --------------------------------------------------------------------------------------
class Parser:
    def __init__(self, text: str, name: str, funcs: dict[str, Callable[..., Any]]) -> None:
        self.text = text
        self.name = name
        self.funcs = funcs
        self.i = 0

    def error(self, msg: str, pos: int) -> TemplateError:
        line = self.text.count("\n", 0, pos) + 1
        return TemplateError(f"template: {self.name}:{line}: {msg}")

    # Splits the template into text pieces and action token lists, lazily.
    def items(self) -> Iterator[tuple[str, Any, int]]:
        text = self.text
        i = 0
        trim_next = False
        while i < len(text):
            j = text.find("{{", i)
            chunk = text[i:] if j < 0 else text[i:j]
            if trim_next:
                chunk = chunk.lstrip(" \t\r\n")
            trim_next = False
            if j < 0:
                if chunk:
                    yield ("text", chunk, i)
                return
            start = j
            k = j + 2
            if text.startswith("- ", k) or text.startswith("-\t", k) or text.startswith("-\n", k):
                chunk = chunk.rstrip(" \t\r\n")
                k += 1
            if chunk:
                yield ("text", chunk, i)
            # comment
            m = re.match(r"[ \t\r\n]*/\*.*?\*/[ \t\r\n]*(-?)\}\}", text[k:], re.S)
            if m and text[k:].lstrip().startswith("/*"):
                trim_next = m.group(1) == "-"
                i = k + m.end()
                continue
            toks, k, trim_next = self.lex_action(k, start)
            yield ("action", toks, start)
            i = k

    def lex_action(self, k: int, start: int) -> tuple[list[Tok], int, bool]:
        text = self.text
        toks: list[Tok] = []
        while True:
            if k >= len(text):
                raise self.error("unclosed action", start)
            if text.startswith("}}", k):
                return toks, k + 2, False
            m = re.match(r"[ \t\r\n]+-\}\}", text[k:])
            if m:
                return toks, k + m.end(), True
            m = _TOKEN.match(text, k)
            if not m:
                ch = text[k]
                if ch == "\n":
                    raise self.error("unclosed action", start)
                raise self.error(f"unexpected {json.dumps(ch)} in command", k)
            kind = m.lastgroup or ""
            s = m.group(0)
            if kind == "space":
                toks.append(Tok("space", s, k))
            elif kind in ("string", "raw"):
                toks.append(Tok("string", s, k, _unquote(s) if kind == "string" else s[1:-1]))
            elif kind == "char":
                toks.append(Tok("number", s, k, ord(_unquote('"' + s[1:-1] + '"'))))
            elif kind == "number":
                clean = s.replace("_", "")
                try:
                    num: Any = int(clean, 0)
                except ValueError:
                    num = float(clean)
                toks.append(Tok("number", s, k, num))
            elif kind == "declare":
                toks.append(Tok(":=", s, k))
            elif kind == "punct":
                toks.append(Tok(s, s, k))
            else:
                toks.append(Tok(kind, s, k))
            k = m.end()

    def parse(self) -> list[Any]:
        self._items = self.items()
        body, stop = self.parse_list(top=True)
        return body

    def parse_list(self, top: bool = False) -> tuple[list[Any], Any]:
        body: list[Any] = []
        for kind, val, pos in self._items:
            if kind == "text":
                body.append(Text(val))
                continue
            toks = [t for t in val if t.kind != "space"]
            spaced = val
            if not toks:
                raise self.error("missing value for command", pos)
            head = toks[0]
            if head.kind == "ident" and head.text in ("end", "else"):
                if top:
                    raise self.error(f"unexpected {{{{{head.text}}}}}", pos)
                if head.text == "end":
                    if len(toks) > 1:
                        raise self.error(f"unexpected {toks[1].text} in end", pos)
                    return body, _End(pos)
                if len(toks) == 1:
                    return body, _Else(pos, None, "")
                if toks[1].kind == "ident" and toks[1].text in ("if", "with"):
                    chain = self.parse_pipe(spaced[spaced.index(toks[1]) + 1 :], pos, toks[1].text)
                    return body, _Else(pos, chain, toks[1].text)
                raise self.error(f"unexpected {toks[1].text} in else", pos)
            if head.kind == "ident" and head.text in ("if", "range", "with"):
                body.append(self.parse_branch(head.text, spaced[spaced.index(head) + 1 :], pos))
                continue
            if head.kind == "ident" and head.text in ("define", "template", "block", "break", "continue"):
                raise self.error(f"{{{{{head.text}}}}} is not supported here", pos)
            body.append(Action(pos, "", self.parse_pipe(spaced, pos, "command")))
        if not top:
            raise self.error("unexpected EOF", len(self.text))
        return body, None

    def parse_branch(self, kind: str, toks: list[Tok], pos: int) -> Branch:
        return self.finish_branch(kind, self.parse_pipe(toks, pos, kind), pos)

    def finish_branch(self, kind: str, pipe: Pipe, pos: int) -> Branch:
        body, stop = self.parse_list()
        else_body: list[Any] | None = None
        if isinstance(stop, _Else):
            if stop.chain is not None:
                # {{else if B}}y{{end}} is {{else}}{{if B}}y{{end}}{{end}}: the inner branch takes the end
                else_body = [self.finish_branch(stop.kind, stop.chain, stop.pos)]
            else:
                else_body, stop = self.parse_list()
                if isinstance(stop, _Else):
                    raise self.error("expected end; found {{else}}", stop.pos)
        return Branch(pos, "", kind, pipe, body, else_body)

    def parse_pipe(self, toks: list[Tok], pos: int, context: str) -> Pipe:
        toks = list(toks)
        src_start = toks[0].pos if toks else pos
        src_end = toks[-1].pos + len(toks[-1].text) if toks else pos
        decl: list[str] = []
        assign = False
        # variable declarations: $x := / $k, $v := / $x =
        sig = [t for t in toks if t.kind != "space"]
        if sig and sig[0].kind == "var":
            if len(sig) > 1 and sig[1].kind in (":=", "="):
                decl = [sig[0].text]
                assign = sig[1].kind == "="
                toks = toks[toks.index(sig[1]) + 1 :]
            elif len(sig) > 3 and sig[1].kind == "," and sig[2].kind == "var" and sig[3].kind == ":=":
                decl = [sig[0].text, sig[2].text]
                toks = toks[toks.index(sig[3]) + 1 :]
        commands: list[Command] = []
        cur: list[Operand] = []
        idx = 0
        while idx < len(toks):
            t = toks[idx]
            if t.kind == "space":
                idx += 1
                continue
            if t.kind == "|":
                if not cur:
                    raise self.error("missing value for command", t.pos)
                commands.append(Command(cur[0].pos, self.text[cur[0].pos : t.pos].strip(), cur))
                cur = []
                idx += 1
                continue
            op, idx = self.parse_operand(toks, idx, context)
            cur.append(op)
        if not cur:
            raise self.error(f"missing value for {context}", pos)
        end = cur[-1].pos + len(cur[-1].src)
        commands.append(Command(cur[0].pos, self.text[cur[0].pos : end], cur))
        for c in commands[1:]:
            if c.args[0].kind not in ("ident", "field", "var", "pipe"):
                raise self.error(f"non executable command in pipeline stage {commands.index(c) + 1}", c.pos)
        return Pipe(src_start, self.text[src_start:src_end], decl, commands, assign)

    def parse_operand(self, toks: list[Tok], idx: int, context: str) -> tuple[Operand, int]:
        t = toks[idx]
        if t.kind == "field":
            chain = [] if t.text == "." else t.text[1:].split(".")
            return Operand(t.pos, t.text, "dot" if not chain else "field", chain), idx + 1
        if t.kind == "var":
            parts = t.text.split(".")
            return Operand(t.pos, t.text, "var", parts[1:], parts[0]), idx + 1
        if t.kind == "string":
            return Operand(t.pos, t.text, "literal", [], t.value), idx + 1
        if t.kind == "number":
            return Operand(t.pos, t.text, "literal", [], t.value), idx + 1
        if t.kind == "ident":
            if t.text in ("true", "false"):
                return Operand(t.pos, t.text, "literal", [], t.text == "true"), idx + 1
            if t.text == "nil":
                return Operand(t.pos, t.text, "literal", [], None), idx + 1
            if t.text not in self.funcs:
                raise self.error(f'function "{t.text}" not defined', t.pos)
            return Operand(t.pos, t.text, "ident", [], t.text), idx + 1
        if t.kind == "(":
            depth = 0
            j = idx
            while j < len(toks):
                if toks[j].kind == "(":
                    depth += 1
                elif toks[j].kind == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(toks):
                raise self.error("unclosed left paren", t.pos)
            inner = self.parse_pipe(toks[idx + 1 : j], t.pos, "parenthesized pipeline")
            names: list[str] = []
            nxt = j + 1
            if nxt < len(toks) and toks[nxt].kind == "field" and toks[nxt].text != ".":
                names = toks[nxt].text[1:].split(".")
                nxt += 1
            end = toks[nxt - 1].pos + len(toks[nxt - 1].text)
            return Operand(t.pos, self.text[t.pos : end], "pipe", names, inner), nxt
        raise self.error(f"unexpected {json.dumps(t.text)} in {context}", t.pos)


# -- execution -----------------------------------------------------------------------------------
class _Missing:
    pass


class Template:
    """A parsed template; :meth:`execute` renders it against a value."""

    def __init__(self, text: str, body: list[Any], name: str, funcs: dict[str, Callable[..., Any]]) -> None:
        self.text = text
        self.body = body
        self.name = name
        self.funcs = funcs
        self.missingkey_error = False

    def execute(
        self, data: Any, *, missingkey_error: bool = False, funcs: dict[str, Any] | None = None
    ) -> str:
        """Render; raises :class:`ExecError` (Go's message, with the output so far as ``partial``)."""
        out: list[str] = []
        state = _State(self, data, missingkey_error, {**self.funcs, **(funcs or {})})
        try:
            state.walk(self.body, data, out)
        except _ExecFail as e:
            raise ExecError(str(e), "".join(out)) from None
        return "".join(out)


class _ExecFail(Exception):
    pass


class _State:
    def __init__(self, tmpl: Template, root: Any, missingkey_error: bool, funcs: dict[str, Any]) -> None:
        self.tmpl = tmpl
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.missingkey_error = missingkey_error
        self.funcs = funcs
        self.last_key: str | None = None  # the field that produced the value being printed

    def fail(self, node: Node, msg: str) -> _ExecFail:
        text = self.tmpl.text
        line_start = text.rfind("\n", 0, node.pos) + 1
        line = text.count("\n", 0, node.pos) + 1
        col = len(text[line_start : node.pos].encode())
        return _ExecFail(
            f'template: {self.tmpl.name}:{line}:{col}: executing "{self.tmpl.name}" at <{node.src}>: {msg}'
        )

    def walk(self, body: list[Any], dot: Any, out: list[str]) -> None:
        for n in body:
            if isinstance(n, Text):
                out.append(n.text)
            elif isinstance(n, Action):
                v = self.eval_pipe(n.pipe, dot)
                if not n.pipe.decl:
                    out.append(format_value(v, self.last_key))
            elif isinstance(n, Branch):
                self.branch(n, dot, out)

    def branch(self, n: Branch, dot: Any, out: list[str]) -> None:
        mark = len(self.vars)
        try:
            if n.kind == "range":
                self.range_(n, dot, out)
                return
            v = self.eval_pipe(n.pipe, dot)
            if _truth(v):
                self.walk(n.body, v if n.kind == "with" else dot, out)
            elif n.else_body is not None:
                self.walk(n.else_body, dot, out)
        finally:
            del self.vars[mark:]

    def range_(self, n: Branch, dot: Any, out: list[str]) -> None:
        decl = n.pipe.decl
        n.pipe.decl = []
        try:
            v = _plain(self.eval_pipe(n.pipe, dot))
        finally:
            n.pipe.decl = decl
        if isinstance(v, dict):
            items: list[tuple[Any, Any]] = sorted(v.items(), key=lambda kv: str(kv[0]))
        elif isinstance(v, (list, tuple)):
            items = list(enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool):
            items = [(i, i) for i in range(v)]
        elif v is None:
            items = []
        else:
            raise self.fail(n.pipe, f"range can't iterate over {format_value(v)}")
        if not items:
            if n.else_body is not None:
                self.walk(n.else_body, dot, out)
            return
        mark = len(self.vars)
        for k, elem in items:
            del self.vars[mark:]
            if len(decl) == 1:
                self.vars.append((decl[0], elem))
            elif len(decl) == 2:
                self.vars.append((decl[0], k))
                self.vars.append((decl[1], elem))
            self.walk(n.body, elem, out)

    def lookup_var(self, node: Node, name: str) -> Any:
        for k, v in reversed(self.vars):
            if k == name:
                return v
        raise self.fail(node, f"undefined variable: {name}")

    def eval_pipe(self, pipe: Pipe, dot: Any) -> Any:
        value: Any = _Missing
        for cmd in pipe.commands:
            value = self.eval_command(cmd, dot, value)
        if pipe.decl:
            if pipe.assign:
                for i in range(len(self.vars) - 1, -1, -1):
                    if self.vars[i][0] == pipe.decl[0]:
                        self.vars[i] = (pipe.decl[0], value)
                        break
                else:
                    raise self.fail(pipe, f"undefined variable: {pipe.decl[0]}")
            else:
                self.vars.append((pipe.decl[0], value))
        return value

    def eval_command(self, cmd: Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        rest = cmd.args[1:]
        self.last_key = None
        if first.kind == "ident":
            fn = self.funcs[first.value]
            args = [_plain(self.eval_arg(a, dot)) for a in rest]
            if final is not _Missing:
                args.append(_plain(final))
            self.last_key = None
            try:
                return fn(*args)
            except TypeError as e:
                raise self.fail(first, f"wrong number of args for {first.value}: {e}") from None
            except (ValueError, KeyError, IndexError, AttributeError) as e:
                raise self.fail(cmd, f"error calling {first.value}: {e}") from None
        if first.kind == "field":
            return self.eval_chain(first, dot, first.names, rest, final, dot)
        if first.kind == "var":
            base = self.lookup_var(first, first.value)
            return self.eval_chain(first, base, first.names, rest, final, dot)
        if first.kind == "pipe":
            base = self.eval_pipe(first.value, dot)
            if first.names:
                return self.eval_chain(first, base, first.names, rest, final, dot)
            if rest or final is not _Missing:
                raise self.fail(first, "can't give argument to non-function " + first.src)
            return base
        if rest or final is not _Missing:
            raise self.fail(first, "can't give argument to non-function " + first.src)
        return dot if first.kind == "dot" else first.value

    def eval_arg(self, a: Operand, dot: Any) -> Any:
        if a.kind == "dot":
            return dot
        if a.kind == "literal":
            return a.value
        if a.kind == "field":
            return self.eval_chain(a, dot, a.names, [], _Missing, dot)
        if a.kind == "var":
            return self.eval_chain(a, self.lookup_var(a, a.value), a.names, [], _Missing, dot)
        if a.kind == "pipe":
            base = self.eval_pipe(a.value, dot)
            return self.eval_chain(a, base, a.names, [], _Missing, dot) if a.names else base
        # a bare function name as an argument: called without arguments
        return self.eval_command(Command(a.pos, a.src, [a]), dot, _Missing)

    def eval_chain(
        self, node: Operand, recv: Any, names: list[str], args: list[Operand], final: Any, dot: Any
    ) -> Any:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            call_args: list[Any] = []
            has_args = last and (bool(args) or final is not _Missing)
            if has_args:
                call_args = [_plain(self.eval_arg(a, dot)) for a in args]
                if final is not _Missing:
                    call_args.append(_plain(final))
            recv = self.field(node, recv, name, call_args, has_args)
        if not names and (args or final is not _Missing):
            raise self.fail(node, "can't give argument to non-function " + node.src)
        return recv

    def field(self, node: Node, recv: Any, name: str, args: list[Any], has_args: bool) -> Any:
        if isinstance(recv, Nil) or recv is None:
            raise self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(recv, dict):
            if has_args:
                raise self.fail(node, f"{name} is not a method but has arguments")
            self.last_key = name
            if name in recv:
                v = recv[name]
                return Nil(name) if v is None else v
            if name in OMITTED:
                zero = OMITTED[name]
                return Nil(name) if zero is _NIL else zero
            if self.missingkey_error:
                raise self.fail(node, f'map has no entry for key "{name}"')
            return None
        attr = getattr(recv, name, _Missing) if name[:1].isupper() else _Missing
        if attr is _Missing:
            tname = getattr(recv, "go_type", None) or type(recv).__name__
            raise self.fail(node, f"can't evaluate field {name} in type {tname}")
        if callable(attr):
            try:
                return attr(*args)
            except TypeError as e:
                raise self.fail(node, f"wrong number of args for {name}: {e}") from None
        if has_args:
            raise self.fail(node, f"{name} has arguments but cannot be invoked as function")
        return attr


def parse(text: str, *, name: str = "", funcs: dict[str, Callable[..., Any]] | None = None) -> Template:
    """Parse ``text``; raises :class:`TemplateError` with Go's message."""
    all_funcs = {**BUILTINS, **(funcs or {})}
    body = Parser(text, name, all_funcs).parse()
    return Template(text, body, name, all_funcs)
