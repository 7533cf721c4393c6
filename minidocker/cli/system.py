"""``info``, ``version``, ``system info|df|prune``: Docker's fields and tables where they apply.

What dockerd reports about itself that has a meaning here (storage driver and its backing
filesystem, data root, cgroup driver and version, kernel, counts) is computed the way dockerd does;
what does not (swarm, runtimes, registry mirrors, the daemon ID) is left out rather than invented::

    minidocker info --format '{{.Driver}} {{.CgroupVersion}} {{.DockerRootDir}}'
    minidocker system df -v
    minidocker system prune -a --volumes -f
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from minidocker import DOCKER_VERSION, __version__
from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)

# statfs(2) names as dockerd's graphdriver.FsNames spells them, keyed by /proc/mounts' fstype
_FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "overlay": "overlayfs", "nfs4": "nfs"}
# filesystems that fill in d_type (xfs only with ftype=1, the mkfs default since 2015)
_D_TYPE_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "overlay", "reiserfs"}


# -- small helpers ----------------------------------------------------------------------------
def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: binary units, ``%.4g``. ``bytes_size(25275973632) == "23.54GiB"``."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024.0
        i += 1
    return f"{size:.4g}{units[i]}"


def _mount_fstype(path: str) -> str:
    """The fstype of the mount holding ``path`` (longest mount-point prefix in mountinfo)."""
    path = os.path.realpath(path)
    best, fstype = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split(" ")
            if len(fields) < 5 or not right:
                continue
            mp = fields[4].replace("\\040", " ").replace("\\134", "\\")
            inside = path == mp or path.startswith(mp.rstrip("/") + "/")
            if inside and len(mp) >= len(best):
                best, fstype = mp, right.split(" ", 1)[0]
    return fstype


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        with contextlib.suppress(OSError), open(candidate, encoding="utf-8") as f:
            for line in f:
                key, eq, value = line.strip().partition("=")
                if eq:
                    out[key] = value.strip().strip('"').strip("'")
            return out
    return out


def _mem_total() -> int:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _cgroup_features(version: str) -> dict[str, bool]:
    """dockerd's ``sysinfo`` booleans, from the cgroup files that make each limit possible."""
    if version == "1":
        root = "/sys/fs/cgroup"
        have = {
            "MemoryLimit": f"{root}/memory/memory.limit_in_bytes",
            "SwapLimit": f"{root}/memory/memory.memsw.limit_in_bytes",
            "CpuCfsPeriod": f"{root}/cpu/cpu.cfs_period_us",
            "CpuCfsQuota": f"{root}/cpu/cpu.cfs_quota_us",
            "CPUShares": f"{root}/cpu/cpu.shares",
            "CPUSet": f"{root}/cpuset/cpuset.cpus",
            "PidsLimit": f"{root}/pids",
        }
        return {k: os.path.exists(p) for k, p in have.items()}
    controllers = set(_read("/sys/fs/cgroup/cgroup.controllers").split())
    return {
        "MemoryLimit": "memory" in controllers,
        "SwapLimit": "memory" in controllers,
        "CpuCfsPeriod": "cpu" in controllers,
        "CpuCfsQuota": "cpu" in controllers,
        "CPUShares": "cpu" in controllers,
        "CPUSet": "cpuset" in controllers,
        "PidsLimit": "pids" in controllers,
    }


