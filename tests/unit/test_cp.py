"""``cp``/``export`` path logic and safety on a fake rootfs (reliability-cases A.9 C1-C5).

Expected names and messages are what dockerd 20.10.24 + the 20.10 CLI produced for the same
commands on a busybox container (notes in minidocker/container/cp.py)."""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

import pytest

from minidocker.archive.tarstream import TarReader
from minidocker.container.cp import (
    ContainerFS,
    CopyError,
    NoSuchPath,
    archive_path,
    copy_from_container,
    copy_to_container,
    export,
    parse_cp_args,
)
from minidocker.container.hostconfig import HostConfig
from minidocker.container.state import Container

HOST_BYTES = b"I am a host file"
IMAGE = "sha256:" + "0" * 64


def names(data: bytes) -> list[str]:
    r = TarReader(io.BytesIO(data))  # type: ignore[arg-type]
    return [h.name for h in r]


def tar_of(cfs: ContainerFS, path: str) -> bytes:
    out = io.BytesIO()
    archive_path(cfs, "c", path, out)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.fixture
def box(tmp_path: Path):
    """A busybox-like rootfs, a volume at /vol and a read-only bind at /ro."""
    root = tmp_path / "rootfs"
    for d in ("bin", "etc", "tmp", "vol", "ro", "dev"):
        (root / d).mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(b"\x7fELF busybox")
    os.chmod(root / "bin" / "busybox", 0o755)
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "etc" / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_bytes(b"root:x:0:\n")
    (root / "etc" / "mtab").symlink_to("/proc/mounts")
    (root / "etc" / "hard").write_bytes(b"h")
    os.link(root / "etc" / "hard", root / "etc" / "hard2")
    (root / ".dockerenv").write_bytes(b"")
    vol = tmp_path / "volumes" / "v1" / "_data"
    vol.mkdir(parents=True)
    (vol / "in-volume").write_bytes(b"v")
    ro = tmp_path / "robind"
    ro.mkdir()
    mounts = {"/vol": (str(vol), True), "/ro": (str(ro), False)}
    c = Container(id="ab" * 32, name="/c", image=IMAGE, host_config=HostConfig())
    with ContainerFS(str(root), mounts) as cfs:
        yield cfs, c, root, vol, tmp_path


# -- container -> tar ----------------------------------------------------------------------------
def test_archive_names_follow_docker(box) -> None:
    cfs, _, _, _, _ = box
    assert names(tar_of(cfs, "/etc/passwd")) == ["passwd"]
    assert names(tar_of(cfs, "etc/passwd")) == ["passwd"]
    etc = ["etc/", "etc/group", "etc/hard", "etc/hard2", "etc/mtab", "etc/passwd"]
    assert names(tar_of(cfs, "/etc")) == etc
    assert names(tar_of(cfs, "/etc/")) == etc
    assert names(tar_of(cfs, "/etc/.")) == ["./", "./group", "./hard", "./hard2", "./mtab", "./passwd"]
    root = names(tar_of(cfs, "/"))
    assert root[:3] == ["/", "/.dockerenv", "/bin/"] and "/vol/in-volume" in root  # volumes are seen
    assert names(tar_of(cfs, "/vol")) == ["vol/", "vol/in-volume"]


def test_archive_entry_types(box) -> None:
    cfs, _, _, _, _ = box
    hdrs = {h.name: h for h in TarReader(io.BytesIO(tar_of(cfs, "/etc")))}  # type: ignore[arg-type]
    assert (hdrs["etc/mtab"].typeflag, hdrs["etc/mtab"].linkname) == (b"2", "/proc/mounts")
    assert (hdrs["etc/hard2"].typeflag, hdrs["etc/hard2"].linkname) == (b"1", "etc/hard")
    sh = list(TarReader(io.BytesIO(tar_of(cfs, "/bin/sh"))))  # type: ignore[arg-type]
    assert [(h.name, h.typeflag, h.linkname) for h in sh] == [("sh", b"2", "busybox")]


def test_follow_link_to_stdout_names_the_target(box) -> None:
    cfs, _, _, _, _ = box
    out = io.BytesIO()
    copy_from_container(cfs, "c", "/bin/sh", "-", follow_link=True, stdout=out)  # type: ignore[arg-type]
    assert names(out.getvalue()) == ["busybox"]


