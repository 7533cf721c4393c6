"""``info``/``system df``/``system prune`` text, without root: the formatting and Docker's arithmetic."""

from __future__ import annotations

from minidocker.cli import system
from minidocker.cli.system import DiskUsage, ImageUsage


def test_bytes_size_is_go_units_binary() -> None:
    assert system.bytes_size(25275973632) == "23.54GiB"
    assert system.bytes_size(512) == "512B"
    assert system.bytes_size(1536) == "1.5KiB"


def test_prune_warnings_are_dockers() -> None:
    assert system.prune_warnings(False, False) == (
        "WARNING! This will remove:\n"
        "  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all dangling images\n"
        "  - all dangling build cache\n"
    )
    text = system.prune_warnings(True, True)
    assert "  - all volumes not used by at least one container\n" in text
    assert text.endswith(
        "  - all images without at least one container associated to them\n  - all build cache\n"
    )


def test_df_summary_arithmetic() -> None:
    du = DiskUsage(
        layers_size=3000,
        images=[
            ImageUsage("sha256:" + "a" * 64, "a", "1", "", size=2000, shared=1000, containers=1),
            ImageUsage("sha256:" + "b" * 64, "b", "1", "", size=2000, shared=1000, containers=0),
        ],
        containers=[{"State": "running", "SizeRw": 10}, {"State": "exited", "SizeRw": 30}],
        volumes=[("v1", 1, 100), ("v2", 0, 300)],
    )
    rows = [line.split("   ") for line in system.df_summary(du).splitlines()]
    cells = [[c.strip() for c in r if c.strip()] for r in rows]
    assert cells == [
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        # used = size - shared of the images with containers: 3000 - 1000 = 2000 reclaimable
        ["Images", "2", "1", "3kB", "2kB (66%)"],
        ["Containers", "2", "1", "40B", "30B (75%)"],
        ["Local Volumes", "2", "1", "400B", "300B (75%)"],
        ["Build Cache", "0", "0", "0B", "0B"],
    ]


def test_info_text_layout() -> None:
    doc = {
        "Debug": False, "Containers": 2, "ContainersRunning": 1, "ContainersPaused": 0,
        "ContainersStopped": 1, "Images": 3, "ServerVersion": "0.1.0", "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "2",
        "Plugins": {"Volume": ["local"]}, "SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"],
        "KernelVersion": "6.1.0", "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSType": "linux",
        "Architecture": "x86_64", "NCPU": 2, "MemTotal": 2 * 1024**3, "Name": "vm",
        "DockerRootDir": "/var/lib/minidocker",
    }  # fmt: skip
    text = system.info_text(doc)
    assert text.startswith("Client:\n Debug Mode: false\n\nServer:\n Containers: 2\n  Running: 1\n")
    for line in (
        "  Backing Filesystem: extfs",
        " Cgroup Version: 2",
        " Security Options:\n  seccomp\n   Profile: default\n  cgroupns\n",
        " Total Memory: 2GiB",
        " Docker Root Dir: /var/lib/minidocker",
    ):
        assert line in text
