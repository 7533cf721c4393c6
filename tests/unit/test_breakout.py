"""Archive breakout cases (reliability-cases.md A.0-A.4, A.7 W4/W5) against every extract function.

The harness is moby's ``testBreakout`` (pkg/archive/utils_test.go): a victim directory next to
the destination holds a file with unique bytes; after extracting a crafted tar, the victim must be
intact and no file under the destination may carry (or share the inode of) those bytes.
"""

from __future__ import annotations

import datetime
import functools
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from tarbuild import archive, dir_, entry, lnk, reader, reg, sym

from minidocker.archive.extract import ApplyStats, apply_layer, apply_layer_onto, untar
from minidocker.errors import BreakoutError, InvalidInput

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="extraction chowns and mknods: needs root")

Extract = Callable[..., ApplyStats]
EXTRACTORS: dict[str, Extract] = {
    "untar": untar,
    "apply_layer": apply_layer,
    "apply_layer_keep": functools.partial(apply_layer, whiteouts="keep"),
    "apply_layer_onto": apply_layer_onto,
}


@pytest.fixture(params=list(EXTRACTORS))
def extract(request: pytest.FixtureRequest) -> Extract:
    return EXTRACTORS[request.param]


class Victim:
    def __init__(self, tmp: Path) -> None:
        self.dest = tmp / "dest"
        self.dest.mkdir()
        self.dir = tmp / "victim"
        self.dir.mkdir()
        self.hello = self.dir / "hello"
        self.content = (datetime.datetime.now().isoformat() + secrets.token_hex(8)).encode()
        self.hello.write_bytes(self.content)
        self.hello.chmod(0o644)
        self.st = self.hello.stat()

    def check(self) -> None:
        # (a) victim is still a directory, (b) holding only hello
        assert self.dir.is_dir() and not self.dir.is_symlink()
        assert os.listdir(self.dir) == ["hello"]
        assert os.listxattr(self.dir) == [] and os.listxattr(self.hello) == []
        # (c) hello keeps mode, size, bytes (and owner and mtime: cpython #157190)
        st = self.hello.stat(follow_symlinks=False)
        assert stat.S_ISREG(st.st_mode)
        assert (st.st_mode, st.st_size, st.st_uid, st.st_gid, st.st_mtime_ns) == (
            self.st.st_mode,
            self.st.st_size,
            self.st.st_uid,
            self.st.st_gid,
            self.st.st_mtime_ns,
        )
        assert self.hello.read_bytes() == self.content
        # (d) nothing under dest reads as hello or aliases its inode
        for top, dirs, files in os.walk(self.dest):
            for name in files + dirs:
                p = os.path.join(top, name)
                lst = os.lstat(p)
                assert (lst.st_dev, lst.st_ino) != (self.st.st_dev, self.st.st_ino), p
                if stat.S_ISREG(lst.st_mode):
                    with open(p, "rb") as f:
                        assert f.read() != self.content, p


def breakout(tmp: Path, extract: Extract, *entries: bytes, allow_invalid: bool = False) -> str:
    """Run one case; return "ok", "breakout" or "invalid" after checking the victim."""
    v = Victim(tmp)
    outcome = "ok"
    try:
        extract(reader(archive(*entries)), str(v.dest))
    except BreakoutError:
        outcome = "breakout"
    except InvalidInput:
        if not allow_invalid:
            raise
        outcome = "invalid"
    v.check()
    return outcome


# ---- A.1 invalid filenames -------------------------------------------------------------------


def test_a1_1_dotdot_name(tmp_path: Path, extract: Extract) -> None:
    assert breakout(tmp_path, extract, reg("../victim/dotdot", b"x")) == "breakout"


def test_a1_2_slash_dotdot_name_is_confined(tmp_path: Path, extract: Extract) -> None:
    assert breakout(tmp_path, extract, reg("/../victim/slash-dotdot", b"x")) == "ok"
    assert (tmp_path / "dest/victim/slash-dotdot").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["..", "a/../../", "../"])
def test_dotdot_directory_entry(tmp_path: Path, extract: Extract, name: str) -> None:
    assert breakout(tmp_path, extract, dir_(name, mode=0o777)) == "breakout"


@pytest.mark.parametrize("entries", [[reg(".", b"x")], [reg("./", b"x")], [sym("/", "x")], [lnk(".", "x")]])
def test_non_directory_over_the_root(tmp_path: Path, extract: Extract, entries: list[bytes]) -> None:
    """Docker skips any entry named "." (its Lstat sees a directory): the root is never replaced."""
    assert breakout(tmp_path, extract, reg("x"), *entries) == "ok"
    assert (tmp_path / "dest").is_dir() and os.listdir(tmp_path / "dest") == ["x"]


