"""The resource limits of ``docker run``, how the CLI parses them and how the daemon checks them.

Three steps, in Docker's order:

1. the CLI parses flag text: ``-m 64m`` → ``parse_bytes`` (go-units ``RAMInBytes``), ``--cpus 0.5`` →
   ``parse_cpus`` (``opts.NanoCPUs``), ``--memory-swap -1`` → ``parse_swap``;
2. the daemon fills defaults at create (``MemorySwap = 2 × Memory``; done by
   ``container.hostconfig.HostConfig.for_run`` since it is recorded in hostconfig.json);
3. the daemon checks them against what the kernel offers at create and start (``verify``, a port
   of ``verifyPlatformContainerResources`` in daemon/daemon_unix.go): errors stop the run, missing
   kernel features become warnings and the limit is dropped.

>>> parse_bytes("64m"), parse_cpus("0.5")
(67108864, 500000000)
>>> r = Resources(memory=parse_bytes("64m"), memory_swap=parse_bytes("128m"), nano_cpus=parse_cpus("0.5"))
>>> r.cpu_quota_period()
(50000, 100000)
"""

from __future__ import annotations

import os
import re
from dataclasses import field, fields, replace

from minidocker.errors import InvalidInput
from minidocker.record import FrozenRecord, record

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

LINUX_MIN_MEMORY = 6 * 1024 * 1024  # daemon/daemon_unix.go linuxMinMemory ("6MB")
DEFAULT_CFS_PERIOD = 100_000  # µs; what the daemon uses with --cpus (100ms, sched-bwc.txt)

# go-units v0.4.0 (Docker 20.10): the unit letter, then an optional "i" and "b", case-insensitive.
# compiled on first use (re caches it): a run without -m pays nothing (~0.3 ms before the fork)
_SIZE = r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$"
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(s: str) -> int:
    """Docker's ``units.RAMInBytes``: binary units, fractions allowed, truncated toward zero.

    >>> parse_bytes("512k"), parse_bytes("1g"), parse_bytes("1.5M"), parse_bytes("100"), parse_bytes("2 GiB")
    (524288, 1073741824, 1572864, 100, 2147483648)
    >>> parse_bytes("64x")
    Traceback (most recent call last):
    ...
    minidocker.errors.InvalidInput: invalid size: '64x'
    """
    m = re.match(_SIZE, s)
    if m is None:
        raise InvalidInput(f"invalid size: '{s}'", subject=s)
    number = m.group(1)
    if number.count(".") > 1:  # the regex lets "1.2.3" through; Go's ParseFloat then refuses it
        raise InvalidInput(f'strconv.ParseFloat: parsing "{number}": invalid syntax', subject=s)
    size = float(number)
    if m.group(3):
        size *= _BINARY[m.group(3).lower()]
    return int(size)  # Go's int64(float64) truncates


def parse_swap(s: str) -> int:
    """``--memory-swap``: like ``parse_bytes`` but ``-1`` means unlimited swap (``opts.MemSwapBytes``).

    >>> parse_swap("-1"), parse_swap("128m")
    (-1, 134217728)
    """
    return -1 if s == "-1" else parse_bytes(s)


def parse_cpus(s: str) -> int:
    """``--cpus``: a rational number of CPUs to NanoCpus (``opts.ParseCPUs``, ``big.Rat`` in Go).

    >>> parse_cpus("0.5"), parse_cpus("2"), parse_cpus("1/4"), parse_cpus("1.5e0")
    (500000000, 2000000000, 250000000, 1500000000)
    >>> parse_cpus("0.0000000001")
    Traceback (most recent call last):
    ...
    minidocker.errors.InvalidInput: value is too precise
    """
    if s != s.strip() or not s:  # big.Rat.SetString refuses surrounding blanks; Fraction would not
        raise InvalidInput(f"failed to parse {s} as a rational number", subject=s)
    from fractions import Fraction  # only for --cpus: importing it (decimal, numbers) costs ~2 ms

    try:
        cpus = Fraction(s)
    except (ValueError, ZeroDivisionError):
        raise InvalidInput(f"failed to parse {s} as a rational number", subject=s) from None
    nano = cpus * 1_000_000_000
    if nano.denominator != 1:
        raise InvalidInput("value is too precise", subject=s)
    return int(nano)


