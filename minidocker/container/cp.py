"""``cp`` (both directions) and ``export``, with Docker 20.10's path rules and without its CVEs.

The container's filesystem is what its process sees: the rootfs plus its volume and bind mounts.
:class:`ContainerFS` gives that view from the host without mounting anything:

* every lookup walks the container path component by component; symlinks are read and resolved
  *in container terms* (an absolute target starts again at the container's ``/``, ``..`` stops
  at it), like moby's ``FollowSymlinkInScope``;
* the symlink-free result is then opened relative to the root fd of the mount that holds it
  (rootfs, a volume's ``_data``, a bind source) with ``openat2(RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS)``. If the container swaps a directory for a symlink meanwhile, the kernel
  refuses (ELOOP) instead of following it: no host path is ever reached (CVE-2018-15664, C1/C2);
* writes go through the one safe extractor (:func:`minidocker.archive.extract.untar`) rooted at
  an fd of the destination directory (passed as ``/proc/self/fd/N/.``), never at a path string;
* user names in archives come from the host's passwd parsed as text, and nothing from the
  container is ever executed (CVE-2019-14271, C4/C5).

Use::

    with mounted_rootfs(stores, c) as rootfs, ContainerFS.for_container(c, rootfs, vols) as cfs:
        copy_from_container(cfs, c.short_name, "/etc", "/tmp/out")      # docker cp c:/etc /tmp/out
        copy_to_container(cfs, c, "/src/file", "/tmp/")                 # docker cp file c:/tmp/
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING, BinaryIO

from minidocker import trace
from minidocker.archive.tarstream import (
    TarHeader,
    TarReader,
    TarWriter,
    header_from_stat,
    host_group_name,
    host_user_name,
)
from minidocker.errors import InvalidInput, NotFound
from minidocker.kernel import fs

if TYPE_CHECKING:
    from minidocker.container.state import Container
    from minidocker.container.volumes import VolumeStore

_MAX_LINKS = 255  # FollowSymlinkInScope's limit
_BENEATH = fs.RESOLVE_BENEATH | fs.RESOLVE_NO_SYMLINKS | fs.RESOLVE_NO_MAGICLINKS


class CopyError(InvalidInput):
    """A ``docker cp`` failure: Docker's client exits 1, with Docker's message."""

    exit_code = 1


class NoSuchPath(NotFound):
    """``No such container:path: c:/x`` (exit 1)."""

    exit_code = 1


def _abs(path: str) -> str:
    """Go ``path.Clean("/" + path)`` (posixpath keeps a leading ``//``, Go does not)."""
    return posixpath.normpath("/" + path.lstrip("/"))


# -- the container's view ------------------------------------------------------------------------
class ContainerFS:
    """The rootfs plus ``mounts`` (container destination -> (host source, rw)), read through fds."""

    def __init__(self, rootfs: str, mounts: dict[str, tuple[str, bool]]) -> None:
        self._fds: dict[str, int] = {}
        self.rw: dict[str, bool] = {"/": True}
        try:
            self._fds["/"] = fs.open_root(rootfs)
            for dest, (source, rw) in mounts.items():
                d = _abs(dest)
                with contextlib.suppress(FileNotFoundError):  # a bind source removed since: skip it
                    self._fds[d] = os.open(source, os.O_PATH | os.O_CLOEXEC)
                    self.rw[d] = rw
        except BaseException:
            self.close()
            raise
        # longest destination first: the deepest mount holding a path wins
        self._order = sorted(self._fds, key=len, reverse=True)

    @classmethod
    def for_container(cls, c: Container, rootfs: str, volumes: VolumeStore | None = None) -> ContainerFS:
        """The mounts of ``c`` as its process has them: volumes, binds, and (once started) the
        /etc/hostname, /etc/hosts and /etc/resolv.conf files from ``containers/<id>/``."""
        mounts: dict[str, tuple[str, bool]] = {}
        for dest, mp in c.mount_points.items():
            source = str(mp.get("Source") or "")
            if mp.get("Type") == "volume" and volumes is not None and mp.get("Name"):
                source = volumes.data_path(str(mp["Name"]))
            if source:
                mounts[dest] = (source, bool(mp.get("RW", True)))
        for dest, path in (
            ("/etc/hostname", c.hostname_path),
            ("/etc/hosts", c.hosts_path),
            ("/etc/resolv.conf", c.resolv_conf_path),
        ):
            if path and dest not in mounts and os.path.isfile(path):
                mounts[dest] = (path, True)
        return cls(rootfs, mounts)

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> ContainerFS:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- lookups ---------------------------------------------------------------------------------
    def mount_of(self, cpath: str) -> tuple[str, str]:
        """(mount destination, path relative to that mount's root) for a clean container path."""
        for d in self._order:
            if d == "/" or cpath == d or cpath.startswith(d + "/"):
                return d, cpath[len(d) :].lstrip("/") if d != "/" else cpath.lstrip("/")
        raise AssertionError("the rootfs holds every path")

    def is_mount(self, cpath: str) -> bool:
        return cpath in self._fds and cpath != "/"

    def open(self, cpath: str, flags: int = os.O_PATH) -> int:
        """Open a symlink-free container path (the last component is never followed)."""
        d, rel = self.mount_of(_abs(cpath))
        root = self._fds[d]
        if not rel:
            return (
                os.open(f"/proc/self/fd/{root}", flags | os.O_CLOEXEC) if flags != os.O_PATH else os.dup(root)
            )
        return fs.openat2(root, rel, flags | os.O_NOFOLLOW, _BENEATH)

    def lstat(self, cpath: str) -> os.stat_result:
        """lstat of a container path whose parents are symlink-free (a trailing ``/`` asks for a dir)."""
        clean = _abs(cpath)
        fd = self.open(clean)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if cpath.endswith(("/", "/.")) and not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), cpath)
        return st

    def readlink(self, cpath: str) -> str:
        clean = _abs(cpath)
        d, rel = self.mount_of(clean)
        parent, base = posixpath.split(rel)
        pfd = fs.openat2(self._fds[d], parent or ".", os.O_PATH | os.O_DIRECTORY, _BENEATH)
        try:
            return os.readlink(base, dir_fd=pfd)
        finally:
            os.close(pfd)

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The container path with every symlink evaluated inside the container (the last
        component only with ``follow_last``); missing components are kept lexically."""
        parts = deque(p for p in path.split("/") if p)
        resolved = "/"
        links = 0
        while parts:
            comp = parts.popleft()
            if comp == ".":
                continue
            if comp == "..":
                resolved = posixpath.dirname(resolved)
                continue
            cand = posixpath.join(resolved, comp)
            if not parts and not follow_last:
                resolved = cand
                break
            try:
                st = self.lstat(cand)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
                resolved = posixpath.join(cand, *parts)
                break
            if not stat.S_ISLNK(st.st_mode):
                resolved = cand
                continue
            links += 1
            if links > _MAX_LINKS:
                raise OSError(errno.ELOOP, "too many links", path)
            target = self.readlink(cand)
            if target.startswith("/"):
                resolved = "/"
            parts.extendleft(reversed([p for p in target.split("/") if p]))
        return resolved


# -- writing trees ---------------------------------------------------------------------------------
def _child_name(name: str, child: str) -> str:
    if name == "":
        return child
    if name == "/":
        return "/" + child
    return name.rstrip("/") + "/" + child


def _root_header(fd: int, name: str) -> TarHeader:
    """The header of a mount root reached through its fd (no name to lstat)."""
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        return header_from_stat(f"/proc/self/fd/{fd}/.", name)
    h = TarHeader(
        name=name,
        typeflag=b"0",
        mode=st.st_mode,
        uid=st.st_uid,
        gid=st.st_gid,
        uname=host_user_name(st.st_uid),
        gname=host_group_name(st.st_gid),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns // 1_000_000_000 * 1_000_000_000,
    )
    h.raw_name = name.encode("utf-8", "surrogateescape")
    return h


def write_tree(
    cfs: ContainerFS,
    cpath: str,
    name: str,
    w: TarWriter,
    *,
    include_root: bool = True,
    cross_mounts: bool = True,
) -> int:
    """Append ``cpath`` (a symlink-free container path) and, for a directory, everything below it
    in name order, as ``name``, ``name/child``... Hard links inside the tree become tar links.
    Mounts met on the way are entered (``cp`` sees volumes) unless ``cross_mounts`` is false
    (``export``). Returns the number of entries."""
    links: dict[tuple[int, int], str] = {}
    count = 0
    clean = _abs(cpath)

    def add(h: TarHeader, content_fd: int) -> None:
        nonlocal count
        w.add(h, content_fd if content_fd >= 0 else None)
        count += 1

    def entry(dir_fd: int, base: str, cpath: str, name: str) -> None:
        # /proc/self/fd/N/<base>: N pins the directory we opened safely; header_from_stat
        # lstat()s, so <base> itself is never followed
        try:
            h = header_from_stat(f"/proc/self/fd/{dir_fd}/{base}", name)
        except (InvalidInput, FileNotFoundError):  # sockets (moby skips them), or gone meanwhile
            return
        fd = -1
        try:
            if h.typeflag == b"0":
                st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    h.typeflag, h.linkname, h.size = b"1", links[key], 0
                else:
                    if st.st_nlink > 1:
                        links[key] = h.name
                    fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        return  # swapped for something else since the lstat
            add(h, fd)
        finally:
            if fd >= 0:
                os.close(fd)
        if h.typeflag == b"5":
            walk(cpath, name)

    def mount_root(mfd: int, cpath: str, name: str, with_entry: bool = True) -> None:
        h = _root_header(mfd, name)
        if with_entry:
            fd = -1
            try:
                if h.typeflag == b"0":
                    fd = os.open(f"/proc/self/fd/{mfd}", os.O_RDONLY | os.O_CLOEXEC)
                add(h, fd)
            finally:
                if fd >= 0:
                    os.close(fd)
        if h.typeflag == b"5":
            walk(cpath, name)

    def walk(cpath: str, name: str) -> None:
        try:
            dfd = cfs.open(cpath, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            for child in sorted(os.listdir(dfd)):
                ccpath = posixpath.join(cpath, child)
                cname = _child_name(name, child)
                if cross_mounts and cfs.is_mount(ccpath):
                    mfd = cfs.open(ccpath)
                    try:
                        mount_root(mfd, ccpath, cname)
                    finally:
                        os.close(mfd)
                else:
                    entry(dfd, child, ccpath, cname)
        finally:
            os.close(dfd)

    if clean == "/" or cfs.is_mount(clean):
        rfd = cfs.open(clean)
        try:
            mount_root(rfd, clean, name, include_root)
        finally:
            os.close(rfd)
        return count
    parent, base = posixpath.split(clean)
    if not include_root:
        walk(clean, name)
        return count
    pfd = cfs.open(parent, os.O_PATH | os.O_DIRECTORY)
    try:
        entry(pfd, base, clean, name)
    finally:
        os.close(pfd)
    return count


# -- path helpers (pkg/archive/copy.go) -----------------------------------------------------------
def _base(path: str) -> str:
    """Go ``filepath.Base``: trailing slashes ignored, ``/`` for the root, ``.`` for empty."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return posixpath.basename(stripped)


