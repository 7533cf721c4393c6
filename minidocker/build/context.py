"""The build context: ``.dockerignore``, COPY/ADD sources inside it, and their content hash.

::

    ctx = BuildContext("/src/app")            # reads /src/app/.dockerignore
    ctx.ignored("node_modules/x")             # True/False (last matching pattern wins, ``!`` re-includes)
    srcs = ctx.sources(["*.py", "conf/"])     # [Source(rel, path, st)...]; ../ refused
    ctx.content_hash(srcs)                    # "file:<sha256>", "dir:<sha256>" or "multi:<sha256>"

Patterns follow moby's ``fileutils.PatternMatcher``: paths are cleaned, ``*`` and ``?`` stay
within one path element, ``**`` spans any number of them, and a pattern that matches a
directory excludes everything below it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass

from minidocker.errors import InvalidInput


@dataclass(frozen=True)
class Source:
    rel: str  # path inside the context, cleaned ("." for the context itself)
    path: str  # absolute host path
    is_dir: bool


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

    def _inside(self, rel: str, original: str) -> str:
        clean = posixpath.normpath("/" + rel).lstrip("/") or "."
        full = os.path.realpath(os.path.join(self.root, clean))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise InvalidInput(f"forbidden path outside the build context: {original} ()", subject=original)
        return clean

    def sources(self, patterns: list[str]) -> list[Source]:
        """The context entries COPY/ADD ``patterns`` name (globs expanded, ignored files left out)."""
        out: list[Source] = []
        for pat in patterns:
            if posixpath.normpath(pat).startswith("../") or posixpath.normpath(pat) == "..":
                raise InvalidInput(f"forbidden path outside the build context: {pat} ()", subject=pat)
            clean = posixpath.normpath("/" + pat).lstrip("/") or "."
            if glob.has_magic(clean):
                names = sorted(
                    os.path.relpath(p, self.root) for p in glob.glob(os.path.join(self.root, clean))
                )
                names = [n for n in names if not self.ignored(n)]
                if not names:
                    raise InvalidInput(f"COPY failed: no source files were specified ({pat})", subject=pat)
            else:
                names = [clean]
            for n in names:
                rel = self._inside(n, pat)
                path = os.path.join(self.root, rel) if rel != "." else self.root
                if (rel != "." and self.ignored(rel)) or not os.path.lexists(path):
                    raise InvalidInput(
                        f"COPY failed: file not found in build context or excluded by .dockerignore: "
                        f"stat {pat}: file does not exist",
                        subject=pat,
                    )
                out.append(Source(rel, path, os.path.isdir(path) and not os.path.islink(path)))
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

    def content_hash(self, sources: list[Source]) -> str:
        """What the classic builder puts in ``#(nop) COPY <hash> in <dest>``: changes with the content."""
        h = hashlib.sha256()

        def feed(name: str, path: str) -> None:
            st = os.lstat(path)
            h.update(f"{name}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0{st.st_size}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                fh = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        fh.update(chunk)
                h.update(fh.digest())

        for src in sources:
            feed(src.rel, src.path)
            if src.is_dir:
                for name, path in self.walk(src):
                    feed(f"{src.rel}/{name}", path)
        if len(sources) > 1:
            kind = "multi"
        else:
            kind = "dir" if sources and sources[0].is_dir else "file"
        return f"{kind}:{h.hexdigest()}"
