#!/usr/bin/env python3
"""Checker for lab 03 (overlay2 by hand): reads the live overlay mount and the layer dirs on the host.

The merged view must still be mounted when this runs: the lowerdir order is only visible in the
mount table. Run it as root (``trusted.*`` xattrs are invisible to other users).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import (  # noqa: E402 - after the sys.path tweak, on purpose
    Checker,
    describe,
    fail_on_crash,
    host,
    is_whiteout,
    lab_dir,
    mount_at,
    read_text,
    xattr,
)

LAB = lab_dir("03")
MOTD_LOWER = "motd from lower1\n"


def _p(*parts: str) -> str:
    return os.path.join(LAB, *parts)


def _same_dir(entry: str, name: str) -> bool:
    """Whether a lowerdir/upperdir option names ``LAB/name``.

    The kernel echoes the option string as given; a relative entry (mount run from inside LAB) is
    accepted when it is just the dir name, since the mount table does not record the cwd.
    """
    if os.path.isabs(entry):
        return os.path.normpath(entry) == _p(name)
    return os.path.normpath(entry) == name


def main() -> int:
    c = Checker("03")
    h = host()

    # 1. The student's three dirs.
    missing = [d for d in ("upper", "work", "merged") if not h.file(_p(d)).is_directory]
    c.expect(
        "upper/, work/ and merged/ exist",
        not missing,
        f"expected directories {', '.join(_p(d) for d in ('upper', 'work', 'merged'))}; "
        f"missing or not a directory: {', '.join(missing)}",
    )

    # 2-4. The mount itself.
    m = mount_at(_p("merged"))
    mounted = m is not None and m.fstype == "overlay"
    found = "nothing is mounted there" if m is None else f"a {m.fstype} mount"
    c.expect(
        "merged/ is an overlay mount", mounted, f"expected an overlay mount on {_p('merged')}, found {found}"
    )
    if m is not None and mounted:
        lowers = [e for e in m.super_options.get("lowerdir", "").split(":") if e]
        ok = len(lowers) == 2 and _same_dir(lowers[0], "lower2") and _same_dir(lowers[1], "lower1")
        c.expect(
            "lowerdir is lower2 (top) then lower1 (bottom)",
            ok,
            f"expected lowerdir={_p('lower2')}:{_p('lower1')} (the leftmost entry is the top layer), "
            f"found lowerdir={':'.join(lowers) or '(none)'}",
        )
        upper, work = m.super_options.get("upperdir", ""), m.super_options.get("workdir", "")
        c.expect(
            "upperdir is upper/ and workdir is work/",
            _same_dir(upper, "upper") and _same_dir(work, "work"),
            f"expected upperdir={_p('upper')},workdir={_p('work')}, "
            f"found upperdir={upper or '(none: read-only mount)'},workdir={work or '(none)'}",
        )
        greeting = read_text(_p("merged", "greeting.txt"))
        c.expect(
            "merged/greeting.txt comes from lower2",
            greeting == "hello from lower2\n",
            f"expected 'hello from lower2', found {greeting.strip()!r}" if greeting else
            "expected 'hello from lower2', found no readable merged/greeting.txt",
        )  # fmt: skip
    else:
        for name in ("lowerdir is lower2 (top) then lower1 (bottom)", "upperdir is upper/ and workdir is work/",
                     "merged/greeting.txt comes from lower2"):  # fmt: skip
            c.blocked(name, "merged/ is not an overlay mount")

    # 5. Copy-up: the edited motd lives in upper, the lower copy is unchanged.
    upper_motd = read_text(_p("upper", "etc", "motd"))
    lower_motd = read_text(_p("lower1", "etc", "motd"))
    if upper_motd is None:
        detail = f"expected upper/etc/motd to be a regular file (copied up when you edited it), found {describe(_p('upper', 'etc', 'motd'))}"
    elif not (upper_motd.startswith(MOTD_LOWER) and len(upper_motd) > len(MOTD_LOWER)):
        detail = f"expected upper/etc/motd to start with {MOTD_LOWER.strip()!r} plus at least one appended line, found {upper_motd!r}"
    else:
        detail = ""
    c.expect("etc/motd was copied up to upper/ with your change", not detail, detail)
    c.expect(
        "lower1/etc/motd is untouched",
        lower_motd == MOTD_LOWER,
        f"expected {MOTD_LOWER!r} (lower layers never change), found {lower_motd!r}",
    )

    # 6. A new file exists only in upper.
    c.expect(
        "new.txt was created in upper/ only",
        h.file(_p("upper", "new.txt")).is_file
        and not h.file(_p("lower1", "new.txt")).exists
        and not h.file(_p("lower2", "new.txt")).exists,
        f"expected a regular file upper/new.txt and no new.txt in lower1/ or lower2/, found upper/new.txt is "
        f"{describe(_p('upper', 'new.txt'))}",
    )

    # 7. Whiteout for the deleted lower2/notes.txt.
    wh = _p("upper", "notes.txt")
    c.expect(
        "upper/notes.txt is a whiteout (char device 0/0)",
        is_whiteout(wh),
        f"expected a character device 0/0 after deleting merged/notes.txt, found {describe(wh)}",
    )
    c.expect(
        "lower2/notes.txt still exists",
        read_text(_p("lower2", "notes.txt")) == "notes from lower2\n",
        f"expected lower2/notes.txt unchanged (deleting through merged/ must not touch it), "
        f"found {describe(_p('lower2', 'notes.txt'))}",
    )

    # 8. Opaque directory.
    opaque = xattr(_p("upper", "data"), "trusted.overlay.opaque")
    if opaque is None and xattr(_p("upper", "data"), "user.overlay.opaque") == "y":
        note = " (found user.overlay.opaque=y: mount without the userxattr option, as root)"
    else:
        note = ""
    data_kind = describe(_p("upper", "data"))
    if data_kind != "a directory":
        found_opaque = f"upper/data is {data_kind}"
    else:
        found_opaque = "no such xattr" if opaque is None else f"trusted.overlay.opaque={opaque!r}"
    c.expect(
        "upper/data is an opaque dir (trusted.overlay.opaque=y)",
        opaque == "y",
        f"expected the directory upper/data with xattr trusted.overlay.opaque=y, found {found_opaque}{note}",
    )
    if mounted:
        merged_data = _p("merged", "data")
        listing = sorted(h.file(merged_data).listdir()) if h.file(merged_data).is_directory else None
        c.expect(
            "merged/data no longer shows lower1's a.txt and b.txt",
            listing is not None and not {"a.txt", "b.txt"} & set(listing),
            f"expected a directory merged/data without a.txt and b.txt, found {listing!r}"
            if listing is not None else f"expected a directory merged/data, found {describe(merged_data)}",
        )  # fmt: skip
    else:
        c.blocked("merged/data no longer shows lower1's a.txt and b.txt", "merged/ is not an overlay mount")

    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