def _split_dir_entry(path: str) -> tuple[str, str]:
    """``SplitPathDirEntry``: a trailing ``/.`` stays the base."""
    cleaned = posixpath.normpath(path) if path else "."
    if _base(path) == ".":
        cleaned = cleaned.rstrip("/") + "/."
    return posixpath.dirname(cleaned) or ".", posixpath.basename(cleaned) or "/"


def _preserve(cleaned: str, original: str) -> str:
    """``PreserveTrailingDotOrSeparator``."""
    if _base(cleaned) != "." and _base(original) == ".":
        if not cleaned.endswith("/"):
            cleaned += "/"
        cleaned += "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def _asserts_directory(path: str) -> bool:
    return path.endswith("/") or _base(path) == "."


def _rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """``GetRebaseName``."""
    if path.endswith("/.") and not resolved.endswith("/."):
        resolved += "/."
    elif path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    rebase = ""
    if _base(path) != _base(resolved):
        rebase = _base(path)
    return resolved, rebase


def _err_text(e: OSError) -> str:
    return (e.strerror or str(e)).lower()


# -- container -> tar / host ------------------------------------------------------------------------
class SourceInfo:
    def __init__(self, path: str, is_dir: bool, rebase: str = "") -> None:
        self.path, self.is_dir, self.rebase = path, is_dir, rebase