# -- info ---------------------------------------------------------------------------------------
def info_doc(ctx: Context) -> dict[str, Any]:
    """``types.Info`` (Docker 20.10's ``GET /info``), in its field order, for the fields that apply."""
    from minidocker.cgroups.base import detect

    stores = ctx.stores
    containers = ctx.runtime.list()
    running = sum(1 for c in containers if c.state.running and not c.state.paused)
    paused = sum(1 for c in containers if c.state.paused)
    root = os.path.abspath(ctx.data_root)
    fstype = _mount_fstype(root)
    native_diff = _read("/sys/module/overlay/parameters/redirect_dir") not in ("Y", "y")
    cgroup_version = "2" if detect() == "v2" else "1"
    osr = _os_release()
    security = ["name=seccomp,profile=default"]
    if cgroup_version == "2":
        security.append("name=cgroupns")  # dockerd 20.10: private cgroup namespaces by default on v2
    return {
        "Containers": len(containers),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": len(stores.images.ids()),
        "Driver": "overlay2",
        "DriverStatus": [
            ["Backing Filesystem", _FS_NAMES.get(fstype, fstype)],
            ["Supports d_type", "true" if fstype in _D_TYPE_FS else "false"],
            ["Native Overlay Diff", "true" if native_diff else "false"],
            ["userxattr", "false"],
        ],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        **_cgroup_features(cgroup_version),
        "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward") == "1",
        "Debug": ctx.debug,
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": platform.release(),
        "OperatingSystem": osr.get("PRETTY_NAME", "Linux"),
        "OSVersion": osr.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": len(os.sched_getaffinity(0)),
        "MemTotal": _mem_total(),
        "DockerRootDir": root,
        "Name": platform.node(),
        "Labels": [],
        "ServerVersion": __version__,
        "SecurityOptions": security,
        "Warnings": None,
    }


def info_text(doc: dict[str, Any]) -> str:
    """``docker info``'s layout (cli/command/system/info.go) over :func:`info_doc`."""
    lines = ["Client:", f" Debug Mode: {str(doc['Debug']).lower()}", "", "Server:"]
    lines += [
        f" Containers: {doc['Containers']}",
        f"  Running: {doc['ContainersRunning']}",
        f"  Paused: {doc['ContainersPaused']}",
        f"  Stopped: {doc['ContainersStopped']}",
        f" Images: {doc['Images']}",
        f" Server Version: {doc['ServerVersion']}",
        f" Storage Driver: {doc['Driver']}",
        *(f"  {k}: {v}" for k, v in doc["DriverStatus"]),
        f" Logging Driver: {doc['LoggingDriver']}",
        f" Cgroup Driver: {doc['CgroupDriver']}",
        f" Cgroup Version: {doc['CgroupVersion']}",
        " Plugins:",
        *(f"  {k}: {' '.join(v)}" for k, v in doc["Plugins"].items()),
        " Security Options:",
    ]
    for opt in doc["SecurityOptions"]:
        kv = dict(part.split("=", 1) for part in opt.split(","))
        lines.append(f"  {kv.pop('name', '')}")
        lines += [f"   {k.capitalize()}: {v}" for k, v in kv.items()]
    lines += [
        f" Kernel Version: {doc['KernelVersion']}",
        f" Operating System: {doc['OperatingSystem']}",
        f" OSType: {doc['OSType']}",
        f" Architecture: {doc['Architecture']}",
        f" CPUs: {doc['NCPU']}",
        f" Total Memory: {bytes_size(doc['MemTotal'])}",
        f" Name: {doc['Name']}",
        f" Docker Root Dir: {doc['DockerRootDir']}",
        f" Debug Mode: {str(doc['Debug']).lower()}",
        " Labels:",
    ]
    return "\n".join(lines) + "\n"


def _print_template(fmt: str, doc: Any) -> None:
    from minidocker.cli import gotemplate

    text = gotemplate.parse(fmt.replace("\\t", "\t").replace("\\n", "\n")).execute(doc)
    click.echo(text)


@click.command("info")
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
@pass_ctx
def info(ctx: Context, fmt: str | None) -> None:
    """Display system-wide information."""
    doc = info_doc(ctx)
    if fmt:
        _print_template(fmt, doc)
    else:
        click.echo(info_text(doc), nl=False)