# ---- A.2 hard link to a symlink --------------------------------------------------------------


def test_a2_1_hardlink_to_symlink(tmp_path: Path, extract: Extract) -> None:
    out = breakout(
        tmp_path, extract, sym("symlink1", "regfile"), lnk("symlink2", "symlink1"), reg("regfile", b"data")
    )
    assert out == "ok"
    d = tmp_path / "dest"
    s1, s2 = os.lstat(d / "symlink1"), os.lstat(d / "symlink2")
    assert stat.S_ISLNK(s2.st_mode) and s1.st_ino == s2.st_ino
    assert os.readlink(d / "symlink2") == "regfile"


def test_hardlink_to_absolute_symlink_leaves_target_alone(tmp_path: Path, extract: Extract) -> None:
    """cpython #157190: linking to a symlink must not chmod/utime what the symlink points at."""
    hello = str(tmp_path / "victim/hello")
    out = breakout(tmp_path, extract, sym("s", hello), lnk("h", "s", mode=0o7777, mtime=1, uid=1234))
    assert out == "ok"


# ---- A.3 invalid hardlinks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([lnk("dotdot", "../victim/hello")], id="A3.1"),
        pytest.param([lnk("slash-dotdot", "/../victim/hello")], id="A3.2"),
        pytest.param(
            [lnk("loophole-victim", "../victim", mode=0o755), reg("loophole-victim/file")], id="A3.3"
        ),
        pytest.param(
            [lnk("loophole-victim", "../victim"), sym("symlink", "loophole-victim/hello")], id="A3.4"
        ),
        pytest.param(
            [lnk("loophole-victim", "../victim"), lnk("hardlink", "loophole-victim/hello")], id="A3.5"
        ),
        pytest.param([lnk("loophole-victim", "../victim"), reg("loophole-victim")], id="A3.6"),
    ],
)
def test_a3_invalid_hardlink(tmp_path: Path, extract: Extract, entries: list[bytes]) -> None:
    assert breakout(tmp_path, extract, *entries) == "breakout"


def test_a3_message(tmp_path: Path) -> None:
    v = Victim(tmp_path)
    with pytest.raises(BreakoutError, match="invalid hardlink"):
        untar(reader(archive(lnk("dotdot", "../victim/hello"))), str(v.dest))


# ---- A.4 invalid symlinks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([sym("dotdot", "../victim/hello")], id="A4.1"),
        pytest.param([sym("slash-dotdot", "/../victim/hello")], id="A4.2"),
        pytest.param([sym("loophole-victim", "../victim"), reg("loophole-victim/file")], id="A4.3"),
        pytest.param(
            [sym("loophole-victim", "../victim"), sym("symlink", "loophole-victim/hello")], id="A4.4"
        ),
        pytest.param(
            [sym("loophole-victim", "../victim"), lnk("hardlink", "loophole-victim/hello")], id="A4.5"
        ),
        pytest.param([sym("loophole-victim", "../victim"), reg("loophole-victim")], id="A4.6"),
        pytest.param([sym("dir/loophole", "../../victim"), reg("dir/loophole/newdir/newfile")], id="A4.7"),
    ],
)
def test_a4_invalid_symlink(tmp_path: Path, extract: Extract, entries: list[bytes]) -> None:
    assert breakout(tmp_path, extract, *entries) == "breakout"


@pytest.mark.parametrize("fn", ["untar", "apply_layer", "apply_layer_onto"])
def test_a4_chroot_symlinks_accepted_and_still_confined(tmp_path: Path, fn: str) -> None:
    """dockerd (chroot) keeps ``..``-climbing symlinks; writes through them still stay inside."""
    out = breakout(
        tmp_path,
        functools.partial(EXTRACTORS[fn], symlinks="chroot"),
        sym("dotdot", "../victim/hello"),
        sym("usr/lib/x", "../../../lib/x"),
        sym("loophole-victim", "../victim"),
        reg("loophole-victim/file", b"x"),
        allow_invalid=True,
    )
    assert out == "invalid"  # ../victim resolves to <root>/victim, which does not exist
    assert os.readlink(tmp_path / "dest/dotdot") == "../victim/hello"
    assert os.readlink(tmp_path / "dest/usr/lib/x") == "../../../lib/x"


def test_a4_message(tmp_path: Path) -> None:
    v = Victim(tmp_path)
    with pytest.raises(BreakoutError, match="invalid symlink"):
        apply_layer(reader(archive(sym("dotdot", "../victim/hello"))), str(v.dest))


