"""Docker's overlay2 graph driver, laid out on disk exactly as dockerd 20.10 lays it out.

::

    overlay2/                 0710
      l/                      0700   <26-char LINKID> -> ../<id>/diff   (short names keep mount options small)
      <id>/                   0710
        diff/                 0755   this layer's files (the overlay upperdir when mounted read-write)
        link                  0644   LINKID, no newline
        lower                 0644   "l/<parent LINKID>:l/<grandparent LINKID>:..." nearest parent first
        work/                 0700   overlay workdir (only layers with a parent)
        merged/               0700   mount point, exists only while mounted
        committed             0600   empty; written into a layer when its first child is created

Use::

    d = Overlay2Driver("/var/lib/minidocker/overlay2")
    d.create("abc...", parent="def...")      # directories, link, lower
    merged = d.get("abc...")                 # mount(2) overlay, returns the merged dir
    d.put("abc...")                          # umount, rmdir merged
    d.remove("abc...")

See shared/docker-layout.md section 6 and moby daemon/graphdriver/overlay2/overlay.go.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator

from minidocker import fsutil, kernel, trace
from minidocker.errors import CorruptStore, NotFound

MAX_DEPTH = 128  # overlay2 refuses more lower layers than this
_INDEX_PARAM = "/sys/module/overlay/parameters/index"


class Overlay2Driver:
    def __init__(self, home: str) -> None:
        self.home = home
        self.link_dir = os.path.join(home, "l")
        self._volatile = False  # see volatile_mounts()

    @contextlib.contextmanager
    def volatile_mounts(self, enabled: bool = True) -> Iterator[None]:
        """Mounts made meanwhile (:meth:`get`) are ``volatile``: their unmount skips overlayfs's
        ``syncfs`` of the whole upper filesystem -- every dirty page of the data root's disk, not
        only this layer's (1-5 ms on an idle host, 40 ms and more while others write). Only for
        layers nothing needs after a crash: the init layer of a ``--rm`` container, which is
        deleted when the container exits (and by ``reconcile`` after a crash), and whose mount
        lives only while ``create`` fills it. Docker syncs on every unmount; a kernel without
        ``volatile`` (< 5.10) mounts normally.
        """
        saved = self._volatile
        self._volatile = enabled
        try:
            yield
        finally:
            self._volatile = saved

    def setup(self) -> None:
        """Create ``overlay2/`` (0710) and ``overlay2/l`` (0700) if missing."""
        fsutil.makedirs(self.home, 0o710)
        fsutil.makedirs(self.link_dir, 0o700)

    # -- paths ---------------------------------------------------------------------------------
    def dir(self, layer_id: str) -> str:
        return os.path.join(self.home, layer_id)

    def diff_path(self, layer_id: str) -> str:
        return os.path.join(self.home, layer_id, "diff")

    def exists(self, layer_id: str) -> bool:
        return os.path.isdir(self.dir(layer_id))

    def link(self, layer_id: str) -> str:
        try:
            return fsutil.read_text(os.path.join(self.dir(layer_id), "link"))
        except FileNotFoundError:
            raise NotFound(f"overlay2 layer {layer_id} has no link file", subject=layer_id) from None

    def lower(self, layer_id: str) -> list[str]:
        """The ``lower`` entries (``l/LINKID``), nearest parent first; empty for a base layer."""
        try:
            text = fsutil.read_text(os.path.join(self.dir(layer_id), "lower"))
        except FileNotFoundError:
            return []
        return text.split(":") if text else []

    # -- create / remove -----------------------------------------------------------------------
    def create(self, layer_id: str, parent: str | None = None) -> None:
        """Create an empty layer on top of ``parent`` (another layer id of this driver)."""
        d = self.dir(layer_id)
        trace.emit(lambda: f"overlay2 create {layer_id} parent={parent}")
        os.mkdir(d, 0o710)
        os.chmod(d, 0o710)
        diff = os.path.join(d, "diff")
        os.mkdir(diff, 0o755)
        os.chmod(diff, 0o755)
        lid = fsutil.link_id()
        os.symlink(os.path.join("..", layer_id, "diff"), os.path.join(self.link_dir, lid))
        # link, committed, lower: not fsync'd, as moby's driver writes them (plain os.WriteFile in
        # overlay2.Driver.create); a layer only becomes visible through its fsync'd layerdb entry
        # (or, for a container's layers, layerdb/mounts), written after these
        fsutil.write_new(os.path.join(d, "link"), lid.encode(), 0o644, sync=False)
        if parent is None:
            return
        work = os.path.join(d, "work")
        os.mkdir(work, 0o700)
        os.chmod(work, 0o700)
        committed = os.path.join(self.dir(parent), "committed")
        if not os.path.exists(committed):
            fsutil.write_new(committed, b"", 0o600, sync=False)
        lowers = [f"l/{self.link(parent)}", *self.lower(parent)]
        if len(lowers) > MAX_DEPTH:
            raise CorruptStore(f"max depth exceeded: {len(lowers)} layers", subject=layer_id)
        fsutil.write_new(os.path.join(d, "lower"), ":".join(lowers).encode(), 0o644, sync=False)

    def remove(self, layer_id: str) -> None:
        """Remove the layer's directory and its ``l/`` link (Docker: link first, then the dir)."""
        d = self.dir(layer_id)
        trace.emit(lambda: f"overlay2 remove {layer_id}")
        with contextlib.suppress(FileNotFoundError, NotFound):
            os.unlink(os.path.join(self.link_dir, self.link(layer_id)))
        merged = os.path.join(d, "merged")
        if kernel.is_mountpoint(merged):
            kernel.umount(merged, kernel.MNT_DETACH)
        remove_tree(d)

    # -- mount ---------------------------------------------------------------------------------
    def mount_options(self, layer_id: str, *, relative: bool = False) -> str:
        """The option string Docker passes to mount(2) for this layer (see module docstring)."""
        d = self.dir(layer_id)
        lowers = self.lower(layer_id)
        base = "" if relative else self.home + "/"
        lower_paths = [base + entry for entry in lowers]
        prefix = "index=off," if os.path.exists(_INDEX_PARAM) else ""
        if os.path.exists(os.path.join(d, "committed")):
            # A layer that has children is mounted read-only: its diff becomes the top lowerdir.
            top = f"{layer_id}/diff" if relative else os.path.join(d, "diff")
            return prefix + "lowerdir=" + ":".join([top, *lower_paths])
        upper = f"{layer_id}/diff" if relative else os.path.join(d, "diff")
        work = f"{layer_id}/work" if relative else os.path.join(d, "work")
        return f"{prefix}lowerdir={':'.join(lower_paths)},upperdir={upper},workdir={work}"

    def get(self, layer_id: str, *, volatile: bool | None = None) -> str:
        """Mount the layer and return its root: ``merged/`` (or ``diff/`` for a base layer).
        ``volatile``: see :meth:`volatile_mounts` (None: as that says)."""
        d = self.dir(layer_id)
        if not os.path.isdir(d):
            raise NotFound(f"overlay2 layer {layer_id} does not exist", subject=layer_id)
        if not os.path.exists(os.path.join(d, "lower")):
            return os.path.join(d, "diff")  # nothing to merge: Docker hands out diff/ itself
        merged = os.path.join(d, "merged")
        with contextlib.suppress(FileExistsError):
            os.mkdir(merged, 0o700)
        if kernel.is_mountpoint(merged):
            return merged
        if volatile is None:
            volatile = self._volatile
        if volatile:
            try:
                self._mount(layer_id, merged, volatile=True)
                return merged
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: a kernel without the option
                    raise
        self._mount(layer_id, merged, volatile=False)
        return merged

    def _mount(self, layer_id: str, merged: str, *, volatile: bool) -> None:
        # "volatile" right after index=off: the option string otherwise stays Docker's
        extra = "volatile," if volatile else ""
        opts = self.mount_options(layer_id)
        if len(opts) + len(extra) <= os.sysconf("SC_PAGESIZE") - 1:
            kernel.mount("overlay", merged, "overlay", 0, _with_option(opts, extra))
        else:
            # Too long for one page: use paths relative to overlay2/ and mount from there
            # (Docker forks a child that chdirs; we are single-threaded, so chdir and come back).
            opts = self.mount_options(layer_id, relative=True)
            cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.chdir(self.home)
                kernel.mount("overlay", merged, "overlay", 0, _with_option(opts, extra))
            finally:
                os.fchdir(cwd)
                os.close(cwd)

    def put(self, layer_id: str) -> None:
        """Unmount the layer (lazy detach, as Docker) and remove ``merged/``."""
        merged = os.path.join(self.dir(layer_id), "merged")
        if kernel.is_mountpoint(merged):
            kernel.umount(merged, kernel.MNT_DETACH)
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(merged)
        # a volatile mount leaves work/work/incompat/volatile/, which makes the next mount fail
        # (overlayfs's guard against reusing unsynced layers); ours are deleted or were complete
        incompat = os.path.join(self.dir(layer_id), "work", "work", "incompat")
        if os.path.lexists(incompat):
            remove_tree(incompat)

    def size(self, layer_id: str) -> int:
        return directory_size(self.diff_path(layer_id))


