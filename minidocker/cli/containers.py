"""The read-only container verbs: ``ps``, ``inspect`` (containers), ``logs``, ``top``, ``rename``,
``port``, and the ``container …`` group's aliases for them.

Output and exit codes are the Docker 20.10 CLI's: errors the docker CLI reports with exit status
1 (``Error: No such container: x``) exit 1 here too, template parse errors of ``inspect`` 64.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn

import click

from minidocker.cli.context import Context

if TYPE_CHECKING:
    from minidocker.container.state import Container
    from minidocker.image.store import Stores

pass_ctx = click.make_pass_decorator(Context)

DEFAULT_PS_FORMAT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)
PS_HEADER = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
}


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line and exit with the docker CLI's status for it."""
    click.echo(message, err=True)
    raise SystemExit(code)


# -- ps --------------------------------------------------------------------------------------------
def ellipsis(s: str, width: int) -> str:
    """``formatter.Ellipsis`` for display width (ASCII fast path, runes otherwise).

    >>> ellipsis("sh -c 'sleep 100; echo'", 20)
    "sh -c 'sleep 100; e…"
    """
    if width <= 0:
        return ""
    if len(s) <= width:
        return s
    return s[: width - 1] + "…"


def go_quote(s: str) -> str:
    """``strconv.Quote``: Go escapes, printable non-ASCII kept.

    >>> go_quote('a "b"\\t')
    '"a \\\\"b\\\\"\\\\t"'
    """
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif not ch.isprintable() and o > 0x7F:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """``formatter.DisplayablePorts`` (20.10): consecutive ports grouped into ranges.

    >>> displayable_ports([{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
    ...                    {"PrivatePort": 53, "Type": "udp"}, {"PrivatePort": 54, "Type": "udp"}])
    '53-54/udp, 0.0.0.0:8080->80/tcp'
    """
    ordered = sorted(
        ports,
        key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", "")),
    )
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for p in ordered:
        current = p.get("PrivatePort", 0)
        key = p.get("Type", "")
        ip = p.get("IP", "")
        if ip:
            if p.get("PublicPort", 0) != current:
                mappings.append(f"{ip}:{p.get('PublicPort', 0)}->{current}/{p.get('Type', '')}")
                continue
            key = f"{ip}/{key}"
        g = groups.get(key)
        if g is None:
            groups[key] = [current, current]
            order.append(key)
            continue
        if current == g[1] + 1:
            g[1] = current
            continue
        result.append(_form_group(key, g[0], g[1]))
        groups[key] = [current, current]
    for key in order:
        g = groups[key]
        result.append(_form_group(key, g[0], g[1]))
    return ", ".join(result + mappings)


def _form_group(key: str, first: int, last: int) -> str:
    parts = key.split("/")
    kind, ip = parts[0], ""
    if len(parts) > 1:
        ip, kind = parts[0], parts[1]
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{ip}:{group}->{group}"
    return f"{group}/{kind}"


