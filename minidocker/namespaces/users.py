"""``-u user[:group]`` and ``--group-add``, resolved against the *container's* /etc/passwd and /etc/group.

The files are parsed as text, never through Python's ``pwd``/``grp`` modules: those go through glibc
NSS, which may ``dlopen`` a ``libnss_*.so`` found in the image, i.e. run image code with our
privileges (CVE-2019-14271, reliability case C4). The rules are runc's ``GetExecUser``::

    >>> passwd = b"root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/home:/bin/false\\n"
    >>> group = b"root:x:0:\\nwheel:x:10:root\\nnogroup:x:65534:\\n"
    >>> resolve("", passwd, group)
    ExecUser(uid=0, gid=0, groups=[0, 10], home='/root')
    >>> resolve("nobody:wheel", passwd, group)
    ExecUser(uid=65534, gid=10, groups=[10], home='/home')
    >>> resolve("1234", passwd, group)     # numeric ids need no entry
    ExecUser(uid=1234, gid=0, groups=[0], home='/')
"""

from __future__ import annotations

from dataclasses import field

from minidocker.errors import InvalidInput
from minidocker.record import Record, record

MAX_ID = 2**31 - 1


@record
class ExecUser(Record):
    """Who the container process runs as: uid, gid and supplementary groups."""

    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)  # supplementary groups for setgroups(2)
    home: str = "/"


@record
class _Entry(Record):
    """One /etc/passwd or /etc/group line."""

    name: str
    id: int
    gid: int = 0
    home: str = ""
    members: list[str] = field(default_factory=list)


def _int(s: str) -> int | None:
    s = s.strip()
    return int(s) if s.isdigit() else None


def parse_passwd(data: bytes | None) -> list[_Entry]:
    """``name:password:uid:gid:gecos:home:shell`` lines; malformed numbers read as 0 like runc."""
    out = []
    for line in (data or b"").decode(errors="replace").splitlines():
        if not line.strip():
            continue
        parts = (line.split(":") + [""] * 7)[:7]
        out.append(_Entry(parts[0], _int(parts[2]) or 0, _int(parts[3]) or 0, parts[5]))
    return out


def parse_group(data: bytes | None) -> list[_Entry]:
    """``name:password:gid:member,member`` lines."""
    out = []
    for line in (data or b"").decode(errors="replace").splitlines():
        if not line.strip():
            continue
        parts = (line.split(":") + [""] * 4)[:4]
        members = [m for m in parts[3].split(",") if m]
        out.append(_Entry(parts[0], _int(parts[2]) or 0, members=members))
    return out


def _checked(n: int, what: str) -> int:
    if not 0 <= n <= MAX_ID:
        raise InvalidInput(f"{what} {n} is out of range", subject=str(n))
    return n


def resolve(
    spec: str, passwd: bytes | None, group: bytes | None, group_add: list[str] | None = None
) -> ExecUser:
    """Resolve ``user[:group]`` (names or numbers) plus ``--group-add`` entries.

    With no explicit group, the user's primary gid comes from passwd and the supplementary groups
    are the groups listing the user as a member; an explicit group replaces the primary gid and
    adds no supplementary group (runc). Unknown *names* are errors, unknown *numbers* are fine.
    """
    user_arg, _, group_arg = spec.partition(":")
    uid_arg, gid_arg = _int(user_arg), _int(group_arg)
    out = ExecUser()
    users = parse_passwd(passwd)
    if user_arg == "":
        match = [u for u in users if u.id == out.uid]
    elif uid_arg is not None:
        match = [u for u in users if u.id == uid_arg]
    else:
        match = [u for u in users if u.name == user_arg]
    matched_name = ""
    if match:
        matched_name = match[0].name
        out.uid, out.gid, out.home = match[0].id, match[0].gid, match[0].home or "/"
    elif user_arg != "":
        if uid_arg is None:
            raise InvalidInput(
                f"unable to find user {user_arg}: no matching entries in passwd file", subject=spec
            )
        out.uid = _checked(uid_arg, "uid")
    groups = parse_group(group)
    if group_arg != "":
        gmatch = [g for g in groups if (g.id == gid_arg if gid_arg is not None else g.name == group_arg)]
        if gmatch:
            out.gid = gmatch[0].id
        elif gid_arg is None:
            raise InvalidInput(
                f"unable to find group {group_arg}: no matching entries in group file", subject=spec
            )
        else:
            out.gid = _checked(gid_arg, "gid")
    elif matched_name:
        out.groups = [g.id for g in groups if matched_name in g.members]
    for extra in group_add or []:
        gid = next((g.id for g in groups if g.name == extra or str(g.id) == extra), None)
        if gid is None:
            if _int(extra) is None:
                raise InvalidInput(f"Unable to find group {extra}", subject=extra)
            gid = _checked(_int(extra) or 0, "gid")
        if gid not in out.groups:
            out.groups.append(gid)
    # Docker 20.10 (CVE-2022-36109 fix) always lists the primary gid among the supplementary groups:
    # without it a group's negative permissions could be shed with setgroups
    if out.gid not in out.groups:
        out.groups.insert(0, out.gid)
    return out