# ---- symlinks the lexical check lets through: confinement comes from RESOLVE_IN_ROOT ---------
# Each of these writes into the victim when parents are resolved with plain path lookups.


def test_write_through_absolute_symlink(tmp_path: Path, extract: Extract) -> None:
    out = breakout(
        tmp_path, extract, sym("l", str(tmp_path / "victim")), reg("l/file", b"x"), allow_invalid=True
    )
    assert out in ("invalid", "ok")


def test_write_through_absolute_symlink_into_new_dirs(tmp_path: Path, extract: Extract) -> None:
    out = breakout(
        tmp_path,
        extract,
        sym("l", str(tmp_path / "victim")),
        reg("l/newdir/newfile", b"x"),
        allow_invalid=True,
    )
    assert out in ("invalid", "ok")


def test_dotdot_after_absolute_root_symlink(tmp_path: Path, extract: Extract) -> None:
    """``a/m -> l/../..`` is lexically inside, but ``a/l -> /`` makes the kernel climb from the host root."""
    rel_victim = str(tmp_path / "victim").lstrip("/")
    out = breakout(
        tmp_path,
        extract,
        sym("a/l", "/"),
        sym("a/m", "l/../.."),
        reg(f"a/m/{rel_victim}/file", b"x"),
        allow_invalid=True,
    )
    assert out in ("invalid", "ok")


def test_hardlink_through_absolute_symlink(tmp_path: Path, extract: Extract) -> None:
    out = breakout(
        tmp_path, extract, sym("l", str(tmp_path / "victim")), lnk("h", "l/hello"), allow_invalid=True
    )
    assert out in ("invalid", "ok")


def test_dir_entry_over_symlink_to_outside(tmp_path: Path, extract: Extract) -> None:
    out = breakout(tmp_path, extract, sym("d", str(tmp_path / "victim")), dir_("d", mode=0o777, uid=4321))
    assert out == "ok"
    assert (tmp_path / "dest/d").is_dir() and not (tmp_path / "dest/d").is_symlink()


def test_file_entry_over_symlink_to_outside(tmp_path: Path, extract: Extract) -> None:
    hello = str(tmp_path / "victim/hello")
    assert breakout(tmp_path, extract, sym("f", hello), reg("f", b"pwned", mode=0o777)) == "ok"
    assert (tmp_path / "dest/f").read_bytes() == b"pwned"


def test_device_and_fifo_over_symlink_to_outside(tmp_path: Path, extract: Extract) -> None:
    hello = str(tmp_path / "victim/hello")
    out = breakout(
        tmp_path,
        extract,
        sym("f", hello),
        entry("f", b"6", mode=0o777),
        sym("c", hello),
        entry("c", b"3", mode=0o777),
    )
    assert out == "ok"


@pytest.mark.parametrize("name", [".wh.hello", ".wh.other", ".wh..wh..opq"])
def test_whiteouts_through_symlink_to_outside(tmp_path: Path, extract: Extract, name: str) -> None:
    victim = str(tmp_path / "victim")
    out = breakout(tmp_path, extract, sym("l", victim), reg(f"l/{name}"), allow_invalid=True)
    assert out in ("invalid", "ok")


# ---- A.7 W4 / W5: whiteouts that name the parent or nothing ----------------------------------


@pytest.mark.parametrize("fn", ["apply_layer", "apply_layer_onto"])
@pytest.mark.parametrize("name", [".wh...", "etc/.wh...", "./etc/.wh..."])
def test_w5_whiteout_of_dotdot(tmp_path: Path, fn: str, name: str) -> None:
    assert breakout(tmp_path, EXTRACTORS[fn], dir_("etc"), reg(name)) == "breakout"
    assert (tmp_path / "dest/etc").is_dir()


@pytest.mark.parametrize("fn", ["apply_layer", "apply_layer_onto"])
@pytest.mark.parametrize("name", ["etc/.wh.", "etc/.wh..", ".wh.", "./.wh."])
def test_w4_whiteout_without_name(tmp_path: Path, fn: str, name: str) -> None:
    v = Victim(tmp_path)
    with pytest.raises(InvalidInput):
        EXTRACTORS[fn](reader(archive(dir_("etc"), reg("etc/keep", b"k"), reg(name))), str(v.dest))
    v.check()
    assert (v.dest / "etc/keep").read_bytes() == b"k"


def test_w4_keep_mode_writes_plain_file(tmp_path: Path) -> None:
    v = Victim(tmp_path)
    untar(reader(archive(dir_("etc"), reg("etc/.wh."), reg(".wh..."))), str(v.dest))
    assert (v.dest / "etc/.wh.").is_file() and (v.dest / ".wh...").is_file()
    v.check()