# -- version ------------------------------------------------------------------------------------
def version_doc() -> dict[str, Any]:
    """``types.Version`` shaped: a Client and a Server section (one process plays both here)."""
    from minidocker.image.config import go_arch

    python = platform.python_version()
    details = {"Os": "linux", "Arch": go_arch(), "KernelVersion": platform.release(), "PythonVersion": python}
    return {
        "Client": {"Version": __version__, "PythonVersion": python, "Os": "linux", "Arch": go_arch()},
        "Server": {
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__,
            "Os": "linux",
            "Arch": go_arch(),
            "KernelVersion": platform.release(),
            "DockerLayoutVersion": DOCKER_VERSION,
        },
    }


@click.command("version")
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
def version(fmt: str | None) -> None:
    """Show the minidocker version information."""
    doc = version_doc()
    if fmt:
        _print_template(fmt, doc)
        return
    c, s = doc["Client"], doc["Server"]
    click.echo(
        "Client:\n"
        f" Version:           {c['Version']}\n"
        f" Python version:    {c['PythonVersion']}\n"
        f" OS/Arch:           {c['Os']}/{c['Arch']}\n"
        "\n"
        "Server:\n"
        " Engine:\n"
        f"  Version:          {s['Version']}\n"
        f"  Layout of:        Docker Engine {s['DockerLayoutVersion']}\n"
        f"  Python version:   {c['PythonVersion']}\n"
        f"  OS/Arch:          {s['Os']}/{s['Arch']}\n"
        f"  Kernel Version:   {s['KernelVersion']}"
    )


# -- system df ----------------------------------------------------------------------------------
@dataclass
class ImageUsage:
    image_id: str
    repository: str
    tag: str
    created: str
    size: int
    shared: int
    containers: int


@dataclass
class DiskUsage:
    """``types.DiskUsage``: what ``GET /system/df`` returns, as ``system df`` needs it."""

    layers_size: int = 0
    images: list[ImageUsage] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)  # ps summaries with SizeRw
    volumes: list[tuple[str, int, int]] = field(default_factory=list)  # (name, links, size)
    build_cache: int = 0  # the classic builder's cache is its intermediate images: no separate store


def disk_usage(ctx: Context) -> DiskUsage:
    """dockerd's ``SystemDiskUsage``: images without intermediates, every container with its RW
    size, every local volume with its reference count."""
    from minidocker.container.inspect import summary
    from minidocker.container.volumes import VolumeStore
    from minidocker.image import digest
    from minidocker.storage.overlay2 import directory_size

    stores = ctx.stores
    du = DiskUsage()
    chains: dict[str, list[str]] = {}
    for image_id in stores.images.ids():
        with contextlib.suppress(Exception):
            chains[image_id] = digest.chain_ids(stores.diff_ids(image_id))
    sizes: dict[str, int] = {}
    for chain_id in stores.layers.ids():
        with contextlib.suppress(Exception):
            sizes[chain_id] = stores.layers.get(chain_id).size
    # LayersSize: every layer some image references (a leaked layer is not counted, as in dockerd)
    du.layers_size = sum(sizes.get(i, 0) for i in {i for ids in chains.values() for i in ids})
    containers = ctx.runtime.list()
    per_image: dict[str, int] = {}
    for c in containers:
        per_image[c.image] = per_image.get(c.image, 0) + 1
        du.containers.append(summary(c, stores, size=True))
    listed = {}
    for image_id, ids in chains.items():
        if not stores.refs.references(image_id) and stores.images.children(image_id):
            continue  # an intermediate image: `images` hides it, so does df
        listed[image_id] = ids
    # SharedSize: layers referenced by more than one listed image
    used_by: dict[str, int] = {}
    for ids in listed.values():
        for chain_id in ids:
            used_by[chain_id] = used_by.get(chain_id, 0) + 1
    for image_id, ids in listed.items():
        tags = [r for r in stores.refs.references(image_id) if r.tag is not None]
        try:
            created = str(stores.images.get(image_id).get("created", ""))
        except Exception:
            created = ""
        du.images.append(
            ImageUsage(
                image_id=image_id,
                repository=tags[0].familiar_name if tags else "<none>",
                tag=(tags[0].tag or "<none>") if tags else "<none>",
                created=created,
                size=sum(sizes.get(i, 0) for i in ids),
                shared=sum(sizes.get(i, 0) for i in ids if used_by.get(i, 0) > 1),
                containers=per_image.get(image_id, 0),
            )
        )
    du.images.sort(key=lambda i: i.created, reverse=True)
    volumes = VolumeStore(stores.root, stores.lock)
    users = volumes.users()
    for v in volumes.list():
        size = 0
        with contextlib.suppress(OSError):
            size = directory_size(v.mountpoint)
        du.volumes.append((v.name, len(users.get(v.name, [])), size))
    return du