def test_source_errors(box) -> None:
    cfs, _, _, _, _ = box
    with pytest.raises(NoSuchPath) as e:
        tar_of(cfs, "/nope")
    assert str(e.value) == "No such container:path: c:/nope" and e.value.exit_code == 1
    with pytest.raises(CopyError, match="lstat /etc/passwd/: not a directory"):
        tar_of(cfs, "/etc/passwd/")


# -- container -> host ---------------------------------------------------------------------------
def test_copy_to_host_semantics(box) -> None:
    cfs, _, _, _, tmp = box
    out = tmp / "out"
    out.mkdir()
    copy_from_container(cfs, "c", "/etc/passwd", str(out / "out1"))
    assert (out / "out1").read_bytes().startswith(b"root:")
    copy_from_container(cfs, "c", "/etc/", str(out / "outdir"))  # new dir named after DEST
    assert sorted(os.listdir(out / "outdir")) == ["group", "hard", "hard2", "mtab", "passwd"]
    assert os.stat(out / "outdir" / "hard").st_ino == os.stat(out / "outdir" / "hard2").st_ino
    copy_from_container(cfs, "c", "/etc/", str(out / "outdir"))  # existing dir: goes inside
    assert "etc" in os.listdir(out / "outdir")
    copy_from_container(cfs, "c", "/etc/.", str(out / "outdir2"))
    assert "passwd" in os.listdir(out / "outdir2")
    copy_from_container(cfs, "c", "/", str(out / "all"))
    assert (out / "all" / "vol" / "in-volume").read_bytes() == b"v"
    with pytest.raises(CopyError, match="^no such directory$"):
        copy_from_container(cfs, "c", "/etc/passwd", str(out / "nodir") + "/")
    with pytest.raises(CopyError, match="^cannot copy directory$"):
        copy_from_container(cfs, "c", "/etc", str(out / "out1"))
    with pytest.raises(CopyError, match="not a directory"):
        copy_from_container(cfs, "c", "/etc/passwd", "/dev/null/x")


# -- host -> container ---------------------------------------------------------------------------
def test_copy_into_container_semantics(box) -> None:
    cfs, c, root, vol, tmp = box
    hf = tmp / "hf"
    hf.write_bytes(b"hello\n")
    copy_to_container(cfs, c, "c", str(hf), "/vol/")
    assert (vol / "hf").read_bytes() == b"hello\n"  # a volume path goes to the volume
    assert not (root / "vol" / "hf").exists()
    copy_to_container(cfs, c, "c", str(hf), "/tmp/newname")
    assert (root / "tmp" / "newname").read_bytes() == b"hello\n"
    copy_to_container(cfs, c, "c", str(hf), "/")
    assert (root / "hf").exists()
    copy_to_container(cfs, c, "c", str(hf), "/bin/sh")  # a symlink DEST is followed
    assert (root / "bin" / "busybox").read_bytes() == b"hello\n" and (root / "bin" / "sh").is_symlink()
    with pytest.raises(CopyError, match="^no such directory$"):
        copy_to_container(cfs, c, "c", str(hf), "/nodir/")
    with pytest.raises(NoSuchPath, match="^No such container:path: c:/nodir$"):
        copy_to_container(cfs, c, "c", str(hf), "/nodir/x")
    with pytest.raises(CopyError, match="^cannot copy directory$"):
        copy_to_container(cfs, c, "c", str(tmp / "robind"), "/etc/passwd")
    with pytest.raises(CopyError, match=r"^lstat .*/nohost: no such file or directory$"):
        copy_to_container(cfs, c, "c", str(tmp / "nohost"), "/etc")
    with pytest.raises(CopyError, match="mounted volume is marked read-only"):
        copy_to_container(cfs, c, "c", str(hf), "/ro")
    c.host_config.readonly_rootfs = True
    with pytest.raises(CopyError, match="container rootfs is marked read-only"):
        copy_to_container(cfs, c, "c", str(hf), "/etc")
    copy_to_container(cfs, c, "c", str(hf), "/vol/again")  # volumes stay writable


def test_copy_dir_into_container(box) -> None:
    cfs, c, root, _, tmp = box
    src = tmp / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"f")
    copy_to_container(cfs, c, "c", str(src), "/tmp/newdir")
    assert (root / "tmp" / "newdir" / "sub" / "f").read_bytes() == b"f"
    copy_to_container(cfs, c, "c", str(src) + "/.", "/etc")
    assert (root / "etc" / "sub" / "f").exists()