def _with_option(opts: str, extra: str) -> str:
    """``extra`` ("volatile," or "") after a leading ``index=off,``."""
    if not extra:
        return opts
    if opts.startswith("index=off,"):
        return "index=off," + extra + opts[len("index=off,") :]
    return extra + opts


def directory_size(path: str) -> int:
    """Docker's ``directory.Size``: lstat walk, skip dirs and zero sizes, count each inode once.

    A symlink counts the length of its target, a whiteout device 0.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        top = stack.pop()
        with os.scandir(top) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                    continue
                if st.st_size == 0:
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total


def remove_tree(path: str) -> None:
    """``rm -rf``, best effort: never through a symlink (each directory opened ``O_NOFOLLOW``
    relative to its parent's fd, as ``shutil.rmtree`` does), and a permission error is retried
    once after ``chmod 0700`` of the parent. Not shutil itself: its import (bz2, lzma, fnmatch)
    cost ~2-3 ms of every ``run``, whose teardown ends here."""
    path = os.path.normpath(os.path.abspath(path))
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    parent = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _remove_at(parent, os.path.basename(path))
    finally:
        os.close(parent)


def _remove_at(dfd: int, name: str) -> None:
    """Remove ``name`` in directory ``dfd``, with everything under it."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return
    except OSError:  # a symlink or file that replaced the directory meanwhile: unlink that
        _retry(os.unlink, name, dfd)
        return
    try:
        with os.scandir(fd) as it:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in children:
            if is_dir:
                _remove_at(fd, child)
            else:
                _retry(os.unlink, child, fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    _retry(os.rmdir, name, dfd)


def _retry(func: Callable[..., None], name: str, dfd: int) -> None:
    try:
        func(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    except OSError:
        with contextlib.suppress(OSError):
            os.chmod(dfd, 0o700)
            func(name, dir_fd=dfd)