class ContainerContext:
    """``formatter.ContainerContext``: what ``ps --format`` templates see (``{{.ID}}``,
    ``{{.Label "k"}}``…), built from one ``types.Container`` summary."""

    go_type = "*formatter.ContainerContext"

    def __init__(self, summary: dict[str, Any], *, trunc: bool = True, now: float | None = None) -> None:
        self.c = summary
        self.trunc = trunc
        self.now = time.time() if now is None else now

    def ID(self) -> str:  # noqa: N802 -- Go's exported names are the template's field names
        return self.c["Id"][:12] if self.trunc else self.c["Id"]

    def Names(self) -> str:  # noqa: N802
        names = [n[1:] if n.startswith("/") else n for n in self.c["Names"]]
        if not self.trunc:
            for n in names:
                if "/" not in n:
                    names = [n]
                    break
        return ",".join(names)

    def Image(self) -> str:  # noqa: N802
        from minidocker.image import reference

        image = self.c.get("Image") or ""
        if not image:
            return "<no image>"
        if self.trunc:
            short = self.c["ImageID"].removeprefix("sha256:")[:12]
            if image.removeprefix("sha256:")[:12] == short:
                return short
            try:
                ref = reference.parse(image)
            except Exception:
                return image
            # a tag is kept, a digest dropped: busybox:1.36@sha256:… shows as busybox:1.36
            return ref.familiar_name + (f":{ref.tag}" if ref.tag is not None else "")
        return image

    def Command(self) -> str:  # noqa: N802
        command = self.c["Command"]
        if self.trunc:
            command = ellipsis(command, 20)
        return go_quote(command)

    def CreatedAt(self) -> str:  # noqa: N802
        # time.Unix(created, 0).String(), in the local zone
        t = _dt.datetime.fromtimestamp(self.c["Created"]).astimezone()
        return t.strftime("%Y-%m-%d %H:%M:%S %z ") + (t.tzname() or "")

    def RunningFor(self) -> str:  # noqa: N802
        from minidocker.units import human_duration

        return human_duration(self.now - self.c["Created"]) + " ago"

    def Ports(self) -> str:  # noqa: N802
        return displayable_ports(self.c.get("Ports") or [])

    def State(self) -> str:  # noqa: N802
        return str(self.c["State"])

    def Status(self) -> str:  # noqa: N802
        return str(self.c["Status"])

    def Size(self) -> str:  # noqa: N802
        from minidocker.units import human_size

        rw = human_size(self.c.get("SizeRw", 0))
        root = self.c.get("SizeRootFs", 0)
        return f"{rw} (virtual {human_size(root)})" if root > 0 else rw

    def Labels(self) -> str:  # noqa: N802
        labels = self.c.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def Label(self, name: str) -> str:  # noqa: N802
        return str((self.c.get("Labels") or {}).get(name, ""))

    def Mounts(self) -> str:  # noqa: N802
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def LocalVolumes(self) -> str:  # noqa: N802
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:  # noqa: N802
        return ",".join(sorted((self.c.get("NetworkSettings") or {}).get("Networks") or {}))


def ps_lines(
    containers: list[Container],
    stores: Stores,
    *,
    fmt: str | None = None,
    quiet: bool = False,
    no_trunc: bool = False,
    size: bool = False,
    now: float | None = None,
) -> str:
    """The text ``docker ps`` prints for ``containers`` (already selected, newest first)."""
    from minidocker.cli import gotemplate
    from minidocker.cli.output import format_items
    from minidocker.container import inspect as svc

    if not fmt:
        fmt = "{{.ID}}" if quiet else DEFAULT_PS_FORMAT + ("\t{{.Size}}" if size else "")
    else:
        try:
            gotemplate.parse(fmt.removeprefix("table").strip(" ").replace("\\t", "\t").replace("\\n", "\n"))
        except gotemplate.TemplateError as e:
            raise PsFormatError(f"failed to parse template: {e}") from None
        size = size or ".Size" in fmt
    items = [
        ContainerContext(svc.summary(c, stores, size=size, now=now), trunc=not no_trunc, now=now)
        for c in containers
    ]
    try:
        return format_items(fmt, items, PS_HEADER)
    except gotemplate.TemplateError as e:
        raise PsFormatError(f"failed to execute template: {e}") from None


class PsFormatError(Exception):
    pass


@click.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", help="Pretty-print containers using a Go template")
@click.option(
    "-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)"
)
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@pass_ctx
def ps(ctx: Context, all_: bool, filters: tuple[str, ...], fmt: str | None, last: int, latest: bool,
       no_trunc: bool, quiet: bool, size: bool) -> None:  # fmt: skip
    """List containers."""
    from minidocker.container import inspect as svc
    from minidocker.errors import InvalidInput

    try:
        parsed = svc.parse_filters(filters)
    except InvalidInput as e:
        fail(f"Error: {e}")
    if latest:
        last = 1
    chosen = svc.select(ctx.runtime.list(), all_=all_, filters=parsed, last=last)
    try:
        text = ps_lines(chosen, ctx.stores, fmt=fmt, quiet=quiet, no_trunc=no_trunc, size=size)
    except PsFormatError as e:
        fail(str(e))
    click.echo(text, nl=False)