def archive_path(cfs: ContainerFS, ref: str, path: str, out: BinaryIO) -> SourceInfo:
    """``ContainerArchivePath``: ``path`` as Docker archives it (dir resolved, last component
    not followed; entries named after the requested base, ``/.`` gives ``./...``)."""
    if path == "":
        raise CopyError("Error response from daemon: bad parameter: path cannot be empty")
    abs_path = _preserve(_abs(path), path)
    dir_part, base = abs_path.rsplit("/", 1)
    try:
        resolved_dir = cfs.resolve(dir_part or "/", follow_last=True)
        resolved = (
            posixpath.join(resolved_dir, base)
            if base
            else resolved_dir + ("/" if resolved_dir != "/" else "")
        )
        st = cfs.lstat(resolved)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise NoSuchPath(f"No such container:path: {ref}:{path}", subject=path) from None
        raise CopyError(f"Error response from daemon: lstat {path}: {_err_text(e)}", subject=path) from None
    clean = posixpath.normpath(resolved)
    w = TarWriter(out)
    write_tree(cfs, clean, _base(abs_path), w)
    w.close()
    trace.emit(lambda: f"cp: archived {ref}:{clean}")
    return SourceInfo(clean, stat.S_ISDIR(st.st_mode))


def stat_path(cfs: ContainerFS, ref: str, path: str) -> tuple[os.stat_result, str]:
    """``ContainerStatPath``: (lstat, link target fully resolved in the container or "")."""
    abs_path = _preserve(_abs(path), path)
    dir_part, base = abs_path.rsplit("/", 1)
    try:
        resolved = posixpath.join(cfs.resolve(dir_part or "/"), base) if base else cfs.resolve(abs_path)
        st = cfs.lstat(resolved)
        link = cfs.resolve(resolved, follow_last=True) if stat.S_ISLNK(st.st_mode) else ""
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise NoSuchPath(f"No such container:path: {ref}:{path}", subject=path) from None
        raise CopyError(f"Error response from daemon: lstat {path}: {_err_text(e)}", subject=path) from None
    return st, link


