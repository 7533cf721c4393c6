"""``-v`` / ``--volume``: parsing like Docker 20.10 (CLI + ``volume/mounts/linux_parser.go``), the
``MountPoints`` records of config.v2.json, and the binds a container process gets at start.

Lead's call sequence::

    binds, mount_points = plan_mounts(vols, ["data:/data", "/srv:/srv:ro", "/cache"], image_config_volumes)
    host_config.binds = binds                   # HostConfig.Binds (None without -v, like Docker)
    config["Volumes"] = config_volumes(specs)   # Config.Volumes: the -v specs without a source
    c.mount_points = mount_points
    ...
    spec.binds += binds_for_start(c, vols, rootfs)   # at every start; then save c (Source/ID filled)
    ...
    release(c, vols, remove_anonymous=True)          # rm -v, before the container dir goes

What Docker does, and so do we:
    * ``/ctr`` (no colon) is an anonymous volume: the CLI moves it to ``Config.Volumes``; image
      ``Volumes`` add more, unless a ``-v`` already covers the path. They are created at ``create``
      with a random 64-hex name and ``Source: ""`` until the first start.
    * ``name:/ctr[:mode]`` creates the named volume if needed (``Relabel "z"`` when no mode is
      given); ``/host:/ctr[:mode]`` is a bind (``Propagation "rprivate"``). ``./rel`` is made absolute
      by the CLI; any other relative source is a volume name (and usually an invalid one).
    * The bind source of a ``-v`` is NOT checked or created at ``create``: dockerd 20.10 creates a
      missing source directory (0755) at *start*. (``--mount type=bind`` instead errors with ``bind
      source path does not exist``; checked against dockerd 20.10.24.)
    * Copy-up: a volume that is empty gets the image's content at its destination (modes, owners,
      times, xattrs) unless ``nocopy``; Docker does this at create, we on the first start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tempfile
from dataclasses import dataclass
from typing import Any

from minidocker import fsutil, trace
from minidocker.container.state import Container
from minidocker.container.volumes import VolumeStore, validate_name
from minidocker.errors import Conflict, InvalidInput, NotFound
from minidocker.namespaces.spec import Bind

RW_MODES = ("rw", "ro")
LABEL_MODES = ("z", "Z")
PROPAGATION_MODES = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
COPY_MODES = ("nocopy",)
CONSISTENCY_MODES = ("consistent", "cached", "delegated")
DEFAULT_PROPAGATION = "rprivate"


@dataclass
class MountSpec:
    """One parsed ``-v`` (``mounts.MountPoint`` before the volume exists)."""

    raw: str
    type: str  # "bind" or "volume"
    source: str  # host path (cleaned) for binds, volume name ("" = anonymous) for volumes
    destination: str  # cleaned
    spec_source: str  # as typed (Spec.Source)
    spec_target: str  # as typed (Spec.Target)
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    nocopy: bool = False

    def spec(self) -> dict[str, Any]:
        """``mount.Mount`` in Go field order, omitempty fields left out."""
        out: dict[str, Any] = {"Type": self.type, "Source": self.spec_source, "Target": self.spec_target}
        if not self.rw:
            out["ReadOnly"] = True
        if self.propagation:
            out["BindOptions"] = {"Propagation": self.propagation}
        if self.nocopy:
            out["VolumeOptions"] = {"NoCopy": True}
        return out


def _clean(path: str) -> str:
    """Go ``path.Clean`` (posixpath keeps a leading ``//``, Go does not)."""
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/") if out.startswith("//") else out


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def valid_mode(mode: str) -> bool:
    """``ValidMountMode``: comma-separated, at most one of each kind, nothing unknown."""
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "cons": 0}
    for o in mode.split(","):
        if o in RW_MODES:
            counts["rw"] += 1
        elif o in LABEL_MODES:
            counts["label"] += 1
        elif o in PROPAGATION_MODES:
            counts["prop"] += 1
        elif o in COPY_MODES:
            counts["copy"] += 1
        elif o in CONSISTENCY_MODES:
            counts["cons"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _check_dest(raw: str, kind: str, target: str) -> None:
    prefix = f'{_invalid_spec(raw)}: invalid mount config for type "{kind}": '
    if target == "":
        raise InvalidInput(prefix + "field Target must not be empty", subject=raw)
    if _clean(target) == "/":
        raise InvalidInput(prefix + "invalid specification: destination can't be '/'", subject=raw)
    if not target.startswith("/"):
        raise InvalidInput(
            prefix + f"invalid mount path: '{target}' mount path must be absolute", subject=raw
        )


def parse_volume(raw: str) -> MountSpec:
    """``linuxParser.ParseMountRaw`` for ``-v`` specs with a source (``src:dst[:mode]``).

    >>> m = parse_volume("/srv/x:/data:ro")
    >>> (m.type, m.source, m.destination, m.rw, m.propagation)
    ('bind', '/srv/x', '/data', False, '')
    >>> parse_volume("cache:/c").type
    'volume'
    """
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise InvalidInput(_invalid_spec(raw), subject=raw)
    mode = ""
    if len(arr) == 1:
        source, target = "", arr[0]
    elif len(arr) == 2:
        if valid_mode(arr[1]):  # "/foo:rw": a destination and a mode is no valid spec
            raise InvalidInput(_invalid_spec(raw), subject=raw)
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise InvalidInput(_invalid_spec(raw), subject=raw)
    if not valid_mode(mode):
        raise InvalidInput(f"invalid mode: {mode}", subject=raw)
    opts = mode.split(",") if mode else []
    kind = "bind" if source.startswith("/") else "volume"
    propagation = next((o for o in opts if o in PROPAGATION_MODES), "")
    nocopy = "nocopy" in opts
    _check_dest(raw, kind, target)
    prefix = f'{_invalid_spec(raw)}: invalid mount config for type "{kind}": '
    if kind == "bind":
        if nocopy:
            raise InvalidInput(prefix + "field VolumeOptions must not be specified", subject=raw)
        clean_source = _clean(source)
    else:
        if propagation:
            raise InvalidInput(prefix + "field BindOptions must not be specified", subject=raw)
        if source == "" and "ro" in opts:
            raise InvalidInput(
                prefix + "must not set ReadOnly mode when using anonymous volumes", subject=raw
            )
        clean_source = source
    return MountSpec(
        raw=raw,
        type=kind,
        source=clean_source,
        destination=_clean(target),
        spec_source=source,
        spec_target=target,
        mode=mode,
        rw="ro" not in opts,
        propagation=propagation,
        nocopy=nocopy,
    )


def split_volume_flags(specs: list[str], cwd: str | None = None) -> tuple[list[str], list[str]]:
    """What the docker CLI does with ``-v`` values: (binds, anonymous destinations).

    A spec with a source goes to ``HostConfig.Binds`` (``./x`` and ``.`` made absolute); a bare
    destination goes to ``Config.Volumes``.

    >>> split_volume_flags(["/a:/b", "/anon", "./d:/d"], cwd="/w")
    (['/a:/b', '/w/d:/d'], ['/anon'])
    """
    binds: list[str] = []
    anonymous: list[str] = []
    for raw in specs:
        if ":" not in raw:
            anonymous.append(raw)
            continue
        host, _, rest = raw.partition(":")
        if host == "." or host.startswith("./"):
            host = _clean(posixpath.join(cwd or os.getcwd(), host))
            raw = f"{host}:{rest}"
        binds.append(raw)
    return binds, anonymous


def config_volumes(specs: list[str]) -> dict[str, dict[str, Any]] | None:
    """``Config.Volumes`` contributed by ``-v`` (``{"/anon": {}}``), ``None`` when there is none."""
    _, anonymous = split_volume_flags(specs, cwd="/")
    return {a: {} for a in anonymous} or None


def _mount_point(
    source: str, destination: str, rw: bool, name: str, driver: str, kind: str, relabel: str,
    propagation: str, spec: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """``volumemounts.MountPoint`` in Go field order (Relabel/Propagation/ID are omitempty)."""
    mp: dict[str, Any] = {
        "Source": source,
        "Destination": destination,
        "RW": rw,
        "Name": name,
        "Driver": driver,
        "Type": kind,
    }
    if relabel:
        mp["Relabel"] = relabel
    if propagation:
        mp["Propagation"] = propagation
    mp["Spec"] = spec
    mp["SkipMountpointCreation"] = False
    return mp


def plan_mounts(
    volumes: VolumeStore,
    binds: list[str],
    image_volumes: dict[str, Any] | None,
    *,
    cwd: str | None = None,
) -> tuple[list[str] | None, dict[str, dict[str, Any]]]:
    """``registerMountPoints`` + ``createContainerOSSpecificSettings`` of dockerd 20.10.

    ``binds`` are the raw ``-v`` values. Returns (``HostConfig.Binds``, ``MountPoints``); named
    and anonymous volumes are created. Every spec is validated before anything is created.
    """
    host_binds, anonymous = split_volume_flags(binds, cwd)
    parsed = [parse_volume(b) for b in host_binds]
    anon_dests: list[str] = []
    for a in anonymous:
        _check_dest(a, "volume", a)
        anon_dests.append(_clean(a))
    seen: set[str] = set()
    for m in parsed:
        if m.destination in seen:
            raise InvalidInput(f"Duplicate mount point: {m.destination}", subject=m.destination)
        seen.add(m.destination)
        if m.type == "volume":
            validate_name(m.source)
    for dest in sorted(image_volumes or {}):
        if dest.startswith("/"):
            anon_dests.append(_clean(dest))

    points: dict[str, dict[str, Any]] = {}
    for m in parsed:
        if m.type == "bind":
            points[m.destination] = _mount_point(
                m.source, m.destination, m.rw, "", "", "bind", m.mode,
                m.propagation or DEFAULT_PROPAGATION, m.spec(),
            )  # fmt: skip
            continue
        v = volumes.create(m.source)
        points[m.destination] = _mount_point(
            v.mountpoint, m.destination, m.rw, v.name, v.driver, "volume", m.mode or "z", "", m.spec()
        )
    for dest in anon_dests:
        if dest in points:  # container.HasMountFor: a -v for that path wins
            continue
        v = volumes.create(None)
        points[dest] = _mount_point("", dest, True, v.name, v.driver, "volume", "", "", {})
    return (host_binds or None), points


# -- start ---------------------------------------------------------------------------------------
def binds_for_start(c: Container, volumes: VolumeStore, rootfs: str) -> list[Bind]:
    """The ``Bind`` list for the container process (parents before children), from ``c.mount_points``.

    Side effects, as dockerd's ``setupMounts``: a missing ``-v`` bind source directory is created
    (0755); volumes get their ``Source`` and a fresh mount ``ID`` in ``c.mount_points`` (the caller
    saves ``c``); an empty volume is filled from the image (copy-up) on the first start.
    """
    out: list[Bind] = []
    for dest in sorted(c.mount_points, key=lambda d: (d.count("/"), d)):
        mp = c.mount_points[dest]
        kind = mp.get("Type")
        if kind == "bind":
            source = str(mp.get("Source") or "")
            if not mp.get("SkipMountpointCreation") and not os.path.lexists(source):
                try:
                    fsutil.makedirs(source, 0o755)
                except OSError as e:
                    raise InvalidInput(
                        f"error while creating mount source path '{source}': {e.strerror}", subject=source
                    ) from e
            out.append(Bind(source, dest, readonly=not mp.get("RW", True)))
            continue
        if kind != "volume":
            raise InvalidInput(f"mount {dest}: unsupported mount type {kind!r}", subject=dest)
        name = str(mp.get("Name") or "")
        v = volumes.get(name)
        if volumes.has_mount_options(name):
            raise InvalidInput(
                f"volume {name}: local volumes with mount options (-o type/device/o) are not supported yet",
                subject=name,
            )
        nocopy = bool(((mp.get("Spec") or {}).get("VolumeOptions") or {}).get("NoCopy"))
        if not nocopy and not c.has_been_started_before:
            copy_up(rootfs, dest, v.mountpoint)
        _set_started(mp, v.mountpoint)
        out.append(Bind(v.mountpoint, dest, readonly=not mp.get("RW", True)))
    return out


def _set_started(mp: dict[str, Any], source: str) -> None:
    """Fill Source and ID, keeping the Go field order (ID sits between Propagation and Spec)."""
    items = [(k, v) for k, v in mp.items() if k != "ID"]
    mp.clear()
    for k, v in items:
        if k == "Spec":
            mp["ID"] = fsutil.random_id()
        mp[k] = source if k == "Source" else v


def copy_up(rootfs: str, destination: str, volume_data: str) -> bool:
    """Docker's ``CopyImagePathContent``: when ``volume_data`` is empty and the image has a
    directory at ``destination``, copy it in (the directory's own mode/owner too).

    The image path is resolved inside ``rootfs`` (symlinks cannot leave it) and copied through
    our tar writer and the safe extractor, so a crafted image cannot read or write host files.
    """
    from minidocker.archive.extract import untar
    from minidocker.archive.tarstream import TarReader, TarWriter
    from minidocker.container.cp import ContainerFS, write_tree

    try:
        if os.listdir(volume_data):
            return False
    except FileNotFoundError:
        return False
    with ContainerFS(rootfs, {}) as cfs:
        try:
            path = cfs.resolve(destination, follow_last=True)
            st = cfs.lstat(path)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return False
            raise
        if not stat.S_ISDIR(st.st_mode):
            return False
        with tempfile.TemporaryFile(dir=os.path.dirname(os.path.dirname(volume_data))) as spool:
            w = TarWriter(spool)
            write_tree(cfs, path, ".", w)
            w.close()
            spool.seek(0)
            untar(TarReader(spool), volume_data, symlinks="chroot")
    # the extractor leaves its root alone; Docker's CopyDir gives it the image dir's metadata
    if os.geteuid() == 0:
        os.chown(volume_data, st.st_uid, st.st_gid)
    os.chmod(volume_data, stat.S_IMODE(st.st_mode))
    os.utime(volume_data, ns=(st.st_atime_ns, st.st_mtime_ns))
    trace.emit(lambda: f"copied image content at {destination} into {volume_data}")
    return True


# -- rm -v ---------------------------------------------------------------------------------------
def release(c: Container, volumes: VolumeStore, remove_anonymous: bool) -> list[str]:
    """``removeMountPoints``: with ``remove_anonymous`` (``rm -v``), delete the container's
    anonymous volumes (``Spec.Source == ""``) that no *other* container uses. Named volumes are
    never removed. Returns the removed names."""
    removed: list[str] = []
    if not remove_anonymous:
        return removed
    for mp in c.mount_points.values():
        if mp.get("Type") != "volume" or (mp.get("Spec") or {}).get("Source"):
            continue
        name = str(mp.get("Name") or "")
        with contextlib.suppress(Conflict, NotFound):
            if volumes.exists(name):
                volumes.remove(name, ignore=[c.id])
                removed.append(name)
    return removed