# -- inspect ---------------------------------------------------------------------------------------
def run_inspect(ctx: Context, names: tuple[str, ...], fmt: str | None, kind: str | None, size: bool) -> None:
    """``docker inspect``'s flow: a container, else an image (or only ``kind``); elements that
    fail are reported after the output, which is ``[]`` / a blank line when nothing matched."""
    from minidocker.cli import gotemplate
    from minidocker.cli.output import go_indent_json
    from minidocker.container import inspect as csvc
    from minidocker.errors import MinidockerError, NotFound
    from minidocker.image import images as isvc

    tmpl = None
    if fmt:
        try:
            tmpl = gotemplate.parse(fmt)
        except gotemplate.TemplateError as e:
            fail(f"template parsing error: {e}", 64)
    elements: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in names:
        try:
            element: dict[str, Any] | None = None
            if kind in (None, "container"):
                try:
                    element = csvc.container_json(ctx.runtime.get(name), ctx.stores, size=size)
                except NotFound:
                    if kind == "container":
                        raise NotFound(f"No such container: {name}") from None
            if element is None:
                try:
                    element = isvc.inspect(ctx.stores, name)
                except NotFound:
                    raise NotFound(f"No such {'image' if kind == 'image' else 'object'}: {name}") from None
            elements.append(element)
        except MinidockerError as e:
            errors.append(f"Error: {e}")
    if tmpl is None:
        click.echo(go_indent_json(elements) if elements else "[]")
    else:
        out = []
        for el in elements:
            try:
                out.append(tmpl.execute(el, missingkey_error=True) + "\n")
            except gotemplate.ExecError as e:
                errors.append(f"template parsing error: {e}")
        click.echo("".join(out) if out else "\n", nl=False)
    if errors:
        fail("\n".join(errors))


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@pass_ctx
def container_inspect(ctx: Context, names: tuple[str, ...], fmt: str | None, size: bool) -> None:
    """Display detailed information on one or more containers."""
    run_inspect(ctx, names, fmt, "container", size)


# -- logs ------------------------------------------------------------------------------------------
_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_go_duration(value: str) -> int | None:
    """``time.ParseDuration`` in ns, or None if ``value`` is not a duration.

    >>> parse_go_duration("1h30m"), parse_go_duration("1.5s"), parse_go_duration("2024")
    (5400000000000, 1500000000, None)
    """
    sign = -1 if value.startswith("-") else 1
    body = value.lstrip("+-")
    if not body or not re.fullmatch(r"(?:[0-9]*\.?[0-9]+(?:ns|us|µs|ms|s|m|h))+", body):
        return None
    return sign * sum(int(float(n) * _UNITS[u]) for n, u in _DURATION.findall(body))