def _with_percent(reclaimable: int, total: int) -> str:
    from minidocker.units import human_size

    if total > 0:
        return f"{human_size(reclaimable, 4)} ({reclaimable * 100 // total}%)"
    return human_size(reclaimable, 4)


def df_summary(du: DiskUsage) -> str:
    """The default ``system df`` table (cli/command/formatter/disk_usage.go's arithmetic; sizes
    with go-units' ``HumanSize``, 4 significant digits, like ``-v`` except a container's size)."""
    from minidocker.cli.output import tabwrite
    from minidocker.units import human_size

    active_images = [i for i in du.images if i.containers]
    used = sum(i.size - i.shared for i in active_images)
    active = [c for c in du.containers if c["State"] in ("running", "paused", "restarting")]
    rw_total = sum(c.get("SizeRw", 0) for c in du.containers)
    rw_idle = sum(c.get("SizeRw", 0) for c in du.containers if c not in active)
    vol_total = sum(size for _, _, size in du.volumes)
    vol_idle = sum(size for _, links, size in du.volumes if links == 0)
    rows = [
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        ["Images", str(len(du.images)), str(len(active_images)), human_size(du.layers_size, 4),
         _with_percent(du.layers_size - used, du.layers_size)],
        ["Containers", str(len(du.containers)), str(len(active)), human_size(rw_total, 4),
         _with_percent(rw_idle, rw_total)],
        ["Local Volumes", str(len(du.volumes)), str(sum(1 for v in du.volumes if v[1])),
         human_size(vol_total, 4), _with_percent(vol_idle, vol_total)],
        ["Build Cache", "0", "0", human_size(du.build_cache, 4), human_size(du.build_cache, 4)],
    ]  # fmt: skip
    return tabwrite("\n".join("\t".join(r) for r in rows) + "\n")


