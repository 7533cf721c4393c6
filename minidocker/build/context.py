"""The build context: ``.dockerignore``, COPY/ADD sources inside it, and their content hash.

::

    ctx = BuildContext("/src/app")            # reads /src/app/.dockerignore
    ctx.ignored("node_modules/x")             # True/False (last matching pattern wins, ``!`` re-includes)
    srcs = ctx.sources(["*.py", "conf/"])     # [Source(rel, path, st)...]; ../ refused
    ctx.content_hash(srcs)                    # Docker's "file:<sum>", "dir:<sha256>" or "multi:<sha256>"

Patterns follow moby's ``fileutils.PatternMatcher``: paths are cleaned, ``*`` and ``?`` stay
within one path element, ``**`` spans any number of them, and a pattern that matches a
directory excludes everything below it.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import grp
import hashlib
import os
import posixpath
import pwd
import re
import stat
from dataclasses import dataclass

from minidocker.errors import InvalidInput


@dataclass(frozen=True)
class Source:
    rel: str  # path inside the context, cleaned, symlinks followed ("." for the context itself)
    path: str  # absolute host path (of what a symlink source points to)
    is_dir: bool
    name: str = ""  # the base name the source was given by (a symlink's own); default: rel's

    @property
    def base(self) -> str:
        return self.name or posixpath.basename(self.rel)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i : i + 2] == "**":
                i += 2
                if pattern[i : i + 1] == "/":
                    out.append("(.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


class BuildContext:
    def __init__(self, root: str, dockerfile_rel: str | None = None) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise InvalidInput(f"unable to prepare context: path {root!r} not found", subject=root)
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        try:
            with open(os.path.join(self.root, ".dockerignore"), encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            p = line.strip()
            if not p or p.startswith("#"):
                continue
            exclude = not p.startswith("!")
            p = p.lstrip("!").strip()
            p = posixpath.normpath(p).lstrip("/")
            if p in ("", "."):
                continue
            self.rules.append((exclude, _pattern_regex(p)))

    def ignored(self, rel: str) -> bool:
        """moby ``PatternMatcher.Matches``: a path (or one of its parents) matched by the last rule."""
        rel = posixpath.normpath(rel)
        parents = []
        cur = rel
        while cur not in ("", ".", "/"):
            parents.append(cur)
            cur = posixpath.dirname(cur)
        matched = False
        for exclude, rx in self.rules:
            if any(rx.match(p) for p in parents):
                matched = exclude
        return matched

    def sources(self, patterns: list[str]) -> list[Source]:
        """The context entries COPY/ADD ``patterns`` name (globs expanded, ignored files left out)."""
        out: list[Source] = []
        for pat in patterns:
            if posixpath.normpath(pat).startswith("../") or posixpath.normpath(pat) == "..":
                raise InvalidInput(f"forbidden path outside the build context: {pat} ()", subject=pat)
            clean = posixpath.normpath("/" + pat).lstrip("/") or "."
            if glob.has_magic(clean):
                # in the order moby's walk meets them (lexical per directory, depth first)
                names = sorted(
                    (os.path.relpath(p, self.root) for p in glob.glob(os.path.join(self.root, clean))),
                    key=lambda n: n.split("/"),
                )
                names = [n for n in names if not self.ignored(n)]
                if not names:
                    raise InvalidInput(f"COPY failed: no source files were specified ({pat})", subject=pat)
            else:
                names = [clean]
            for n in names:
                rel = posixpath.normpath("/" + n).lstrip("/") or "."
                # a symlink source is what it points to, resolved as if the context were / (moby
                # FollowSymlinkInScope): it cannot lead out of the context
                resolved = None if rel != "." and self.ignored(rel) else resolve_in_scope(self.root, rel)
                target = os.path.relpath(resolved, self.root) if resolved else ""
                if resolved is None or (target != "." and self.ignored(target)):
                    raise InvalidInput(
                        f"COPY failed: file not found in build context or excluded by .dockerignore: "
                        f"stat {pat}: file does not exist",
                        subject=pat,
                    )
                base = posixpath.basename(rel) if rel != "." else ""
                out.append(Source(target, resolved, os.path.isdir(resolved), name=base))
        return out

    def walk(self, src: Source) -> list[tuple[str, str]]:
        """(relative name below the source, host path) of everything under a directory source,
        in lexical order, ignored entries left out."""
        out: list[tuple[str, str]] = []

        def rec(dir_path: str, rel_here: str) -> None:
            for name in sorted(os.listdir(dir_path)):
                sub = f"{rel_here}/{name}" if rel_here else name
                ctx_rel = sub if src.rel == "." else f"{src.rel}/{sub}"
                if self.ignored(ctx_rel):
                    continue
                p = os.path.join(dir_path, name)
                out.append((sub, p))
                if stat.S_ISDIR(os.lstat(p).st_mode):
                    rec(p, sub)

        rec(src.path, "")
        return out

    def upload_size(self, dockerfile: str | None = None) -> int:
        """The size of the tar the docker CLI sends as the context (its ``Sending build context to
        Docker daemon  7.168kB`` line): a 512-byte header per entry that .dockerignore keeps (the
        Dockerfile and .dockerignore always go), file data in 512-byte blocks, the two end
        blocks; a Dockerfile outside the context is added to it. Long names cost a PAX header."""
        total = 1024
        keep = {".dockerignore"}
        if dockerfile and os.path.realpath(dockerfile).startswith(self.root + os.sep):
            keep.add(os.path.relpath(os.path.realpath(dockerfile), self.root))
        elif dockerfile and os.path.isfile(dockerfile):
            total += 512 + -(-os.path.getsize(dockerfile) // 512) * 512

        def add(rel: str, st: os.stat_result) -> None:
            nonlocal total
            name = rel + ("/" if stat.S_ISDIR(st.st_mode) else "")
            total += 512 if len(name.encode()) <= 100 else 2048  # PAX header + its records
            if stat.S_ISREG(st.st_mode):
                total += -(-st.st_size // 512) * 512

        def rec(dir_path: str, rel_here: str) -> None:
            for name in sorted(os.listdir(dir_path)):
                rel = f"{rel_here}/{name}" if rel_here else name
                p = os.path.join(dir_path, name)
                st = os.lstat(p)
                if self.ignored(rel) and rel not in keep:
                    # an excluded dir may still hold re-included (!pattern) entries: look inside
                    if stat.S_ISDIR(st.st_mode) and any(not exclude for exclude, _ in self.rules):
                        rec(p, rel)
                    continue
                add(rel, st)
                if stat.S_ISDIR(st.st_mode):
                    rec(p, rel)

        with contextlib.suppress(OSError):
            rec(self.root, "")
        return total

    def _path_sum(self, rel: str, owners: bool) -> str:
        """moby ``Source.Hash(rel)``: the sum of the entry ``rel`` resolves to inside the root
        (symlinks followed in scope); the path itself when that is missing or excluded."""
        resolved = resolve_in_scope(self.root, rel)
        if resolved is None:
            return rel
        target_rel = os.path.relpath(resolved, self.root) if resolved != self.root else "."
        if target_rel != "." and self.ignored(target_rel):
            return rel  # not in the context tar dockerd hashes
        return entry_sum(target_rel, resolved, owners)

    def content_hash(self, sources: list[Source], *, owners: bool = False) -> str:
        """What the classic builder puts in ``#(nop) COPY <hash> in <dest>``, the step's cache key:
        Docker 20.10's exact value (moby ``builder/dockerfile/copy.go`` over tarsum v1 sums).

        * one file: ``file:<entry sum>``; a directory: ``dir:`` + sha256 of the sorted sums of
          everything under it (the directory itself too, unless it is the context root) joined
          by ``,``; several sources (or a glob matching several): ``multi:`` + sha256 of their
          hashes, in order, joined by ``,``.
        * an entry's sum (:func:`entry_sum`) covers its name, mode (type and permission bits), size, link
          target and content, and not its mtime; a symlink counts as what it points to (resolved
          inside the context, as moby's ``Hash`` follows it), a dangling one as its path; owners count only for ``owners=True`` (COPY
          --from an image): the docker CLI sends the context as root-owned files, so a chown in
          the context does not miss the cache, while a chmod or a changed byte does.
        """
        hashes: list[str] = []
        for src in sources:
            if src.is_dir:
                sums = [] if src.rel == "." else [self._path_sum(src.rel, owners)]
                for name, _ in self.walk(src):
                    sums.append(self._path_sum(name if src.rel == "." else f"{src.rel}/{name}", owners))
                hashes.append("dir:" + hashlib.sha256(",".join(sorted(sums)).encode()).hexdigest())
            elif not src.path.startswith(self.root + os.sep):  # a heredoc's file, made elsewhere
                hashes.append("file:" + entry_sum(src.rel, src.path, owners))
            else:
                hashes.append("file:" + self._path_sum(src.rel, owners))
        if len(hashes) == 1:
            return hashes[0]
        return "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()


def resolve_in_scope(root: str, rel: str) -> str | None:
    """moby ``symlink.FollowSymlinkInScope``: ``rel`` with every symlink followed as if ``root``
    were ``/`` (absolute targets and ``..`` never leave it); None if something does not exist.

    >>> resolve_in_scope("/nonexistent-root", "a") is None
    True
    """
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        path = os.path.join(root, *done, part)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 255:
                return None
            target = os.readlink(path)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return os.path.join(root, *done) if done else root


_TYPEFLAGS = {stat.S_IFREG: "0", stat.S_IFLNK: "2", stat.S_IFCHR: "3", stat.S_IFBLK: "4", stat.S_IFDIR: "5",
              stat.S_IFIFO: "6"}  # fmt: skip


@functools.cache
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.cache
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def entry_sum(name: str, path: str, owners: bool = False) -> str:
    """tarsum v1 of one entry (moby ``pkg/tarsum``): sha256 over the selected tar header fields
    (``name``, ``mode``, ``uid``, ``gid``, ``size``, ``typeflag``, ``linkname``, ``uname``,
    ``gname``, ``devmajor``, ``devminor``, each as key+value, no mtime), then the content.
    ``name`` is the path in the context; directories get a ``/``. ``owners=False`` (the context):
    uid, gid 0 and empty names, as the docker CLI's tar arrives at tarsum; ``owners=True``
    (``COPY --from``, read from an image's files by dockerd itself): the real uid/gid and the
    names *the host's* passwd/group give them, as dockerd's ``archive.FileInfoHeader`` looks up.

    ``entry_sum("a.txt", path)`` of a 0644 file holding ``changed\\n`` is ``b15020ac5619…``, the hash
    docker 20.10 shows in ``COPY file:b15020ac5619… in .`` for it (tests/unit/test_build_cache.py).
    """
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    is_dir = kind == stat.S_IFDIR
    size = st.st_size if kind == stat.S_IFREG else 0
    link = os.readlink(path) if kind == stat.S_IFLNK else ""
    dev = kind in (stat.S_IFCHR, stat.S_IFBLK)
    fields = [
        ("name", name.rstrip("/") + "/" if is_dir else name),
        # the 20.10 CLI's tar headers carry the file type bits too (moby fillGo18FileTypeBits);
        # newer clients send permission bits only, so their hashes differ: 20.10 is the reference
        ("mode", str(st.st_mode)),
        ("uid", str(st.st_uid if owners else 0)),
        ("gid", str(st.st_gid if owners else 0)),
        ("size", str(size)),
        ("typeflag", _TYPEFLAGS.get(kind, "0")),
        ("linkname", link),
        ("uname", _user_name(st.st_uid) if owners else ""),
        ("gname", _group_name(st.st_gid) if owners else ""),
        ("devmajor", str(os.major(st.st_rdev) if dev else 0)),
        ("devminor", str(os.minor(st.st_rdev) if dev else 0)),
    ]
    h = hashlib.sha256()
    for key, value in fields:
        h.update((key + value).encode("utf-8", "surrogateescape"))
    if size:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
