"""The host's mount table as the real-kernel unit tests compare it (no root needed to read it)."""

from __future__ import annotations

import os


def host_mounts(own_basetemp: str) -> list[str]:
    """``id parent dev root mountpoint`` of every mount in this namespace, less the scratch mounts
    of the other pytest workers: with ``-n 2`` another worker's module fixture may mount or unmount
    its overlay in its own basetemp (a sibling of ours) while we compare before and after."""
    own = os.path.realpath(own_basetemp)
    run = os.path.dirname(own) + os.sep
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mountpoint = fields[4]
            if mountpoint.startswith(run) and not (mountpoint + os.sep).startswith(own + os.sep):
                continue  # another worker's
            out.append(" ".join(fields[:5]))
    return out
