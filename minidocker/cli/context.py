"""What every command gets: the data root, exec root and debug flag, and lazily built stores."""

from __future__ import annotations

import functools
import os

from minidocker.record import Record, record

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:  # the stores import nothing heavy, but keep `--help` instant anyway
    from minidocker.container.lifecycle import Runtime
    from minidocker.image.store import Stores

DEFAULT_DATA_ROOT = "/var/lib/minidocker"
DEFAULT_EXEC_ROOT = "/run/minidocker"


@record
class Context(Record):
    """The global options, and the stores built from them on first use."""

    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    debug: bool = False

    @functools.cached_property
    def stores(self) -> Stores:
        from minidocker.image.store import Stores

        return Stores.open(os.path.abspath(self.data_root))

    @functools.cached_property
    def runtime(self) -> Runtime:
        from minidocker.container.lifecycle import Runtime

        return Runtime(self.stores, os.path.abspath(self.exec_root))