def test_stdin_tar_needs_a_directory(box) -> None:
    cfs, c, root, _, tmp = box
    data = io.BytesIO()
    hf = tmp / "hf"
    hf.write_bytes(b"x")
    with ContainerFS(str(tmp), {}) as host:
        archive_path(host, "h", "/hf", data)  # type: ignore[arg-type]
    data.seek(0)
    copy_to_container(cfs, c, "c", "-", "/tmp", stdin=data)  # type: ignore[arg-type]
    assert (root / "tmp" / "hf").read_bytes() == b"x"
    with pytest.raises(CopyError, match='^destination "c:/tmp/hf" must be a directory$'):
        copy_to_container(cfs, c, "c", "-", "/tmp/hf", stdin=io.BytesIO(b""))  # type: ignore[arg-type]


def test_cp_args() -> None:
    assert parse_cp_args("c:/etc", "out") == ("c", "/etc", None, "out")
    assert parse_cp_args("./a:b", "c:/x") == (None, "./a:b", "c", "/x")
    with pytest.raises(CopyError, match="copying between containers is not supported"):
        parse_cp_args("a:/x", "b:/y")
    with pytest.raises(CopyError, match="must specify at least one container source"):
        parse_cp_args("a", "b")


# -- A.9 C1: CVE-2018-15664, writes through a symlink planted in the container ---------------------
@pytest.fixture
def malicious(tmp_path: Path):
    d = tmp_path / "dir"
    root = d / "root"
    root.mkdir(parents=True)
    host_file = d / "host-file"
    host_file.write_bytes(HOST_BYTES)
    (root / "safe").symlink_to(str(d))  # absolute host path: means nothing inside the container
    (root / "rel").symlink_to("../..")  # climbs: stops at the container's /
    c = Container(id="cd" * 32, name="/m", image=IMAGE)
    with ContainerFS(str(root), {}) as cfs:
        yield cfs, c, root, host_file, tmp_path


@pytest.mark.parametrize("dest", ["safe", "/safe", "safe/", "safe/host-file", "rel/dir/host-file", "//safe/"])
def test_c1_write_through_symlink_never_reaches_host(malicious, dest: str) -> None:
    cfs, c, root, host_file, tmp = malicious
    pwn = tmp / "host-file"
    pwn.write_bytes(b"pwn3d")
    with pytest.raises((CopyError, NoSuchPath)):
        copy_to_container(cfs, c, "m", str(pwn), dest)
    assert host_file.read_bytes() == HOST_BYTES


def test_c1_stdin_tar_into_symlinked_dir(malicious) -> None:
    cfs, c, root, host_file, tmp = malicious
    data = io.BytesIO()
    pwn = tmp / "host-file"
    pwn.write_bytes(b"pwn3d")
    with ContainerFS(str(tmp), {}) as host:
        archive_path(host, "h", "/host-file", data)  # type: ignore[arg-type]
    for dest in ("safe", "/safe/", "safe/."):
        data.seek(0)
        with pytest.raises((CopyError, NoSuchPath)):
            copy_to_container(cfs, c, "m", "-", dest, stdin=data)  # type: ignore[arg-type]
    data.seek(0)
    copy_to_container(cfs, c, "m", "-", "rel", stdin=data)  # type: ignore[arg-type]
    assert (root / "host-file").read_bytes() == b"pwn3d"  # rel -> ../.. is the container's own /
    assert host_file.read_bytes() == HOST_BYTES


def test_c1_rel_symlink_resolves_to_container_root(malicious) -> None:
    cfs, c, root, host_file, tmp = malicious
    src = tmp / "x"
    src.write_bytes(b"inside")
    copy_to_container(cfs, c, "m", str(src), "rel/")  # rel -> ../.. is the container's /
    assert (root / "x").read_bytes() == b"inside" and host_file.read_bytes() == HOST_BYTES


def test_c1_race_kernel_refuses_symlinks_in_resolved_paths(malicious) -> None:
    # resolve() returned a symlink-free path, then the container swapped in a symlink: the open
    # is refused by openat2(RESOLVE_NO_SYMLINKS), the host file is never reached
    cfs, *_ = malicious
    with pytest.raises(OSError) as e:
        cfs.open("/safe/host-file", os.O_RDONLY)
    assert e.value.errno in (errno.ELOOP, errno.EXDEV)


