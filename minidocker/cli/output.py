"""Docker CLI output helpers: tab-aligned tables and ``--format`` Go-template subset."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import click


def key_values(values: Sequence[str]) -> dict[str, str]:
    """``-l k=v`` / ``-o k=v`` flags to a dict (``k`` alone: empty value), later ones winning.

    >>> key_values(["a=1", "b", "a=2=x"])
    {'a': '2=x', 'b': ''}
    """
    out: dict[str, str] = {}
    for v in values:
        key, _, value = v.partition("=")
        out[key] = value
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Docker's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: cells padded by 3, at least 10 wide;
    the last column is not padded."""
    all_rows = [list(headers), *[list(r) for r in rows]]
    widths = [0] * len(headers)
    for r in all_rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 10)
    lines = []
    for r in all_rows:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])]
        parts.append(r[-1])
        lines.append("".join(parts))  # like tabwriter, padding stays even before an empty last cell
    return "\n".join(lines)


_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def render(template: str, fields: dict[str, Any]) -> str:
    """Render ``{{.Field}}``, ``{{json .Field}}``, ``{{json .}}`` (enough for scripts and labs)."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")

    def sub(m: re.Match[str]) -> str:
        as_json, path = m.group(1), m.group(2)
        value: Any = fields
        for part in filter(None, path.split(".")):
            value = value.get(part) if isinstance(value, dict) else None
        if as_json:
            return json.dumps(value, separators=(",", ":"))
        return "" if value is None else str(value)

    return _FIELD.sub(sub, template)


def print_formatted(
    fmt: str | None,
    headers: Sequence[str],
    keys: Sequence[str],
    items: Sequence[dict[str, Any]],
    default: Callable[[], None],
) -> None:
    """``--format``: ``table {{...}}`` keeps a header row, a bare template prints one line each."""
    if not fmt:
        default()
        return
    # Docker's formatter: a Go template, a header row and tabwriter alignment for `table …`
    header = {k: h for k, h in zip(keys, headers, strict=True)}
    click.echo(format_items(fmt, items, header), nl=False)


def ellipsis(text: str, max_len: int) -> str:
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)


def inspect_each(
    refs: Sequence[str],
    find: Callable[[str], dict[str, Any]],
    kind: str,
    fmt: str | None,
    *,
    missing_code: int,
) -> None:
    """The docker CLI's ``<object> inspect`` loop: one document per ref found (a JSON array, or
    ``fmt`` rendered once per document), ``Error: No such <kind>: <ref>`` on stderr for each ref
    ``find`` raises ``NotFound`` for, then exit ``missing_code`` if there was any."""
    from minidocker.errors import NotFound

    results, missing = [], False
    for ref in refs:
        try:
            results.append(find(ref))
        except NotFound:
            missing = True
            click.echo(f"Error: No such {kind}: {ref}", err=True)
    if fmt:
        for r in results:
            click.echo(render(fmt, r))
    else:
        click.echo(dump_json(results))
    if missing:
        raise SystemExit(missing_code)


def tabwrite(text: str, *, minwidth: int = 10, tabwidth: int = 1, padding: int = 3) -> str:
    """Go's ``text/tabwriter`` (padchar ' ', no flags) over ``text``: tab-terminated cells are
    aligned per column block (consecutive lines that have that cell); the last cell of a line is
    not a column. Docker's tables use ``(10, 1, 3)``; ``docker top`` uses ``minwidth=20``.

    >>> tabwrite("A\\tBB\\nCCCC\\tD\\n", minwidth=0, padding=1)
    'A    BB\\nCCCC D\\n'
    """
    del tabwidth  # only matters for tab padding, which Docker does not use
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(a: int, b: int) -> None:
        for line in lines[a:b]:
            parts = []
            for j, cell in enumerate(line):
                parts.append(cell.ljust(widths[j]) if j < len(line) - 1 and j < len(widths) else cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)


def format_items(fmt: str, items: Sequence[Any], header: dict[str, str], *, trailer: bool = True) -> str:
    """Docker's ``formatter.Context.Write``: ``table`` formats get a header row (the template run
    on ``header`` with the string functions as no-ops) and tabwriter alignment; ``\\t``/``\\n``
    escapes are expanded; each item ends with a newline. Template errors raise
    :class:`gotemplate.TemplateError`.
    """
    from minidocker.cli import gotemplate

    is_table = fmt.startswith("table")
    body = (fmt[len("table") :] if is_table else fmt).strip(" ")
    body = body.replace("\\t", "\t").replace("\\n", "\n")
    tmpl = gotemplate.parse(body)
    rows = "".join(tmpl.execute(item) + "\n" for item in items)
    if not is_table:
        return rows
    try:
        head = tmpl.execute(header, funcs=gotemplate.HEADER_FUNCS)
    except gotemplate.ExecError as e:
        head = e.partial  # Docker ignores errors of the header pass
    text = tabwrite(head + "\n" + rows)
    return text if trailer else text.rstrip("\n")


def go_indent_json(obj: Any) -> str:
    """``docker inspect``'s output: the API's JSON (Go encoder, no HTML escaping) re-indented
    with four spaces by ``json.Indent``."""
    from minidocker.cli import gotemplate

    return gotemplate.go_json(obj, "    ")