class _Owned(TarReader):
    """A reader whose entries all get one owner (Docker's ``NoLchown`` on the host, ``-a`` user)."""

    def __init__(self, stream: IO[bytes], uid: int, gid: int) -> None:
        super().__init__(stream)  # type: ignore[arg-type]
        self._uid, self._gid = uid, gid

    def __iter__(self) -> Iterator[TarHeader]:
        for h in super().__iter__():
            h.uid, h.gid = self._uid, self._gid
            yield h


class _Renamed(TarReader):
    """``RebaseArchiveEntries``: the first path element ``old`` becomes ``new``."""

    def __init__(
        self, stream: IO[bytes] | TarReader, old: str, new: str, owner: tuple[int, int] | None = None
    ):
        super().__init__(stream)  # type: ignore[arg-type]
        self._old, self._new, self._owner = old, new, owner

    def __iter__(self) -> Iterator[TarHeader]:
        for h in super().__iter__():
            for attr in ("name", "linkname") if h.typeflag == b"1" else ("name",):
                v = getattr(h, attr)
                if self._old == "/":  # the root's entries are "/", "/etc/"...: Docker adds a "/"
                    if v.startswith("/"):
                        setattr(h, attr, self._new + v)
                elif v == self._old or v.startswith(self._old + "/"):
                    setattr(h, attr, self._new + v[len(self._old) :])
            if self._owner is not None:
                h.uid, h.gid = self._owner
            yield h


def copy_from_container(
    cfs: ContainerFS,
    ref: str,
    src: str,
    dest: str,
    *,
    follow_link: bool = False,
    stdout: BinaryIO | None = None,
) -> None:
    """``docker cp CONTAINER:SRC DEST`` (``DEST`` ``-`` writes the raw tar to ``stdout``)."""
    import tempfile

    from minidocker.archive.extract import untar

    rebase = ""
    if follow_link:
        st, link = stat_path(cfs, ref, src)
        if stat.S_ISLNK(st.st_mode) and link:
            src, rebase = _rebase_name(src, link)
    if dest == "-":
        archive_path(cfs, ref, src, stdout or os.fdopen(1, "wb", closefd=False))
        return
    dst_path, dst_exists, dst_is_dir = _host_dest_info(dest)
    with tempfile.TemporaryFile() as spool:
        info = archive_path(cfs, ref, src, spool)
        spool.seek(0)
        dst_dir, rename = _prepare(_archive_base(src), info.is_dir, rebase, dst_path, dst_exists, dst_is_dir)
        owner = (os.getuid(), os.getgid())  # NoLchown: files belong to whoever runs cp
        reader: TarReader = (
            _Renamed(spool, rename[0], rename[1], owner) if rename is not None else _Owned(spool, *owner)
        )
        try:
            untar(reader, dst_dir, no_overwrite_dir_nondir=True)
        except InvalidInput as e:
            raise CopyError(str(e), subject=dest) from e


