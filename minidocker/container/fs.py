"""The container's root filesystem as a host path, for ``cp``, ``export`` and copy-up.

::

    with mounted_rootfs(stores, c) as rootfs:   # overlay2/<mount-id>/merged
        ...

A running container's overlay is already mounted on the host (the lifecycle mounts it before the
process starts and unmounts it at stop); a stopped one is mounted here and unmounted on the way
out, and only then: we never unmount what somebody else mounted.

Known race: a container started while a ``cp`` holds the mount of a stopped container finds the
overlay mounted and uses it; our unmount (a lazy detach) then only removes the host's view, the
container's own mount namespace keeps its root.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from minidocker import kernel
from minidocker.errors import NotFound

if TYPE_CHECKING:
    from minidocker.container.state import Container
    from minidocker.image.store import Stores


@contextlib.contextmanager
def mounted_rootfs(stores: Stores, c: Container) -> Iterator[str]:
    """Yield the merged root of ``c`` (``overlay2/<mount-id>/merged``), mounting it if needed."""
    try:
        m = stores.layers.get_mount(c.id)
    except FileNotFoundError:
        raise NotFound(f"container {c.id} has no read-write layer", subject=c.id) from None
    merged = os.path.join(stores.driver.dir(m.mount_id), "merged")
    already = kernel.is_mountpoint(merged)
    path = stores.driver.get(m.mount_id)
    try:
        yield path
    finally:
        if not already:
            stores.driver.put(m.mount_id)
