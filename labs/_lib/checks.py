"""What every lab checker shares: the host handle, PASS/FAIL reporting, and readers for host state.

A checker is a small script that looks only at the *host* (files, mounts, xattrs, the data root
on disk) through testinfra, never at what the student typed. It prints exactly one line per
expectation::

    PASS merged is an overlay mount
    FAIL upper/notes.txt is a whiteout: expected a character device 0/0, found a regular file

and exits 0 only if every expectation passed (1 if some failed, 2 if the checker itself broke).
Failure messages say what was expected and what was found, but never print a secret answer
(a chain ID the student must compute): they describe it instead.

Used as::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    from _lib.checks import Checker, lab_dir

    c = Checker("03")
    c.expect("merged is an overlay mount", ok, "expected ..., found ...")
    sys.exit(c.finish())

The checkers read the data root directly (``imagedb``, ``layerdb``, ``overlay2``) and recompute
digests with :mod:`hashlib`; they deliberately do not import ``minidocker``, so a bug in minidocker
cannot make its own lab pass.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shlex
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

#: Where every lab keeps its work dirs and data root; overridable so tests can use a scratch dir.
LABS_DIR = os.environ.get("MINIDOCKER_LABS_DIR", "/var/lib/minidocker-labs")

# Exit codes shared by checkers and the runner.
EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BROKEN = 2


def lab_dir(number: str) -> str:
    """``/var/lib/minidocker-labs/NN``: the lab's scratch area (setup creates it, cleanup removes it)."""
    return os.path.join(LABS_DIR, number)


def data_root(number: str) -> str:
    """The lab's own minidocker data root, so labs never touch the user's images."""
    return os.path.join(lab_dir(number), "root")


@cache
def host() -> Any:
    """The testinfra host the checkers inspect (this machine)."""
    import testinfra

    return testinfra.get_host("local://")


class Checker:
    """Collects expectations, prints one PASS/FAIL line each, and turns them into an exit code."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.passed = 0
        self.failed = 0

    def expect(self, name: str, ok: bool, detail: str = "") -> bool:
        """Record one expectation; ``detail`` explains a failure (expected ... found ...)."""
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail or 'not satisfied'}", flush=True)
        return ok

    def blocked(self, name: str, because: str) -> bool:
        """An expectation that cannot be evaluated because an earlier one failed: still one FAIL line."""
        return self.expect(name, False, f"cannot check yet: {because}")

    def finish(self) -> int:
        total = self.passed + self.failed
        verdict = "all expectations pass" if not self.failed else f"{self.failed} of {total} failed"
        print(f"lab {self.lab}: {self.passed}/{total} pass ({verdict})", flush=True)
        return EXIT_PASS if not self.failed else EXIT_FAIL


# -- small readers -------------------------------------------------------------------------------
def read_bytes(path: str) -> bytes | None:
    """File content through testinfra, or None if it is missing or not a regular file."""
    f = host().file(path)
    if not f.exists or not f.is_file:
        return None
    data: bytes = f.content
    return data


def read_text(path: str) -> str | None:
    data = read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def read_answer(path: str) -> str | None:
    """An answer file the student wrote: surrounding whitespace (``echo``'s newline) is ignored."""
    text = read_text(path)
    return None if text is None else text.strip()


def read_json_object(path: str) -> dict[str, Any] | None:
    """A JSON object file on the host (a config.v2.json, say), or None if absent or not one."""
    text = read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def find_named_container(root: str, name: str) -> tuple[str | None, dict[str, Any], str]:
    """(id, config.v2.json) of the container called ``name`` in the data root ``root``; or
    (None, {}, what was found instead), worded for a FAIL line."""
    containers = os.path.join(root, "containers")
    d = host().file(containers)
    if not d.is_directory:
        return None, {}, f"no {containers} yet (did you export MINIDOCKER_DATA_ROOT={root}?)"
    names = []
    for cid in sorted(d.listdir()):
        cfg = read_json_object(os.path.join(containers, cid, "config.v2.json"))
        if cfg is None:
            continue
        names.append(str(cfg.get("Name", "?")).lstrip("/"))
        if cfg.get("Name") == "/" + name:
            return cid, cfg, ""
    return None, {}, f"containers named {names}" if names else "no container at all"


def realpath(path: str) -> str | None:
    """``path`` with every symlink resolved (``readlink -e`` on the host), or None if it does not exist."""
    out = host().run("readlink -e -- " + shlex.quote(path))
    return out.stdout.strip() if out.rc == 0 else None


def describe(path: str) -> str:
    """A short phrase for what ``path`` is on the host: "missing", "a directory", "a char device 0/0"..."""
    h = host()
    f = h.file(path)
    if f.is_symlink:
        return f"a symlink to {f.linked_to}"
    if not f.exists:
        return "missing"
    if f.is_directory:
        return "a directory"
    if f.is_file:
        return f"a regular file of {f.size} bytes"
    out = h.run("stat -c '%F %t:%T' " + shlex.quote(path))
    if out.rc == 0:
        kind, _, nums = out.stdout.strip().rpartition(" ")
        major, minor = (int(x, 16) for x in nums.split(":"))
        return f"a {kind} {major}/{minor}"
    return "something unreadable"


def is_whiteout(path: str) -> bool:
    """Overlayfs whiteout: a character device with device number 0/0."""
    out = host().run("stat -c '%F %t %T' " + shlex.quote(path))
    return out.rc == 0 and out.stdout.split() == ["character", "special", "file", "0", "0"]


def xattr(path: str, name: str) -> str | None:
    """Value of an extended attribute (``trusted.*`` needs root), or None if unset/unreadable.

    Through a tiny python one-liner because ``getfattr`` (package attr) is often not installed.
    """
    script = "import os,sys\ntry:\n print(os.getxattr(sys.argv[1], sys.argv[2]).decode())\nexcept OSError:\n sys.exit(3)"
    out = host().run(f"python3 -c {shlex.quote(script)} {shlex.quote(path)} {shlex.quote(name)}")
    return out.stdout.rstrip("\n") if out.rc == 0 else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """ChainIDs of every prefix, base first: C0 = D0, Cn = sha256(C(n-1) + " " + Dn).

    Recomputed here on purpose (not imported from minidocker): the checker is an independent witness.
    """
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + sha256_hex(f"{out[-1]} {d}".encode()))
    return out