def _archive_base(src: str) -> str:
    """The first path element of what :func:`archive_path` produces for ``src``."""
    return _base(_preserve(_abs(src), src))


def _host_dest_info(path: str) -> tuple[str, bool, bool]:
    """``CopyInfoDestinationPath`` on the host: follows symlinks at the end (10 at most)."""
    original = path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise CopyError(f"lstat {path}: {_err_text(e)}", subject=path) from None
    n = 0
    while st is not None and stat.S_ISLNK(st.st_mode):
        n += 1
        if n > 10:
            raise CopyError(f"too many symlinks in {original}", subject=original)
        target = os.readlink(path)
        if not target.startswith("/"):
            target = posixpath.join(_split_dir_entry(path)[0], target)
        path = target
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is not None:
        return path, True, stat.S_ISDIR(st.st_mode)
    parent, _ = _split_dir_entry(path)
    try:
        pst = os.stat(parent)
    except OSError as e:
        raise CopyError(f"stat {parent}: {_err_text(e)}", subject=path) from None
    if not stat.S_ISDIR(pst.st_mode):
        raise CopyError("not a directory", subject=path)
    return path, False, False


def _prepare(
    src_base: str, src_is_dir: bool, rebase: str, dst: str, dst_exists: bool, dst_is_dir: bool
) -> tuple[str, tuple[str, str] | None]:
    """``PrepareArchiveCopy``: (directory to extract into, (entry prefix, new prefix) or None).

    ``src_base`` is the first path element of the archive; ``rebase`` the name it stands for
    (``-L`` and trailing-slash symlinks, ``GetRebaseName``)."""
    dst_dir, dst_base = _split_dir_entry(dst)
    if dst_exists and dst_is_dir:
        return dst, ((src_base, rebase) if rebase else None)
    if dst_exists and src_is_dir:
        raise CopyError("cannot copy directory", subject=dst)
    if not dst_exists and not src_is_dir and _asserts_directory(dst):
        raise CopyError("no such directory", subject=dst)
    return dst_dir, (src_base, dst_base)


# -- host -> container --------------------------------------------------------------------------------
def _host_source(src: str, follow_link: bool) -> tuple[str, str, bool, str]:
    """``CopyInfoSourcePath``: (resolved dir, base, is_dir, rebase name)."""
    path = _preserve(os.path.abspath(src), src)
    try:
        if follow_link:
            resolved = os.path.realpath(path, strict=True)
            resolved, rebase = _rebase_name(path, resolved)
        else:
            d, b = os.path.split(path)
            resolved = os.path.join(os.path.realpath(d or ".", strict=True), b)
            rebase = ""
            if path.endswith("/") and os.path.basename(path.rstrip("/")) != os.path.basename(
                resolved.rstrip("/")
            ):
                rebase = os.path.basename(path.rstrip("/"))
        st = os.lstat(resolved)
    except OSError as e:
        raise CopyError(f"lstat {path.rstrip('/') or '/'}: {_err_text(e)}", subject=src) from None
    if resolved.endswith("/") and not stat.S_ISDIR(st.st_mode):
        raise CopyError(f"lstat {resolved}: not a directory", subject=src)
    d, b = _split_dir_entry(resolved)
    return d, b, stat.S_ISDIR(st.st_mode), rebase


