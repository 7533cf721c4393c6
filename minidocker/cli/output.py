"""Docker CLI output helpers: tab-aligned tables and ``--format`` Go-template subset."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import click


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
    if fmt.startswith("table"):
        tpl = fmt[len("table") :].strip()
        header_fields = {k: h for k, h in zip(keys, headers, strict=True)}
        head = render(tpl, header_fields)
        click.echo(table(head.split("\t"), [render(tpl, i).split("\t") for i in items]))
        return
    for item in items:
        click.echo(render(fmt, item))


def ellipsis(text: str, max_len: int) -> str:
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)
