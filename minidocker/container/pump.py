"""The monitor's lean half: copying a running container's output into its json log.

A detached container's monitor spends its whole life here, so this module imports as little as
it can (os, select, the json-file writer). Once the container runs, the monitor forked from the CLI
``execve``\\ s a fresh interpreter into :func:`main` (same pid: the container stays its child, the
subreaper bit, the ``monitor.lock`` flock and the output pipes are kept across ``execve``) and drops
the CLI's ~190 modules (click, the image stores, the namespaces chapter...): PSS ~14 MiB → ~6 MiB,
less than Docker's containerd-shim-runc-v2 (~12 MiB). When the container exits it imports what the
rest needs (state update, restart, teardown) and goes on in :func:`minidocker.container.monitor.resume`::

    python -s -S -c 'import sys; sys.path[:0] = [<root>]; from minidocker.container.pump import main; main()' \\
        '{"data_root": ..., "cid": ..., "pid": 4242, "outputs": {"5": "stdout", "7": "stderr"}, ...}'
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sys

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import NoReturn

    from minidocker.container.jsonlog import JsonLogWriter


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


def pump(
    outputs: dict[int, str],
    log: JsonLogWriter,
    *,
    passthrough: bool,
    stdin_src: int | None = None,
    stdin_dst: int | None = None,
) -> None:
    """Copy the container's output (fd -> "stdout"/"stderr") into the log (and our stdout/stderr
    when ``passthrough``) until every writer is gone; ``stdin_src`` is copied to ``stdin_dst``."""
    poller = select.poll()
    streams = dict(outputs)
    for fd in streams:
        poller.register(fd, select.POLLIN)
    if stdin_src is not None:
        poller.register(stdin_src, select.POLLIN)
    targets = {"stdout": 1, "stderr": 2}
    while streams:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for fd, _ in events:
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno != errno.EIO:  # EIO: every slave of the pty is closed = EOF
                    raise
                data = b""
            if fd == stdin_src:
                if not data:
                    poller.unregister(fd)
                    stdin_src = None
                    continue
                with contextlib.suppress(OSError):
                    write_all(stdin_dst if stdin_dst is not None else -1, data)
                continue
            if not data:
                poller.unregister(fd)
                del streams[fd]
                log.flush_stream(outputs[fd])
                continue
            stream = streams[fd]
            log.write(stream, data)
            if passthrough:
                try:
                    write_all(targets[stream], data)
                except OSError:
                    passthrough = False  # the caller went away: keep logging


def main() -> NoReturn:
    """The re-exec'd monitor (see the module docstring): pump, then the monitor's usual ending."""
    import json

    code = 125
    try:
        a = json.loads(sys.argv[1])
        from minidocker.container.jsonlog import JsonLogWriter

        outputs = {int(fd): stream for fd, stream in a["outputs"].items()}
        log = JsonLogWriter(a["log_path"])
        try:
            pump(outputs, log, passthrough=False)
        finally:
            log.close()
        # the container's output is closed (it exited, or is about to): now the heavy imports.
        # -S left out site-packages (pyroute2 for the network's release) and the editable finder.
        import site

        site.main()
        from minidocker.container import monitor
        from minidocker.container.lifecycle import Runtime
        from minidocker.image.store import Stores

        rt = Runtime(Stores.open(a["data_root"]), a["exec_root"])
        code = monitor.resume(
            rt,
            a["cid"],
            a["pid"],
            [*outputs, *a["keep"]],
            a["lock_fd"],
            first=a["first"],
            foreground=a["foreground"],
        )
    except BaseException:  # noqa: BLE001 (like monitor.run: never die with a traceback on nobody's stderr)
        if os.environ.get("MINIDOCKER_DEBUG"):
            import traceback

            traceback.print_exc()
    finally:
        os._exit(code)
