"""Capabilities: names, Docker's default 14, and ``--cap-add``/``--cap-drop``/``--privileged``.

A container's root is not the host's root because its *bounding set* holds only 14 capabilities:
after ``execve`` a uid-0 process gets permitted = bounding (file caps count as "all" for root), so
the bounding set is what really limits it. The inheritable set stays empty (CVE-2022-24769)::

    >>> hex(mask(tweak()))
    '0xa80425fb'
    >>> sorted(tweak(cap_add=["sys_admin"], cap_drop=["CAP_NET_RAW"]))[:3]
    ['CAP_AUDIT_WRITE', 'CAP_CHOWN', 'CAP_DAC_OVERRIDE']
"""

from __future__ import annotations

from minidocker.errors import InvalidInput

# linux/capability.h, in bit order (0 .. 40)
# fmt: off
NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
# fmt: on
NUMBERS: dict[str, int] = {name: i for i, name in enumerate(NAMES)}

# moby daemon/pkg/oci/caps/defaults.go (the order Docker writes them in the OCI spec)
# fmt: off
DEFAULT: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
# fmt: on
DEFAULT_MASK = 0xA80425FB


def normalize(names: list[str]) -> list[str]:
    """Docker's ``NormalizeLegacyCapabilities``: case-insensitive, ``CAP_`` optional, ``ALL`` kept.

    >>> normalize(["net_admin", "ALL"])
    ['CAP_NET_ADMIN', 'ALL']
    """
    out = []
    for raw in names:
        name = raw.strip().upper()
        if name != "ALL":
            if not name.startswith("CAP_"):
                name = "CAP_" + name
            if name not in NUMBERS:
                raise InvalidInput(f'unknown capability: "{raw}"', subject=raw)
        out.append(name)
    return out


def tweak(
    cap_add: list[str] | None = None,
    cap_drop: list[str] | None = None,
    privileged: bool = False,
    *,
    last_cap: int = len(NAMES) - 1,
) -> list[str]:
    """Docker's ``TweakCapabilities``: the capability names a container gets.

    ``--privileged`` gives every capability the kernel knows (up to ``last_cap``); ``--cap-add ALL``
    means all but the dropped ones; ``--cap-drop ALL`` means only the added ones.
    """
    everything = list(NAMES[: last_cap + 1])
    if privileged:
        return everything
    adds, drops = normalize(cap_add or []), normalize(cap_drop or [])
    if not adds and not drops:
        return list(DEFAULT)
    if "ALL" in adds:
        return [c for c in everything if c not in drops]
    if "ALL" in drops:
        return [c for c in adds if c != "ALL"]
    caps = [c for c in DEFAULT if c not in drops]
    return caps + [c for c in adds if c not in caps]


def mask(names: list[str]) -> int:
    """The 64-bit mask of a list of capability names (``/proc/<pid>/status`` CapEff format)."""
    m = 0
    for name in names:
        m |= 1 << NUMBERS[name]
    return m


def names_of(m: int) -> list[str]:
    """The capability names set in mask ``m``, in bit order.

    >>> names_of(0x2001)
    ['CAP_CHOWN', 'CAP_NET_RAW']
    """
    return [name for i, name in enumerate(NAMES) if m >> i & 1]