@record(frozen=True)
class Resources(FrozenRecord):
    """The cgroup-relevant part of HostConfig, with Docker's field meanings and zero = "not set".

    * ``memory_swap`` is memory + swap (Docker's meaning, as cgroup v1's ``memsw``); -1 = unlimited.
    * ``nano_cpus`` (``--cpus``) and ``cpu_period``/``cpu_quota`` are exclusive (``verify`` says so).
    * ``pids_limit``: ``None`` or 0 = leave the kernel default ``max``; negative = write ``max``.

    Build it from a HostConfig-like object (same attribute names)::

        Resources.from_object(hostconfig)
    """

    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    cpu_shares: int = 0
    nano_cpus: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int = 0

    @classmethod
    def from_object(cls, obj: Any) -> Resources:
        """Copy the fields of the same name from ``obj`` (e.g. ``container.hostconfig.HostConfig``)."""
        return cls(**{f.name: getattr(obj, f.name) for f in fields(cls) if hasattr(obj, f.name)})

    def cpu_quota_period(self) -> tuple[int, int]:
        """(quota, period) in µs as the daemon puts them in the OCI spec; 0 = not set.

        ``--cpus`` becomes quota = NanoCpus × 100000 / 1e9 with period 100000 (daemon/oci_linux.go).

        >>> Resources(nano_cpus=1_500_000_000).cpu_quota_period()
        (150000, 100000)
        >>> Resources(cpu_quota=20000).cpu_quota_period()
        (20000, 0)
        """
        if self.nano_cpus > 0:
            return self.nano_cpus * DEFAULT_CFS_PERIOD // 1_000_000_000, DEFAULT_CFS_PERIOD
        return self.cpu_quota, self.cpu_period


@record(frozen=True)
class SysInfo(FrozenRecord):
    """What the kernel offers, as Docker's ``pkg/sysinfo`` finds it (``cgroups.sysinfo()`` fills it)."""

    memory_limit: bool = True
    swap_limit: bool = True
    memory_reservation: bool = True
    cpu_shares: bool = True
    cpu_cfs: bool = True
    cpuset: bool = True
    cpus: str = ""  # the CPUs a container may use, e.g. "0-1"
    mems: str = ""
    pids_limit: bool = True
    blkio_weight: bool = True
    ncpu: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


def parse_uint_list(val: str, maximum: int | None = None) -> set[int]:
    """Docker's ``parsers.ParseUintList(Maximum)``: "0-2,4" → {0, 1, 2, 4}.

    >>> sorted(parse_uint_list("0-2,4"))
    [0, 1, 2, 4]
    """
    if val == "":
        return set()
    out: set[int] = set()
    bad = InvalidInput(f"invalid format: {val}", subject=val)

    def atoi(s: str) -> int:
        if not re.fullmatch(r"[+-]?\d+", s):
            raise bad
        return int(s)

    for part in val.split(","):
        if "-" not in part:
            v = atoi(part)
            if maximum is not None and v > maximum:
                raise InvalidInput(f"value of out range, maximum is {maximum}", subject=val)
            out.add(v)
            continue
        lo_s, hi_s = part.split("-", 1)
        lo, hi = atoi(lo_s), atoi(hi_s)
        if hi < lo:
            raise bad
        if maximum is not None and hi > maximum:
            raise InvalidInput(f"value of out range, maximum is {maximum}", subject=val)
        out.update(range(lo, hi + 1))
    return out


def _list_available(provided: str, available: str) -> bool:
    """``sysinfo.isCpusetListAvailable``: every requested number is in the available list."""
    avail = parse_uint_list(available)
    maximum = max([8192, *avail])  # "8192 is the normal maximum number of CPUs in Linux"
    return parse_uint_list(provided, maximum) <= avail


