"""Volumes: Docker 20.10's ``local`` volume driver, on disk exactly where dockerd keeps them.

::

    <data-root>/volumes/            0701
      metadata.db                   dockerd's BoltDB (name -> driver, labels, options); NOT written by us
      <name>/                       0701
        _data/                      0755   what containers see
        opts.json                   0600   only with -o type/device/o (dockerd's format, see below)
        minidocker.json             0600   our labels/options record; dockerd ignores unknown files

Use::

    vols = VolumeStore(data_root, lock)
    v = vols.create("web-data", labels={"team": "a"})   # idempotent, like docker volume create
    anon = vols.create(None)                            # 64-hex random name
    vols.list(); vols.get("web-data").mountpoint
    vols.remove("web-data")                             # Conflict while a container uses it
    names, reclaimed = vols.prune()                     # every unused volume (Docker 20.10 semantics)

Why no BoltDB: dockerd's local driver builds its volume list by *scanning* ``volumes/`` at start-up
(every sub-directory is a volume, ``_data`` or not) and recreates ``metadata.db`` when it is
missing. Checked with dockerd 20.10.24 on a copy of a data root: volumes made by hand (no bolt
entry) are listed, inspected (``Labels``/``Options`` come out ``null``), mounted into containers
and removed normally (tests/integration/test_volumes_cli.py). So our volumes are real Docker volumes;
only their labels, which Docker keeps in bolt, are invisible to dockerd.

In-use is derived, never stored: a volume is in use while some container's ``MountPoints`` names
it (``ContainerStore.list()``), which is what dockerd's reference counting amounts to on disk.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from minidocker import fsutil, trace
from minidocker.errors import Conflict, InvalidInput, NotFound
from minidocker.storage.overlay2 import directory_size, remove_tree

DRIVER = "local"
RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_NAME = re.compile(RESTRICTED_NAME_CHARS + "+")
_META = "minidocker.json"
_OPTS = "opts.json"
# the local driver's valid -o keys (volume/local/local_unix.go validOpts)
_VALID_OPTS = ("type", "device", "o", "size")


@dataclass
class Volume:
    """One local volume. ``labels``/``options`` are ``None`` when nothing recorded them (a volume
    created for a container, or by hand), which ``inspect`` prints as ``null`` like dockerd."""

    name: str
    mountpoint: str
    created_at: str
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    driver: str = DRIVER
    scope: str = "local"

    def to_inspect(self) -> dict[str, Any]:
        """``docker volume inspect`` (types.Volume, json order; Status/UsageData omitted)."""
        return {
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": None if self.labels is None else dict(sorted(self.labels.items())),
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": None if self.options is None else dict(sorted(self.options.items())),
            "Scope": self.scope,
        }


def validate_name(name: str) -> None:
    """The local driver's ``validateName``, with dockerd's messages (wrapped in ``create <name>:``).

    >>> validate_name("web_1.data")
    >>> validate_name("a")
    Traceback (most recent call last):
    ...
    minidocker.errors.InvalidInput: create a: volume name is too short, names should be at least two alphanumeric characters
    """
    if len(name) == 1:
        raise InvalidInput(
            f"create {name}: volume name is too short, names should be at least two alphanumeric characters",
            subject=name,
        )
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            f'"{RESTRICTED_NAME_CHARS}" are allowed. If you intended to pass a host directory, use absolute path',
            subject=name,
        )


def _rfc3339_local(ts: float) -> str:
    """Go ``time.Format(time.RFC3339)`` in local time: seconds, ``Z`` for UTC, else ``+hh:mm``."""
    dt = datetime.datetime.fromtimestamp(int(ts)).astimezone()
    text = dt.isoformat()
    return text[:-6] + "Z" if dt.utcoffset() == datetime.timedelta(0) else text


class VolumeStore:
    def __init__(self, data_root: str, lock: fsutil.DataRootLock) -> None:
        self.data_root = data_root
        self.root = os.path.join(data_root, "volumes")
        self.lock = lock

    def setup(self) -> None:
        fsutil.makedirs(self.root, 0o701)

    # -- paths ----------------------------------------------------------------------------------
    def dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def data_path(self, name: str) -> str:
        """``<root>/volumes/<name>/_data``: the Mountpoint and the bind source."""
        return os.path.join(self.root, name, "_data")

    # -- reading --------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return bool(name) and "/" not in name and os.path.isdir(self.dir(name))

    def get(self, name: str) -> Volume:
        """``No such volume: <name>`` when missing."""
        if not self.exists(name) or name in (".", ".."):
            raise NotFound(f"No such volume: {name}", subject=name)
        d = self.dir(name)
        labels = options = None
        with contextlib.suppress(FileNotFoundError, ValueError), open(os.path.join(d, _META), "rb") as f:
            meta = json.loads(f.read())
            labels, options = meta.get("Labels"), meta.get("Options")
        st = os.stat(d)
        return Volume(name, self.data_path(name), _rfc3339_local(st.st_mtime), labels, options)

    def names(self) -> builtins.list[str]:
        """Every sub-directory of ``volumes/`` is a volume (what dockerd's local driver scans)."""
        out = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root) as it:
            for e in it:
                # our temp dirs (.tmp-*, .rm-*) can never be volume names
                if e.is_dir(follow_symlinks=False) and _NAME.fullmatch(e.name):
                    out.append(e.name)
        return sorted(out)

    def list(self) -> builtins.list[Volume]:
        out = []
        for n in self.names():
            with contextlib.suppress(NotFound, FileNotFoundError):
                out.append(self.get(n))
        return out

    def users(self) -> dict[str, builtins.list[str]]:
        """volume name -> ids of the containers whose MountPoints use it (oldest first)."""
        from minidocker.container.store import ContainerStore

        out: dict[str, list[str]] = {}
        for c in reversed(ContainerStore(self.data_root, self.lock).list()):
            for mp in c.mount_points.values():
                if mp.get("Type") == "volume" and mp.get("Name"):
                    ids = out.setdefault(str(mp["Name"]), [])
                    if c.id not in ids:
                        ids.append(c.id)
        return out

    # -- writing --------------------------------------------------------------------------------
    def create(
        self,
        name: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        driver_opts: dict[str, str] | None = None,
        driver: str = DRIVER,
    ) -> Volume:
        """``docker volume create``: a new volume, or the existing one of that name (Docker returns
        it unchanged). ``name=None`` makes an anonymous volume (``stringid.GenerateRandomID``)."""
        if driver != DRIVER:
            raise NotFound(
                f"error looking up volume plugin {driver}: plugin {driver!r} not found", subject=driver
            )
        if name is None or name == "":
            name = fsutil.random_id()
        else:
            validate_name(name)
        for key in driver_opts or {}:
            if key not in _VALID_OPTS:
                raise InvalidInput(f"create {name}: invalid option key: {key!r}", subject=name)
        self.setup()
        with self.lock.held():
            if self.exists(name):
                return self.get(name)
            d = self.dir(name)
            tmp = os.path.join(self.root, f".tmp-{name}-{os.getpid()}")
            remove_tree(tmp)
            os.mkdir(tmp, 0o701)
            try:
                os.chmod(tmp, 0o701)
                os.mkdir(os.path.join(tmp, "_data"), 0o755)
                os.chmod(os.path.join(tmp, "_data"), 0o755)
                if driver_opts:
                    # dockerd's optsConfig; it would mount these itself, so keep its format exactly
                    opts = {
                        "MountType": driver_opts.get("type", ""),
                        "MountOpts": driver_opts.get("o", ""),
                        "MountDevice": driver_opts.get("device", ""),
                        "Quota": {"Size": 0},
                    }
                    fsutil.write_new(os.path.join(tmp, _OPTS), json.dumps(opts).encode(), 0o600)
                if labels is not None or driver_opts is not None:
                    meta = {"Labels": labels or {}, "Options": driver_opts or {}}
                    fsutil.write_new(os.path.join(tmp, _META), json.dumps(meta).encode(), 0o600)
                # the dir appears whole or not at all; a crash leaves only a dot-named temp dir
                os.rename(tmp, d)
            except BaseException:
                remove_tree(tmp)
                raise
        trace.emit(lambda: f"created volume {name} at {self.data_path(name)}")
        return self.get(name)

    def has_mount_options(self, name: str) -> bool:
        """A volume made with ``-o type=...``: dockerd would mount(2) it at first use."""
        return os.path.exists(os.path.join(self.dir(name), _OPTS))

    def remove(self, name: str, force: bool = False, *, ignore: Iterable[str] = ()) -> None:
        """``docker volume rm``: refuses a volume in use by any container not in ``ignore``
        (``remove <name>: volume is in use - [<ids>]``, even with ``force``, as in Docker 20.10);
        ``force`` only silences "No such volume"."""
        with self.lock.held():
            if not self.exists(name):
                if force:
                    return
                raise NotFound(f"No such volume: {name}", subject=name)
            skip = set(ignore)
            users = [cid for cid in self.users().get(name, []) if cid not in skip]
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]", subject=name)
            self._delete(name)

    def _delete(self, name: str) -> None:
        # rename first so a crash never leaves a half-deleted dir that still lists as a volume
        d = self.dir(name)
        doomed = os.path.join(self.root, f".rm-{name}-{os.getpid()}")
        os.rename(d, doomed)
        remove_tree(doomed)
        trace.emit(lambda: f"removed volume {name}")

    def prune(self, *, label_filters: Iterable[str] = ()) -> tuple[builtins.list[str], int]:
        """``docker volume prune``: every local volume no container uses (Docker 20.10 removes
        named ones too). Returns (removed names, bytes reclaimed)."""
        wanted = list(label_filters)
        removed: builtins.list[str] = []
        reclaimed = 0
        with self.lock.held():
            used = self.users()
            for v in self.list():
                if v.name in used or not _labels_match(v.labels, wanted):
                    continue
                with contextlib.suppress(OSError):
                    reclaimed += directory_size(v.mountpoint)
                self._delete(v.name)
                removed.append(v.name)
        return removed, reclaimed

    def dangling(self) -> builtins.list[Volume]:
        """Volumes no container references (``volume ls -f dangling=true``)."""
        used = self.users()
        return [v for v in self.list() if v.name not in used]


def _labels_match(labels: dict[str, str] | None, filters: list[str]) -> bool:
    """``label=key`` / ``label=key=value`` filters (all must match)."""
    have = labels or {}
    for f in filters:
        key, eq, value = f.partition("=")
        if key not in have or (eq and have[key] != value):
            return False
    return True
