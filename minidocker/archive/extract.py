"""The one safe tar extractor: every layer, ``load`` temp dir and build context goes through here.

Three entry points, one engine::

    from minidocker.archive.tarstream import TarReader
    from minidocker.archive.extract import apply_layer, untar, apply_layer_onto

    stats = apply_layer(TarReader(stream), "/var/lib/minidocker/overlay2/<id>/diff")  # pull, load
    stats = untar(TarReader(stream), tmpdir)            # docker-archive temp dir, build context
    stats = apply_layer_onto(TarReader(stream), rootfs)  # flatten a diff onto a tree (import/export)

What it reproduces
    ``apply_layer`` is dockerd 20.10's overlay2 ``ApplyDiff``: ``chrootarchive.UntarUncompressed``
    with ``OverlayWhiteoutFormat``, i.e. ``archive.Unpack`` run inside ``chroot(diff)``. ``untar`` is
    the same without the whiteout conversion (``chrootarchive.Untar``), ``apply_layer_onto`` is
    ``archive.UnpackLayer`` (the naive applier: whiteouts delete, opaque markers empty a directory).
    The results are meant to equal dockerd's file by file: names, types, modes (setuid/setgid/sticky
    included, whatever the umask), owners, mtimes to the nanosecond, symlink targets, shared
    hardlink inodes, xattrs (``SCHILY.xattr.*`` such as ``security.capability``), devices, fifos.

Why it is safe
    Docker gets safety from ``chroot``; we get the same view of the tree without one. Every
    entry's parent directory is resolved with ``openat2(RESOLVE_IN_ROOT)`` from a descriptor of the
    destination, so ``..`` and symlinks -- absolute or relative, planted by earlier entries -- can
    only ever lead to places inside it. The entry itself is then created with ``*at`` calls relative
    to that parent (``O_EXCL|O_NOFOLLOW``, ``linkat`` without ``AT_SYMLINK_FOLLOW``), and metadata
    is applied through the new file's descriptor or with ``AT_SYMLINK_NOFOLLOW``: nothing ever
    follows a symlink out of the tree, and a hard link can only alias an inode inside it.
    On top of that, names and link targets that climb above the root (``../x``) are refused with
    :class:`BreakoutError` exactly where moby's non-chroot ``Untar`` refuses them ("invalid
    hardlink", "invalid symlink"), and a whiteout can never name ``..``, ``.`` or the root.

Errors: :class:`BreakoutError` for escape attempts, :class:`InvalidInput` for any other entry that
cannot be extracted. The caller removes the partial destination; nothing outside it is touched.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from minidocker import trace
from minidocker.archive.tarstream import _parse_pax_time
from minidocker.errors import BreakoutError, InvalidInput
from minidocker.kernel import fs

if TYPE_CHECKING:
    from minidocker.archive.tarstream import TarHeader, TarReader

Symlinks = Literal["strict", "chroot"]
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_LINK_DIR = ".wh..wh.plnk"
WHITEOUT_OPAQUE = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"


@dataclass(slots=True)
class ApplyStats:
    """What an extraction did: ``entries`` headers handled, ``bytes`` of regular-file content written."""

    entries: int = 0
    bytes: int = 0


def apply_layer(
    reader: TarReader,
    dest: str,
    *,
    whiteouts: Literal["overlay", "keep"] = "overlay",
    max_bytes: int | None = None,
    symlinks: Symlinks = "strict",
) -> ApplyStats:
    """Extract a layer diff into an (empty) overlay2 ``diff`` directory, as dockerd's ``ApplyDiff``.

    ``whiteouts="overlay"``: ``.wh.NAME`` becomes a 0/0 character device ``NAME`` (mode 0000, owned
    by the header's uid/gid), ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory,
    and aufs metadata (``.wh..wh.plnk`` and other ``.wh..wh.*``) is dropped. ``"keep"`` writes the
    ``.wh.`` entries as the plain files they are in the tar. ``max_bytes`` bounds the total content
    (a decompression bomb then fails instead of filling the disk). Drains the reader to EOF, so
    ``reader.diff_id`` is available afterwards.

    ``symlinks="strict"`` refuses a symlink whose target, joined to its directory, climbs above the
    root (moby's non-chroot ``Untar``: "invalid symlink"). dockerd itself extracts in a chroot,
    where that check never fires, and accepts e.g. ``usr/lib/x -> ../../../lib/x``; ``"chroot"``
    does the same. Either way is safe: lookups never leave the root.
    """
    mode: _Mode = "overlay" if whiteouts == "overlay" else "keep"
    return _Extractor(dest, mode, max_bytes=max_bytes, symlinks=symlinks).run(reader)


def untar(
    reader: TarReader | None,
    dest: str,
    *,
    max_bytes: int | None = None,
    no_overwrite_dir_nondir: bool = False,
    symlinks: Symlinks = "strict",
) -> ApplyStats:
    """Plain extraction (moby ``chrootarchive.Untar``): no whiteout handling, ``.wh.`` files stay files.

    ``no_overwrite_dir_nondir`` makes replacing a directory by a non-directory (or the reverse) an
    error, as ``docker cp`` asks for.
    """
    if reader is None:
        raise InvalidInput("empty archive")
    ex = _Extractor(
        dest, "keep", max_bytes=max_bytes, no_overwrite=no_overwrite_dir_nondir, symlinks=symlinks
    )
    return ex.run(reader)


def apply_layer_onto(
    reader: TarReader, dest: str, *, max_bytes: int | None = None, symlinks: Symlinks = "strict"
) -> ApplyStats:
    """Apply a diff ONTO an existing tree (moby ``UnpackLayer``, the naive applier).

    ``.wh.NAME`` removes ``NAME``; ``.wh..wh..opq`` removes every child of its directory that this
    layer has not itself written (yet); implied parent directories get mode 0600 as in moby.
    """
    return _Extractor(dest, "onto", max_bytes=max_bytes, symlinks=symlinks).run(reader)


# ------------------------------------------------------------------------------------------------
# Paths


def _clean(path: str, anchored: bool) -> str | None:
    """Go ``filepath.Clean`` of a path taken relative to the root: ``""`` is the root itself.

    ``anchored`` (the path began with ``/``): a ``..`` at the root stays at the root, as ``Clean``
    does for absolute paths. Otherwise ``None`` says the path climbs above the root.
    """
    out: list[str] = []
    for part in path.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            if out:
                out.pop()
            elif not anchored:
                return None
            continue
        out.append(part)
    return "/".join(out)


def _entry_rel(name: str) -> str:
    """The root-relative path of an entry name, e.g. ``./usr/bin/`` -> ``usr/bin``."""
    n = name[2:] if name.startswith("./") else name
    # fast path for the usual "usr/lib/x" and "usr/lib/": no ".", "..", "" or leading "/" parts
    if n and n[0] not in "./" and "/." not in n and "//" not in n:
        return n[:-1] if n[-1] == "/" else n
    rel = _clean(name, anchored=name.startswith("/"))
    if rel is None:
        raise BreakoutError(f"{name!r} is outside of the extraction root", subject=name)
    return rel


def _split(rel: str) -> tuple[str, str]:
    i = rel.rfind("/")
    return (rel[:i], rel[i + 1 :]) if i >= 0 else ("", rel)


# ------------------------------------------------------------------------------------------------
# The engine

_Mode = Literal["overlay", "keep", "onto"]
_RESOLVE = fs.RESOLVE_IN_ROOT | fs.RESOLVE_NO_MAGICLINKS
_DIR_PATH = os.O_PATH | os.O_DIRECTORY
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CACHE_MAX = 128  # parent directory fds kept open; tars list a directory's files together
_MAX_NS = (1 << 63) - 1
# errors that say nothing about the archive: keep them as they are
_ENVIRONMENT_ERRNOS = frozenset(
    (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE)
)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o777  # unknown: assume the worst, so every mode is set explicitly


def _clamp(ns: int) -> int:
    """``system.Chtimes``: times before the epoch or past Go's maximum become the epoch."""
    return ns if 0 <= ns <= _MAX_NS else 0


class _Extractor:
    """One extraction: a root fd, a cache of parent-directory fds, the directories to date at the end."""

    def __init__(
        self,
        dest: str,
        mode: _Mode,
        *,
        max_bytes: int | None = None,
        no_overwrite: bool = False,
        symlinks: Symlinks = "strict",
    ):
        self.dest = dest
        self.strict_symlinks = symlinks == "strict"
        self.mode = mode
        self.max_bytes = max_bytes
        self.no_overwrite = no_overwrite
        self.stats = ApplyStats()
        self.is_root = os.geteuid() == 0
        self.umask = _umask()
        # parent-dir fds by root-relative path; "" is the root. Removing anything may leave stale
        # entries, so removals move the cache to the graveyard, closed before the next entry.
        self.root = -1
        self.cache: dict[str, int] = {}
        self.graveyard: list[int] = []
        self.dirs: list[tuple[str, int, int]] = []  # (rel, atime_ns, mtime_ns), dated at the end
        self.unpacked: set[str] = set()  # "onto": paths this layer wrote (opaque dirs keep them)

    # ---- driver -----------------------------------------------------------------------------

    def run(self, reader: TarReader) -> ApplyStats:
        self.reader = reader
        self.root = fs.open_root(self.dest)
        self.cache = {"": self.root}
        name = ""
        try:
            for hdr in reader:
                name = hdr.name
                if self.graveyard:
                    self._bury()
                if len(self.cache) > _CACHE_MAX:
                    self._evict()
                self.stats.entries += 1
                self._entry(hdr)
            name = ""
            self._date_dirs()
            reader.finish()
        except OSError as e:
            if e.errno in _ENVIRONMENT_ERRNOS:
                raise
            where = f"{name}: " if name else ""
            raise InvalidInput(f"cannot extract {where}{e.strerror or e}", subject=name or None) from e
        except OverflowError as e:  # uid/gid or times beyond what the kernel takes
            raise InvalidInput(f"cannot extract {name}: {e}", subject=name) from e
        finally:
            self._close_all()
        trace.emit(lambda: f"untar {self.dest} ({self.stats.entries} entries, {self.stats.bytes} bytes)")
        return self.stats

    def _entry(self, hdr: TarHeader) -> None:
        tf = hdr.typeflag
        rel = _entry_rel(hdr.name)
        if not rel:
            return  # Docker skips "." whatever its type: the root keeps its own metadata
        parent, base = _split(rel)

        if self.mode != "keep":
            if rel.startswith(WHITEOUT_META_PREFIX) and rel != WHITEOUT_OPAQUE:
                return  # aufs metadata at the root (.wh..wh.plnk/...): not part of the tree
            if base.startswith(WHITEOUT_PREFIX):
                self._whiteout(hdr, parent, base)
                return

        pfd = self._dir_fd(parent, create=True)
        if tf == b"0":
            self._reg(hdr, pfd, base)
        elif tf == b"5":
            self._dir(hdr, pfd, base, rel)
        elif tf == b"2":
            self._symlink(hdr, pfd, base, parent)
        elif tf == b"1":
            self._hardlink(hdr, pfd, base)
        elif tf in (b"3", b"4", b"6"):
            self._node(hdr, pfd, base)
        else:
            raise InvalidInput(f"{hdr.name!r}: unhandled tar header type {tf!r}", subject=hdr.name)
        if self.mode == "onto":
            self.unpacked.add(rel)

    # ---- whiteouts ----------------------------------------------------------------------------

    def _whiteout(self, hdr: TarHeader, parent: str, base: str) -> None:
        """``.wh.NAME``: a whiteout device (overlay) or the removal of NAME (onto); opaque markers."""
        target = base[len(WHITEOUT_PREFIX) :]
        if target == "..":
            raise BreakoutError(f"{hdr.name!r}: whiteout of the parent directory", subject=hdr.name)
        if target in ("", "."):
            raise InvalidInput(f"{hdr.name!r}: whiteout without a name", subject=hdr.name)
        pfd = self._dir_fd(parent, create=True)
        if base == WHITEOUT_OPAQUE:
            if self.mode == "overlay":
                fd = os.open(".", _DIR_READ, dir_fd=pfd)
                try:
                    os.setxattr(fd, _OPAQUE_XATTR, b"y")
                finally:
                    os.close(fd)
            else:
                self._make_opaque(parent)
        elif self.mode == "overlay":
            if not base.startswith(WHITEOUT_META_PREFIX):  # other aufs metadata is dropped
                os.mknod(target, stat.S_IFCHR, 0, dir_fd=pfd)  # mode 0000, as Docker's mknod(S_IFCHR, 0)
                self._chown(target, hdr.uid, hdr.gid, pfd)
        else:
            self._remove(pfd, target)

    def _make_opaque(self, parent: str) -> None:
        """``onto``: remove what lower layers left in ``parent``, keeping what this layer wrote."""
        self._invalidate()
        pending = [parent]
        while pending:
            drel = pending.pop()
            try:  # opened one at a time: a crafted tree cannot make us hold thousands of fds
                dfd = fs.openat2(self.root, drel or ".", _DIR_READ | os.O_NOFOLLOW, _RESOLVE)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    continue  # Docker's Walk does not descend into a symlink
                raise
            try:
                with os.scandir(dfd) as it:
                    children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
                for name, is_dir in children:
                    crel = f"{drel}/{name}" if drel else name
                    if crel not in self.unpacked:
                        self._remove(dfd, name)
                    elif is_dir:
                        pending.append(crel)
            finally:
                os.close(dfd)

    # ---- entry types --------------------------------------------------------------------------

    def _reg(self, hdr: TarHeader, pfd: int, base: str) -> None:
        size = hdr.size
        if self.max_bytes is not None and self.stats.bytes + size > self.max_bytes:
            raise InvalidInput(
                f"archive expands beyond the limit of {self.max_bytes} bytes at {hdr.name!r}",
                subject=hdr.name,
            )
        perm = hdr.mode & 0o777
        try:
            fd = os.open(base, _NEW_FILE, perm, dir_fd=pfd)
        except FileExistsError:
            self._clear_for(pfd, base, is_dir=False)
            fd = os.open(base, _NEW_FILE, perm, dir_fd=pfd)
        try:
            if size:
                self.stats.bytes += self.reader.copy_to_fd(fd)
            self._fchown(fd, hdr.uid, hdr.gid)
            if hdr.xattrs:
                self._xattrs(fd, hdr)
            mode = hdr.mode
            # open(2) already gave perm & ~umask; chown cleared nothing unless setuid/setgid were asked
            if mode != perm or perm & self.umask:
                os.fchmod(fd, mode)
            os.utime(fd, ns=self._times(hdr))
        finally:
            os.close(fd)

    def _dir(self, hdr: TarHeader, pfd: int, base: str, rel: str) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            self._clear_for(pfd, base, is_dir=True)  # merges into an existing directory
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass
        fd = os.open(base, _DIR_READ | os.O_NOFOLLOW, dir_fd=pfd)
        try:
            self._fchown(fd, hdr.uid, hdr.gid)
            if hdr.xattrs:
                self._xattrs(fd, hdr)
            os.fchmod(fd, hdr.mode)
        except BaseException:
            os.close(fd)
            raise
        # its children come next: keep the fd as their parent (a stale one is closed first)
        old = self.cache.get(rel)
        if old is not None and old != self.root:
            self.graveyard.append(old)
        self.cache[rel] = fd
        atime = _parse_pax_time(hdr.pax["atime"]) if hdr.pax and "atime" in hdr.pax else 0
        self.dirs.append((rel, _clamp(atime), _clamp(hdr.mtime_ns)))

    def _symlink(self, hdr: TarHeader, pfd: int, base: str, parent: str) -> None:
        target = hdr.linkname
        # moby Untar: join(dir(path), linkname) must stay under dest (a leading "/" does not anchor)
        if self.strict_symlinks and _clean(f"{parent}/{target}", anchored=False) is None:
            raise BreakoutError(f"invalid symlink {hdr.name!r} -> {target!r}", subject=hdr.name)
        try:
            os.symlink(target, base, dir_fd=pfd)
        except FileExistsError:
            self._clear_for(pfd, base, is_dir=False)
            os.symlink(target, base, dir_fd=pfd)
        self._chown(base, hdr.uid, hdr.gid, pfd)
        if hdr.xattrs:
            self._lxattrs(pfd, base, hdr)
        os.utime(base, ns=self._times(hdr), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, hdr: TarHeader, pfd: int, base: str) -> None:
        linkname = hdr.linkname
        # moby: join(dest, linkname) must stay under dest; then link(2) inside the (chroot) root
        target = _clean(linkname, anchored=False)
        if target is None:
            raise BreakoutError(f"invalid hardlink {hdr.name!r} -> {linkname!r}", subject=hdr.name)
        if not target:
            raise InvalidInput(f"{hdr.name!r}: hard link to the root directory", subject=hdr.name)
        tparent, tbase = _split(target)
        tfd = self._dir_fd(tparent, create=False)
        try:
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            self._clear_for(pfd, base, is_dir=False)
            tfd = self._dir_fd(tparent, create=False)
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        self._chown(base, hdr.uid, hdr.gid, pfd)
        if hdr.xattrs:
            self._lxattrs(pfd, base, hdr)
        # Docker leaves mode and times alone when the linked inode is a symlink
        if not stat.S_ISLNK(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
            os.chmod(base, hdr.mode, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, ns=self._times(hdr), dir_fd=pfd, follow_symlinks=False)

    def _node(self, hdr: TarHeader, pfd: int, base: str) -> None:
        tf = hdr.typeflag
        kind = stat.S_IFCHR if tf == b"3" else stat.S_IFBLK if tf == b"4" else stat.S_IFIFO
        dev = os.makedev(hdr.devmajor, hdr.devminor) if kind != stat.S_IFIFO else 0
        try:
            os.mknod(base, kind | (hdr.mode & 0o777), dev, dir_fd=pfd)
        except FileExistsError:
            self._clear_for(pfd, base, is_dir=False)
            os.mknod(base, kind | (hdr.mode & 0o777), dev, dir_fd=pfd)
        self._chown(base, hdr.uid, hdr.gid, pfd)
        if hdr.xattrs:
            self._lxattrs(pfd, base, hdr)
        os.chmod(base, hdr.mode, dir_fd=pfd, follow_symlinks=False)
        os.utime(base, ns=self._times(hdr), dir_fd=pfd, follow_symlinks=False)

    # ---- metadata -----------------------------------------------------------------------------

    @staticmethod
    def _times(hdr: TarHeader) -> tuple[int, int]:
        """(atime, mtime) as createTarFile sets them: atime is never before mtime."""
        mtime = hdr.mtime_ns
        atime = mtime
        if hdr.pax and "atime" in hdr.pax:
            atime = max(_parse_pax_time(hdr.pax["atime"]), mtime)
        return _clamp(atime), _clamp(mtime)

    def _fchown(self, fd: int, uid: int, gid: int) -> None:
        try:
            os.fchown(fd, uid, gid)
        except PermissionError:
            if self.is_root:
                raise  # unprivileged runs (unit tests) keep their own ids, like rootless Docker

    def _chown(self, name: str, uid: int, gid: int, pfd: int) -> None:
        try:
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        except PermissionError:
            if self.is_root:
                raise

    @staticmethod
    def _xattrs(fd: int, hdr: TarHeader) -> None:
        for key, value in hdr.xattrs.items():
            try:
                os.setxattr(fd, key, value)
            except OSError as e:
                # as Docker: filesystems without xattrs, or keys we may not set, are only a warning
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    @staticmethod
    def _lxattrs(pfd: int, base: str, hdr: TarHeader) -> None:
        # lsetxattr has no *at form; /proc/self/fd/N is the parent itself, and the name is not followed
        path = f"/proc/self/fd/{pfd}/{base}"
        for key, value in hdr.xattrs.items():
            try:
                os.setxattr(path, key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def _date_dirs(self) -> None:
        """Directory times last, as Docker does: writing their children changed them."""
        for rel, atime, mtime in self.dirs:
            try:
                fd = fs.openat2(self.root, rel, _DIR_READ, _RESOLVE)
            except (FileNotFoundError, NotADirectoryError):
                continue  # replaced or whited out later in the stream
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)

    # ---- directories and removal --------------------------------------------------------------

    def _dir_fd(self, rel: str, *, create: bool) -> int:
        """An fd of directory ``rel`` resolved inside the root; missing ones are made if ``create``."""
        fd = self.cache.get(rel)
        if fd is not None:
            return fd
        try:
            fd = fs.openat2(self.root, rel, _DIR_PATH, _RESOLVE)
        except FileNotFoundError:
            if not create:
                raise
            return self._mkdir_all(rel)
        self.cache[rel] = fd
        return fd

    def _mkdir_all(self, rel: str) -> int:
        """Create the missing directories of ``rel`` (Docker's implied parents: 0755 root:root)."""
        missing: list[str] = []
        cur = rel
        while True:
            cur, base = _split(cur)
            missing.append(base)
            fd = self.cache.get(cur)
            if fd is not None:
                break
            try:
                fd = fs.openat2(self.root, cur, _DIR_PATH, _RESOLVE)
            except FileNotFoundError:
                continue
            self.cache[cur] = fd
            break
        mode = 0o600 if self.mode == "onto" else 0o755  # UnpackLayer vs Unpack
        for i, base in enumerate(reversed(missing)):
            try:
                try:
                    os.mkdir(base, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # a dangling symlink or a file: the open below fails, as Docker's MkdirAll does
                else:
                    if self.mode != "onto":
                        self._chown(base, 0, 0, fd)
                    if mode & self.umask:  # as under dockerd's umask 022, keeping an inherited setgid
                        got = os.stat(base, dir_fd=fd, follow_symlinks=False).st_mode
                        os.chmod(base, mode | (got & stat.S_ISGID), dir_fd=fd, follow_symlinks=False)
                child = os.open(base, _DIR_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            finally:
                if i:  # intermediate fds are not cached: a 2000-deep name must not exhaust the fd table
                    os.close(fd)
            fd = child
        self.cache[rel] = fd
        return fd

    def _clear_for(self, pfd: int, base: str, *, is_dir: bool) -> None:
        """An entry exists where we create one: keep a directory for a directory, else remove it."""
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        exists_dir = stat.S_ISDIR(st.st_mode)
        if self.no_overwrite and exists_dir != is_dir:
            what = "directory %r with non-directory" if exists_dir else "non-directory %r with directory"
            raise InvalidInput(f"cannot overwrite {what % base}", subject=base)
        if exists_dir and is_dir:
            return
        self._remove(pfd, base)

    def _remove(self, pfd: int, base: str) -> None:
        """``os.RemoveAll`` relative to a directory fd, never following a symlink."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        self._invalidate()
        if stat.S_ISDIR(st.st_mode):
            _remove_tree(pfd, base)
        else:
            os.unlink(base, dir_fd=pfd)

    def _invalidate(self) -> None:
        self.graveyard.extend(fd for rel, fd in self.cache.items() if rel)
        self.cache = {"": self.root}

    def _bury(self) -> None:
        for fd in self.graveyard:
            os.close(fd)
        self.graveyard = []

    def _evict(self) -> None:
        for rel in list(self.cache)[1 : _CACHE_MAX // 2]:
            os.close(self.cache.pop(rel))

    def _close_all(self) -> None:
        self._bury()
        for fd in self.cache.values():
            os.close(fd)
        self.cache = {}


_NO_LINKS = fs.RESOLVE_NO_SYMLINKS | fs.RESOLVE_BENEATH


def _remove_tree(pfd: int, base: str) -> None:
    """Remove directory ``base`` of ``pfd`` and everything in it, iteratively and never through a symlink.

    (``shutil.rmtree`` recurses in Python 3.11 and holds an fd per level: a crafted 2000-deep tree
    would exhaust the stack or the fd table.) At most two fds are open at any time.
    """
    stack = [(base, False)]
    while stack:
        rel, emptied = stack.pop()
        if emptied:
            parent, name = _split(rel)
            dfd = fs.openat2(pfd, parent, _DIR_PATH, _NO_LINKS) if parent else pfd
            try:
                os.rmdir(name, dir_fd=dfd)
            finally:
                if dfd != pfd:
                    os.close(dfd)
            continue
        stack.append((rel, True))
        fd = fs.openat2(pfd, rel, _DIR_READ, _NO_LINKS)
        try:
            with os.scandir(fd) as it:
                children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for name, is_dir in children:
                if is_dir:
                    stack.append((f"{rel}/{name}", False))
                else:
                    os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)