def copy_to_container(
    cfs: ContainerFS,
    c: Container,
    ref: str,
    src: str,
    dest: str,
    *,
    follow_link: bool = False,
    copy_uid_gid: bool = False,
    stdin: BinaryIO | None = None,
) -> None:
    """``docker cp SRC CONTAINER:DEST`` (``SRC`` ``-``: a tar on ``stdin``, DEST must be a dir)."""
    import tempfile

    from minidocker.archive.extract import untar

    dst_path = dest
    dst_exists = dst_is_dir = False
    # like the CLI: a failing stat means "does not exist yet"; the extraction decides
    st: os.stat_result | None = None
    with contextlib.suppress(NoSuchPath, CopyError):
        st, link = stat_path(cfs, ref, dest)
        if stat.S_ISLNK(st.st_mode):
            dst_path, st = link, None
            st, _ = stat_path(cfs, ref, link)
    if st is not None:
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise CopyError(f'destination "{ref}:{dest}" must be a directory or a regular file', subject=dest)
        dst_exists, dst_is_dir = True, stat.S_ISDIR(st.st_mode)
    owner = _chown_for(cfs, c) if copy_uid_gid else None

    def extract(stream: IO[bytes], into: str, rename: tuple[str, str] | None) -> None:
        target = _extraction_point(cfs, c, ref, into)
        try:
            reader: TarReader
            if rename is not None:
                reader = _Renamed(stream, rename[0], rename[1], owner)
            elif owner is not None:
                reader = _Owned(stream, *owner)
            else:
                reader = TarReader(stream)  # type: ignore[arg-type]
            untar(reader, f"/proc/self/fd/{target}/.", no_overwrite_dir_nondir=True, symlinks="chroot")
        except InvalidInput as e:
            raise CopyError(f"Error response from daemon: {e}", subject=dest) from e
        finally:
            os.close(target)

    if src == "-":
        if not dst_is_dir:
            raise CopyError(f'destination "{ref}:{dest}" must be a directory', subject=dest)
        extract(stdin or os.fdopen(0, "rb", closefd=False), dst_path, None)
        return
    src_dir, src_base, src_is_dir, rebase = _host_source(src, follow_link)
    with tempfile.TemporaryFile() as spool, ContainerFS(src_dir, {}) as host:
        w = TarWriter(spool)
        write_tree(host, "/" + src_base if src_base != "." else "/", src_base, w)
        w.close()
        spool.seek(0)
        dst_dir, rename = _prepare(src_base, src_is_dir, rebase, dst_path, dst_exists, dst_is_dir)
        extract(spool, dst_dir, rename)


def _extraction_point(cfs: ContainerFS, c: Container, ref: str, path: str) -> int:
    """``containerExtractToDir``: resolve fully (the last symlink too), must be a directory that
    is writable for the container; returns an O_DIRECTORY fd of it."""
    abs_path = _preserve(_abs(path), path)
    resolved = cfs.resolve(abs_path, follow_last=True)
    try:
        st = cfs.lstat(resolved)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NoSuchPath(f"No such container:path: {ref}:{_abs(path)}") from None
        raise CopyError(f"Error response from daemon: {_err_text(e)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CopyError("Error response from daemon: extraction point is not a directory", subject=path)
    mount, _ = cfs.mount_of(resolved)
    if mount == "/" and c.host_config.readonly_rootfs:
        raise CopyError("Error response from daemon: container rootfs is marked read-only", subject=path)
    if not cfs.rw.get(mount, True):
        raise CopyError("Error response from daemon: mounted volume is marked read-only", subject=path)
    return cfs.open(resolved, os.O_RDONLY | os.O_DIRECTORY)


def _chown_for(cfs: ContainerFS, c: Container) -> tuple[int, int] | None:
    """``-a``: dockerd chowns to the container's ``Config.User`` (looked up in the container's
    passwd/group, read as text through the safe lookups, never via NSS), else keeps the archive's."""
    from minidocker.namespaces import users

    user = str(c.config.get("User") or "")
    if not user:
        return None

    def read(p: str) -> bytes | None:
        try:
            fd = cfs.open(cfs.resolve(p), os.O_RDONLY)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(1 << 20)

    u = users.resolve(user, read("/etc/passwd"), read("/etc/group"))
    return u.uid, u.gid


# -- export ------------------------------------------------------------------------------------------
def export(rootfs: str, out: BinaryIO) -> int:
    """``docker export``: the container's merged rootfs (no volumes, no /proc or /dev mounts),
    entries named relative to ``/`` without an entry for ``/`` itself."""
    with ContainerFS(rootfs, {}) as cfs:
        w = TarWriter(out)
        n = write_tree(cfs, "/", "", w, include_root=False, cross_mounts=False)
        w.close()
    trace.emit(lambda: f"export {rootfs} ({n} entries)")
    return n


def parse_cp_args(src: str, dest: str) -> tuple[str | None, str, str | None, str]:
    """Split ``CONTAINER:PATH`` arguments like the docker CLI's ``splitCpArg`` (a path starting
    with ``/`` or ``.`` is local even with a colon)."""

    def split(arg: str) -> tuple[str | None, str]:
        if arg.startswith(("/", ".")) or ":" not in arg:
            return None, arg
        container, _, path = arg.partition(":")
        return container, path

    sc, sp = split(src)
    dc, dp = split(dest)
    if sc is not None and dc is not None:
        raise CopyError("copying between containers is not supported")
    if sc is None and dc is None:
        raise CopyError("must specify at least one container source")
    return sc, sp, dc, dp