def df_verbose(du: DiskUsage) -> str:
    """``system df -v``: one table per kind, as the docker CLI's verboseWrite prints them."""
    from minidocker.cli.containers import ContainerContext
    from minidocker.cli.output import tabwrite
    from minidocker.image.images import created_ago, short_id
    from minidocker.units import human_size

    def table(rows: list[list[str]]) -> str:
        return tabwrite("\n".join("\t".join(r) for r in rows) + "\n")

    out = ["Images space usage:\n\n"]
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]]
    for i in du.images:
        rows.append([i.repository, i.tag, short_id(i.image_id), created_ago(i.created) if i.created else "N/A",
                     human_size(i.size, 4), human_size(i.shared, 4), human_size(i.size - i.shared, 4),
                     str(i.containers)])  # fmt: skip
    out.append(table(rows))
    out.append("\nContainers space usage:\n\n")
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]]
    for s in du.containers:
        cc = ContainerContext(s)
        rows.append([cc.ID(), cc.Image(), cc.Command(), cc.LocalVolumes(), human_size(s.get("SizeRw", 0)),
                     cc.RunningFor(), cc.Status(), cc.Names()])  # fmt: skip
    out.append(table(rows))
    out.append("\nLocal Volumes space usage:\n\n")
    rows = [["VOLUME NAME", "LINKS", "SIZE"]]
    rows += [[name, str(links), human_size(size, 4)] for name, links, size in du.volumes]
    out.append(table(rows))
    out.append(f"\nBuild cache usage: {human_size(du.build_cache, 4)}\n\n")
    out.append(table([["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]]))
    return "".join(out)


# -- system prune -------------------------------------------------------------------------------
def prune_warnings(all_images: bool, volumes: bool) -> str:
    """The docker CLI's confirmation text for ``system prune`` (20.10, build cache included)."""
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        warnings.append("all volumes not used by at least one container")
    if all_images:
        warnings += ["all images without at least one container associated to them", "all build cache"]
    else:
        warnings += ["all dangling images", "all dangling build cache"]
    return "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in warnings)


def prune_containers(ctx: Context) -> tuple[list[str], int]:
    """Every stopped container, like ``container prune``; bytes: their RW layers."""
    from minidocker.container.inspect import sizes

    deleted, reclaimed = [], 0
    for c in ctx.runtime.list():
        if c.state.running:
            continue
        rw = sizes(c, ctx.stores)[0]
        ctx.runtime.remove(c.id)
        deleted.append(c.id)
        reclaimed += rw
    return deleted, reclaimed


def prune_networks(ctx: Context) -> list[str]:
    """User networks without endpoints, like ``network prune`` (names, sorted)."""
    from minidocker import network
    from minidocker.errors import MinidockerError
    from minidocker.network.store import NetworkStore

    deleted = []
    for n in sorted(NetworkStore(ctx.stores.root, ctx.stores.lock).list(), key=lambda n: n["Name"]):
        if n["Name"] in ("bridge", "host", "none") or n.get("Endpoints"):
            continue
        with contextlib.suppress(MinidockerError):
            network.remove_network(ctx.stores, n["Id"])
            deleted.append(n["Name"])
    # a lingering default bridge (chapter 6) goes too, as in `network prune`; it is not listed
    network.prune_default(ctx.stores)
    return deleted


@click.command("prune")
@click.option(
    "-a", "--all", "all_images", is_flag=True, help="Remove all unused images not just dangling ones"
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--volumes", is_flag=True, help="Prune volumes")
@pass_ctx
def prune(ctx: Context, all_images: bool, force: bool, volumes: bool) -> None:
    """Remove unused data."""
    from minidocker.container.volumes import VolumeStore
    from minidocker.image import prune as pruner
    from minidocker.units import human_size

    if not force:
        click.echo(
            prune_warnings(all_images, volumes) + "\nAre you sure you want to continue? [y/N] ", nl=False
        )
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return
    reclaimed = 0
    containers, size = prune_containers(ctx)
    reclaimed += size
    if containers:
        click.echo("Deleted Containers:\n" + "".join(c + "\n" for c in containers))
    networks = prune_networks(ctx)
    if networks:
        click.echo("Deleted Networks:\n" + "".join(n + "\n" for n in networks))
    if volumes:
        names, size = VolumeStore(ctx.stores.root, ctx.stores.lock).prune()
        reclaimed += size
        if names:
            click.echo("Deleted Volumes:\n" + "".join(n + "\n" for n in names))
    # images and the classic builder's cache: the image chapter's prunes (minidocker/image/prune.py)
    report = pruner.prune_images(ctx.stores, all_images=all_images)
    reclaimed += report.reclaimed
    if report.deleted:
        click.echo("Deleted Images:\n" + "".join(line + "\n" for line in report.lines()))
    report = pruner.prune_build_cache(ctx.stores, all_cache=all_images)
    reclaimed += report.reclaimed
    if report.deleted:
        click.echo("Deleted build cache objects:\n" + "".join(v + "\n" for _, v in report.deleted))
    click.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")


@click.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@pass_ctx
def df(ctx: Context, verbose: bool) -> None:
    """Show docker disk usage."""
    du = disk_usage(ctx)
    click.echo(df_verbose(du) if verbose else df_summary(du), nl=False)


@click.group("system")
def system_group() -> None:
    """Manage Docker."""


system_group.add_command(info, "info")
system_group.add_command(df, "df")
system_group.add_command(prune, "prune")