def verify(res: Resources, info: SysInfo) -> tuple[Resources, list[str]]:
    """Docker 20.10's ``verifyPlatformContainerResources``: (resources to apply, warnings).

    Impossible combinations raise ``InvalidInput`` with Docker's message; a limit the kernel cannot
    enforce is dropped with Docker's warning (the run goes on).

    >>> verify(Resources(memory=4 << 20), SysInfo())
    Traceback (most recent call last):
    ...
    minidocker.errors.InvalidInput: Minimum memory limit allowed is 6MB
    >>> verify(Resources(memory=64 << 20, memory_swap=128 << 20), SysInfo(swap_limit=False))[1]
    ['Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.']
    """
    warnings: list[str] = []
    r = res

    def err(msg: str) -> InvalidInput:
        return InvalidInput(msg)

    # memory
    if r.memory != 0 and r.memory < LINUX_MIN_MEMORY:
        raise err("Minimum memory limit allowed is 6MB")
    if r.memory > 0 and not info.memory_limit:
        warnings.append(
            "Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
            "Limitation discarded."
        )
        r = replace(r, memory=0, memory_swap=-1)
    if r.memory > 0 and r.memory_swap != -1 and not info.swap_limit:
        warnings.append(
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
            "Memory limited without swap."
        )
        r = replace(r, memory_swap=-1)
    if r.memory > 0 and r.memory_swap > 0 and r.memory_swap < r.memory:
        raise err("Minimum memoryswap limit should be larger than memory limit, see usage")
    if r.memory == 0 and r.memory_swap > 0:
        raise err("You should always set the Memory limit when using Memoryswap limit, see usage")
    if r.memory_reservation > 0 and not info.memory_reservation:
        warnings.append(
            "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. "
            "Limitation discarded."
        )
        r = replace(r, memory_reservation=0)
    if r.memory_reservation > 0 and r.memory_reservation < LINUX_MIN_MEMORY:
        raise err("Minimum memory reservation allowed is 6MB")
    if r.memory > 0 and r.memory_reservation > 0 and r.memory < r.memory_reservation:
        raise err("Minimum memory limit can not be less than memory reservation limit, see usage")

    # cpu
    if r.nano_cpus > 0 and r.cpu_period > 0:
        raise err("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if r.nano_cpus > 0 and r.cpu_quota > 0:
        raise err("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if r.nano_cpus > 0 and not info.cpu_cfs:
        raise err(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler "
            "or the cgroup is not mounted"
        )
    if r.nano_cpus < 0 or r.nano_cpus > info.ncpu * 1_000_000_000:
        raise err(
            f"Range of CPUs is from 0.01 to {info.ncpu}.00, as there are only {info.ncpu} CPUs available"
        )
    if r.cpu_shares > 0 and not info.cpu_shares:
        warnings.append(
            "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded."
        )
        r = replace(r, cpu_shares=0)
    if r.cpu_period > 0 and not info.cpu_cfs:
        warnings.append(
            "Your kernel does not support CPU CFS period or the cgroup is not mounted. Period discarded."
        )
        r = replace(r, cpu_period=0)
    if r.cpu_period != 0 and not 1000 <= r.cpu_period <= 1_000_000:
        raise err("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if r.cpu_quota > 0 and not info.cpu_cfs:
        warnings.append(
            "Your kernel does not support CPU CFS quota or the cgroup is not mounted. Quota discarded."
        )
        r = replace(r, cpu_quota=0)
    if 0 < r.cpu_quota < 1000:
        raise err("CPU cfs quota can not be less than 1ms (i.e. 1000)")

    # cpuset
    if (r.cpuset_cpus or r.cpuset_mems) and not info.cpuset:
        warnings.append("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
        r = replace(r, cpuset_cpus="", cpuset_mems="")
    for value, available, what, noun in (
        (r.cpuset_cpus, info.cpus, "cpus", "CPUs"),
        (r.cpuset_mems, info.mems, "mems", "memory nodes"),
    ):
        if not value:
            continue
        try:
            ok = _list_available(value, available)
        except InvalidInput as e:
            raise err(f"Invalid value {value} for cpuset {what}: {e}") from None
        if not ok:
            raise err(f"Requested {noun} are not available - requested {value}, available: {available}")

    # blkio
    if r.blkio_weight > 0 and not info.blkio_weight:
        warnings.append(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
        )
        r = replace(r, blkio_weight=0)
    if r.blkio_weight > 0 and not 10 <= r.blkio_weight <= 1000:
        raise err("Range of blkio weight is from 10 to 1000")

    # pids
    if r.pids_limit is not None and not info.pids_limit:
        if r.pids_limit > 0:
            warnings.append(
                "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
                "PIDs limit discarded."
            )
        r = replace(r, pids_limit=None)
    return r, warnings