def parse_timestamp(value: str, now_ns: int | None = None) -> int:
    """``--since``/``--until`` like the API's ``GetTimestamp``: a Go duration before now
    (``10m``), a Unix time (``1700000000.5``), or an RFC 3339 date/time (local zone if none).

    >>> parse_timestamp("10s", now_ns=20 * 10**9), parse_timestamp("1700000000.25")
    (10000000000, 1700000000250000000)
    >>> parse_timestamp("2024-01-02T03:04:05.123456789Z")
    1704164645123456789
    """
    from minidocker.errors import InvalidInput

    now = time.time_ns() if now_ns is None else now_ns
    d = parse_go_duration(value)
    if d is not None and value != "0":
        return now - d
    if re.fullmatch(r"\d+(\.\d{1,9})?", value):
        secs, _, frac = value.partition(".")
        return int(secs) * 10**9 + int(frac.ljust(9, "0") or "0")
    m = re.fullmatch(
        r"(\d{4}-\d\d-\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?)?(Z|[+-]\d\d:\d\d)?", value
    )
    if not m:
        raise InvalidInput(f'failed to parse value as time or duration: "{value}"')
    date, hh, mm, ss, frac, zone = m.groups()
    dt = _dt.datetime.strptime(f"{date} {hh or '00'}:{mm or '00'}:{ss or '00'}", "%Y-%m-%d %H:%M:%S")
    if zone is None:
        dt = dt.astimezone()  # naive = local time, as Docker parses it in time.Local
    elif zone == "Z":
        dt = dt.replace(tzinfo=_dt.UTC)
    else:
        sign = 1 if zone[0] == "+" else -1
        dt = dt.replace(
            tzinfo=_dt.timezone(sign * _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        )
    return int(dt.timestamp()) * 10**9 + int((frac or "0").ljust(9, "0"))


@click.command("logs")
@click.argument("container")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
@click.option(
    "--until", help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)"
)
@click.option(
    "-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")'
)
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@pass_ctx
def logs(ctx: Context, container: str, follow: bool, since: str | None, until: str | None, tail: str,
         timestamps: bool) -> None:  # fmt: skip
    """Fetch the logs of a container."""
    from minidocker.container.jsonlog import read_logs
    from minidocker.errors import InvalidInput, MinidockerError, NotFound

    try:
        c = ctx.runtime.get(container)
    except NotFound:
        fail(f"Error: No such container: {container}")
    except MinidockerError as e:
        fail(f"Error: {e}")
    since_ns = until_ns = None
    for flag, value in (("since", since), ("until", until)):
        if value:
            try:
                ns = parse_timestamp(value)
            except InvalidInput as e:
                fail(f'invalid value for "{flag}": {e}')
            since_ns, until_ns = (ns, until_ns) if flag == "since" else (since_ns, ns)
    n: int | None = None
    if tail != "all":
        try:
            n = int(tail)
        except ValueError:
            n = None  # the daemon shows everything for a tail it cannot parse
        if n is not None and n < 0:
            n = None
    if c.host_config.log_config.type not in ("json-file", ""):
        fail(f'Error: configured logging driver does not support reading: "{c.host_config.log_config.type}"')
    path = c.log_path or ctx.runtime.containers.log_path(c.id)

    def stopped() -> bool:
        try:
            return not ctx.runtime.get(c.id).state.running
        except MinidockerError:
            return True

    out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    sys.stdout.flush()
    for rec in read_logs(path, tail=n, since=since_ns, until=until_ns, timestamps=timestamps,
                         follow=follow and c.state.running, stop=stopped):  # fmt: skip
        stream = out.get(rec.stream, sys.stdout.buffer)
        stream.write(rec.line)
        if follow:
            stream.flush()
    sys.stdout.buffer.flush()
    sys.stderr.buffer.flush()