# -- A.9 C2: TestTarWithMaliciousSymlinks, the read direction --------------------------------------
@pytest.mark.parametrize(
    "path", ["safe", "safe/", "safe/host-file", "/safe/host-file", "/", "/.", "rel/host-file", "rel/"]
)
@pytest.mark.parametrize("follow", [False, True])
def test_c2_host_bytes_never_in_archive(malicious, path: str, follow: bool) -> None:
    cfs, *_ = malicious
    out = io.BytesIO()
    try:
        copy_from_container(cfs, "m", path, "-", follow_link=follow, stdout=out)  # type: ignore[arg-type]
    except (CopyError, NoSuchPath):
        pass
    assert HOST_BYTES not in out.getvalue()


def test_c2_copy_to_host_never_copies_host_file(malicious) -> None:
    cfs, _, _, _, tmp = malicious
    dest = tmp / "out"
    dest.mkdir()
    for path in ("safe/host-file", "/safe/.", "rel/dir/host-file"):
        with pytest.raises(NoSuchPath):
            copy_from_container(cfs, "m", path, str(dest))
    copy_from_container(cfs, "m", "/safe", str(dest / "all"))
    assert (dest / "all").is_symlink()  # the link itself, not what it points to
    with pytest.raises(CopyError, match="invalid symlink"):  # host side: moby's Untar refuses it too
        copy_from_container(cfs, "m", "/", str(dest / "root"))
    for p in dest.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert p.read_bytes() != HOST_BYTES


# -- A.9 C4/C5: no NSS, no container binaries -------------------------------------------------------
def test_c4_user_names_come_from_host_passwd_text(box, monkeypatch) -> None:
    import grp
    import pwd

    def boom(*_a: object) -> None:
        raise AssertionError("NSS lookup from cp")

    for mod, fn in ((pwd, "getpwuid"), (pwd, "getpwnam"), (grp, "getgrgid"), (grp, "getgrnam")):
        monkeypatch.setattr(mod, fn, boom)
    cfs, c, root, _, tmp = box
    (root / "etc" / "nsswitch.conf").write_bytes(b"passwd: evil\n")
    assert names(tar_of(cfs, "/etc"))
    c.config = dict(c.config, User="root")
    src = tmp / "a"
    src.write_bytes(b"a")
    copy_to_container(cfs, c, "c", str(src), "/tmp", copy_uid_gid=True)
    assert (root / "tmp" / "a").exists()


def test_c5_no_process_is_spawned(box, monkeypatch) -> None:
    import subprocess

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("cp executed a program")

    for name in ("fork", "execv", "execve", "posix_spawn", "system"):
        monkeypatch.setattr(os, name, boom)
    monkeypatch.setattr(subprocess, "Popen", boom)
    cfs, c, root, _, tmp = box
    (root / "bin" / "xz").write_bytes(b"#!/bin/sh\ntouch /pwned\n")
    out = tmp / "o"
    copy_from_container(cfs, "c", "/etc", str(out))
    copy_to_container(cfs, c, "c", str(out), "/tmp")
    assert (root / "tmp" / "o" / "passwd").exists()


# -- export ------------------------------------------------------------------------------------------
def test_export_is_the_rootfs_without_mounts(box) -> None:
    cfs, _, root, _, _ = box
    out = io.BytesIO()
    export(str(root), out)  # type: ignore[arg-type]
    got = names(out.getvalue())
    assert got[:4] == [".dockerenv", "bin/", "bin/busybox", "bin/sh"]
    assert "vol/" in got and "vol/in-volume" not in got  # the mountpoint, not the volume
    assert "/" not in got and "./" not in got


def test_owner_kept_by_default_and_set_by_archive_mode(box) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    cfs, c, root, _, tmp = box
    src = tmp / "owned"
    src.write_bytes(b"o")
    os.chown(src, 1234, 4321)
    copy_to_container(cfs, c, "c", str(src), "/tmp")
    assert (os.stat(root / "tmp" / "owned").st_uid, os.stat(root / "tmp" / "owned").st_gid) == (1234, 4321)
    (root / "etc" / "passwd").write_bytes(b"app:x:500:600::/:/bin/sh\n")
    c.config = dict(c.config, User="app")
    copy_to_container(cfs, c, "c", str(src), "/tmp/owned2", copy_uid_gid=True)
    st = os.stat(root / "tmp" / "owned2")
    assert (st.st_uid, st.st_gid, stat.S_ISREG(st.st_mode)) == (500, 600, True)