# -- mounts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo, the fields a checker needs."""

    mount_point: str
    fstype: str
    source: str
    super_options: dict[str, str]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts() -> list[Mount]:
    """All mounts visible to the host's shell (read through testinfra, so the same on ssh://)."""
    text = host().file("/proc/self/mountinfo").content_string
    result: list[Mount] = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        opts: dict[str, str] = {}
        for opt in rfields[2].split(","):
            key, _, value = opt.partition("=")
            opts[key] = value
        result.append(Mount(_unescape(fields[4]), rfields[0], _unescape(rfields[1]), opts))
    return result


def mounts_under(path: str) -> list[Mount]:
    """Mounts at or below ``path`` (what cleanup scripts must leave empty)."""
    prefix = path.rstrip("/") + "/"
    return [m for m in mounts() if m.mount_point == path.rstrip("/") or m.mount_point.startswith(prefix)]


def mount_at(path: str) -> Mount | None:
    """The top-most mount whose mount point is exactly ``path`` (mountinfo lists stacked mounts in order)."""
    found = [m for m in mounts() if m.mount_point == path.rstrip("/")]
    return found[-1] if found else None


# -- a minidocker / Docker data root, read as plain files ----------------------------------------
class DataRoot:
    """Read-only view of ``<root>/image/overlay2/...`` and ``<root>/overlay2/...`` (Docker 20.10 layout)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.image_dir = os.path.join(root, "image", "overlay2")
        self.layerdb = os.path.join(self.image_dir, "layerdb", "sha256")
        self.overlay2 = os.path.join(root, "overlay2")

    def exists(self) -> bool:
        return host().file(os.path.join(self.image_dir, "repositories.json")).exists

    def repositories(self) -> dict[str, dict[str, str]]:
        text = read_text(os.path.join(self.image_dir, "repositories.json"))
        if not text:
            return {}
        repos: dict[str, dict[str, str]] = json.loads(text).get("Repositories") or {}
        return repos

    def image_id(self, ref: str) -> str | None:
        """``sha256:<id>`` for a familiar ``name:tag`` reference, from repositories.json."""
        name = ref.rsplit(":", 1)[0]
        return self.repositories().get(name, {}).get(ref)

    def config_bytes(self, image_id: str) -> bytes | None:
        return read_bytes(os.path.join(self.image_dir, "imagedb", "content", "sha256", image_id[7:]))

    def config(self, image_id: str) -> dict[str, Any] | None:
        raw = self.config_bytes(image_id)
        return None if raw is None else json.loads(raw)

    def diff_ids(self, image_id: str) -> list[str]:
        cfg = self.config(image_id) or {}
        return list((cfg.get("rootfs") or {}).get("diff_ids") or [])

    def layer_file(self, chain_id: str, name: str) -> str | None:
        """A layerdb metadata file (``diff``, ``cache-id``, ``parent``, ``size``), stripped, or None."""
        return read_answer(os.path.join(self.layerdb, chain_id.removeprefix("sha256:"), name))

    def layer_ids(self) -> list[str]:
        d = host().file(self.layerdb)
        if not d.is_directory:
            return []
        return sorted(n for n in d.listdir() if len(n) == 64)

    def cache_dir(self, cache_id: str) -> str:
        return os.path.join(self.overlay2, cache_id)


# -- network state (labs 07 and 11) ---------------------------------------------------------------
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def ip_json(args: str, netns: str | None = None, pid: int | None = None) -> list[dict[str, Any]]:
    """``ip -j -d <args>`` on the host, inside the named namespace ``netns`` (``ip -n``) or in the
    network namespace of ``pid`` (``nsenter -n``, the host's ``ip``); [] if the command failed.

    ``ip_json("link show dev lab07br")``, ``ip_json("-4 addr show dev eth0", pid=1234)``
    """
    if netns:
        prefix = f"ip -n {shlex.quote(netns)} "
    elif pid:
        prefix = f"nsenter -t {pid} -n ip "
    else:
        prefix = "ip "
    out = host().run(f"{prefix}-j -d {args}")
    if out.rc != 0:
        return []
    try:
        data: list[dict[str, Any]] = json.loads(out.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return data


def link(name: str, netns: str | None = None, pid: int | None = None) -> dict[str, Any] | None:
    """The link ``name`` as ``ip -j -d link`` shows it (see :func:`ip_json` for where), or None."""
    found = ip_json(f"link show dev {shlex.quote(name)}", netns, pid)
    return found[0] if found else None


def ipv4(name: str, netns: str | None = None, pid: int | None = None) -> list[str]:
    """The IPv4 addresses of link ``name`` as ``A.B.C.D/len`` (see :func:`ip_json` for where)."""
    found = ip_json(f"-4 addr show dev {shlex.quote(name)}", netns, pid)
    return [f"{a['local']}/{a['prefixlen']}" for x in found for a in x.get("addr_info") or []]


def is_up(lnk: dict[str, Any] | None) -> bool:
    return lnk is not None and "UP" in (lnk.get("flags") or [])


def bridge_problem(name: str, cidr: str, hint: str = "") -> str:
    """Empty when ``name`` is a bridge on the host with the address ``cidr``, up; else what is wrong
    (expected ..., found ...). ``hint`` goes after "on the host" when the link is missing."""
    br = link(name)
    if br is None:
        return f"expected a link {name} on the host{hint}, found none"
    kind = (br.get("linkinfo") or {}).get("info_kind")
    if kind != "bridge":
        return f"expected a link of type bridge, found {kind or 'a plain link'}"
    addresses = ipv4(name)
    if cidr not in addresses:
        return f"expected the address {cidr}, found {', '.join(addresses) or 'no IPv4 address'}"
    if not is_up(br):
        return f"expected the flag UP, found flags {','.join(br.get('flags') or [])}"
    return ""


def listening(tcp_table: str | None) -> set[tuple[str, int]]:
    """(address, port) of LISTEN sockets in a /proc/<pid>/net/tcp table ("0.0.0.0" for any; "::"
    for every IPv6 address)."""
    found = set()
    for line in (tcp_table or "").splitlines()[1:]:
        f = line.split()
        if len(f) > 3 and f[3] == TCP_LISTEN:
            addr, port = f[1].rsplit(":", 1)
            if len(addr) == 8:  # IPv4, little-endian hex
                ip = str(ipaddress.IPv4Address(bytes.fromhex(addr)[::-1]))
            else:
                ip = "::"
            found.add((ip, int(port, 16)))
    return found


def listening_ports(net_dir: str) -> set[int]:
    """Listening TCP ports of one network namespace, from ``<net_dir>/tcp`` and ``tcp6`` (httpd
    binds [::]:80 when it can): ``listening_ports(f"/proc/{pid}/net")``."""
    socks = listening(read_text(f"{net_dir}/tcp")) | listening(read_text(f"{net_dir}/tcp6"))
    return {p for _, p in socks}


def fetch(url: str) -> tuple[str | None, str]:
    """GET url from the host with no proxy: (the page, "") or (None, why)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as r:
            return r.read().decode("utf-8", "replace"), ""
    except Exception as e:  # noqa: BLE001 - any failure is the finding to report
        return None, f"{type(e).__name__}: {getattr(e, 'reason', e)}"


def fail_on_crash(main: Any) -> int:
    """Run a checker's ``main`` and map an unexpected exception to EXIT_BROKEN with one clear line."""
    try:
        code: int = main()
        return code
    except Exception as e:  # noqa: BLE001 - report any checker bug as "broken", not as a lab failure
        print(f"BROKEN checker crashed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return EXIT_BROKEN