# -- top -------------------------------------------------------------------------------------------
def parse_ps_output(output: str, pids: list[int]) -> tuple[list[str], list[list[str]]]:
    """``parsePSOutput``: the header's titles, and the rows of processes in ``pids`` (with the
    thread lines that follow them); the last column keeps its spaces.

    >>> parse_ps_output("UID PID CMD\\nroot 7 sleep 1\\nroot 8 x\\n", [7])
    (['UID', 'PID', 'CMD'], [['root', '7', 'sleep 1']])
    """
    from minidocker.errors import InvalidInput

    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidInput("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    rows: list[list[str]] = []
    previous = False
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        if fields[pid_index] == "-":
            if previous:
                rows.append(_merge_fields(fields, len(titles)))
            continue
        try:
            p = int(fields[pid_index])
        except ValueError:
            raise InvalidInput(f"Unexpected pid '{fields[pid_index]}'") from None
        previous = p in pids
        if previous:
            rows.append(_merge_fields(fields, len(titles)))
    return titles, rows


def _merge_fields(fields: list[str], n: int) -> list[str]:
    return fields[: n - 1] + [" ".join(fields[n - 1 :])]


def container_pids(c: Container) -> list[int]:
    """The processes of a running container: its cgroup's, else its recorded init pid."""
    from minidocker import cgroups

    try:
        pids = cgroups.open_cgroup(c.id).procs()
    except Exception:  # no cgroup (yet/any more): the init process is all we know
        pids = []
    return pids or ([c.state.pid] if c.state.pid else [])


@click.command("top", context_settings={"ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def top(ctx: Context, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    import subprocess

    from minidocker.cli.output import tabwrite
    from minidocker.errors import InvalidInput, MinidockerError

    try:
        c = ctx.runtime.get(container)
    except MinidockerError as e:
        fail(f"Error: {e}")
    args_text = " ".join(ps_args) or "-ef"
    for key, value in re.findall(r"\s+([^\s]*)=\s*(PID[^\s]*)", args_text):
        if key != "pid":
            fail(f'Error: specifying "{key}={value}" is not allowed')
    if not c.state.running:
        fail(f"Error: Container {c.id} is not running")
    if c.state.restarting:
        fail(f"Error: Container {c.id} is restarting, wait until the container is running")
    pids = container_pids(c)
    args = args_text.split(" ")
    r = subprocess.run(["ps", *args, "-q" + ",".join(map(str, pids))], capture_output=True, text=True)
    if r.returncode != 0:
        # some ps options (f) do not combine with q: ask for everything and filter
        r = subprocess.run(["ps", *args], capture_output=True, text=True)
        if r.returncode != 0:
            first = (r.stderr.splitlines() or [f"exit status {r.returncode}"])[0]
            fail(f"Error: ps: {first}")
    try:
        titles, rows = parse_ps_output(r.stdout, pids)
    except InvalidInput as e:
        fail(f"Error: {e}")
    text = "\t".join(titles) + "\n" + "".join("\t".join(row) + "\n" for row in rows)
    click.echo(tabwrite(text, minwidth=20), nl=False)


# -- rename, port ----------------------------------------------------------------------------------
@click.command("rename")
@click.argument("old")
@click.argument("new")
@pass_ctx
def rename(ctx: Context, old: str, new: str) -> None:
    """Rename a container."""
    from minidocker.errors import MinidockerError

    old, new = old.strip(), new.strip()
    if not old or not new:
        fail("Error: Neither old nor new names may be empty")
    try:
        ctx.runtime.containers.rename(old, new)
    except MinidockerError as e:
        fail(f"Error: {e}")


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False)
@pass_ctx
def port(ctx: Context, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    from minidocker.errors import MinidockerError

    try:
        c = ctx.runtime.get(container)
    except MinidockerError as e:
        fail(f"Error: {e}")
    ports = c.network_settings.ports or {}
    if private_port:
        number, _, proto = private_port.partition("/")
        proto = proto or "tcp"
        for part in number.split("-", 1):
            if not part.isdigit() or int(part) > 65535:
                syntax = "invalid syntax" if not part.isdigit() else "value out of range"
                fail(f'strconv.ParseUint: parsing "{part}": {syntax}')
        key = f"{number}/{proto}"
        bindings = ports.get(key)
        if bindings is None:
            fail(f"Error: No public port '{key}' published for {container}")
        for b in bindings:
            click.echo(f"{b.host_ip}:{b.host_port}")
        return
    for key in sorted(ports, key=_port_key):
        for b in ports[key] or []:
            click.echo(f"{key} -> {b.host_ip}:{b.host_port}")


def _port_key(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    return (int(number) if number.isdigit() else 0, proto)


# -- the `container` group -------------------------------------------------------------------------
# The lead's `container` group (cli/run.py) adds these: `container ls|ps|list|inspect|logs|top|rename|port`.
GROUP_COMMANDS: dict[str, click.Command] = {
    "ls": ps,
    "ps": ps,
    "list": ps,
    "inspect": container_inspect,
    "logs": logs,
    "top": top,
    "rename": rename,
    "port": port,
}
