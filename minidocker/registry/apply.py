"""Extracting pulled layers on both cores, committing them in layer order.

Every missing layer is *begun* first (``LayerStore.begin``: an empty overlay2 dir whose ``lower``
names its parent's, a ``write-set-*`` dir), base first. Then two extractors take the lowest layer
nobody has taken yet:

* the CLI's main thread, in process, streaming the blob while it downloads
  (:class:`~.download.TailReader` -> :class:`~.unpack.Inflater` -> tar extraction);
* a helper thread that feeds an :mod:`.extractworker` process, once that layer's blob is fully
  downloaded and verified (the worker reads the finished file).

Between its own extractions the main thread commits every layer whose extraction is done, base
first: a layer becomes visible only when its parent is. Why a process: extraction is Python and
holds the GIL, so two threads would take turns; a layer's ``diff`` does not depend on its parent's
content, so two layers can be extracted at once.

Use (see ``pull._fetch_layers``)::

    plan = Schedule(todo)
    worker = Helper(plan, blobs_by_index, jobs_by_index).start()   # optional
    k = plan.claim()                                                # main thread
    plan.done(k, extract_here(...))
    diff_id, size = plan.result(i)                                  # waits; raises the job's error
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from minidocker import errors, trace
from minidocker.errors import MinidockerError

Result = tuple[str, int]  # DiffID, size


class Schedule:
    """Which missing layer each extractor takes, and the outcome of each (thread-safe)."""

    def __init__(self, todo: list[int]) -> None:
        self.cond = threading.Condition()
        self.unclaimed = list(todo)  # ascending layer indexes
        self.results: dict[int, Result | BaseException] = {}
        self.stopped = False

    def claim(self) -> int | None:
        """Take the lowest unclaimed layer."""
        with self.cond:
            if self.stopped or not self.unclaimed:
                return None
            return self.unclaimed.pop(0)

    def give_back(self, i: int) -> None:
        with self.cond:
            self.unclaimed.append(i)
            self.unclaimed.sort()
            self.cond.notify_all()

    def done(self, i: int, outcome: Result | BaseException) -> None:
        with self.cond:
            self.results[i] = outcome
            self.cond.notify_all()

    def ready(self, i: int) -> bool:
        with self.cond:
            return i in self.results

    def result(self, i: int) -> Result:
        """Wait for layer ``i``'s extraction; raise its error."""
        with self.cond:
            while i not in self.results:
                self.cond.wait()
            outcome = self.results[i]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


class WorkerProcess:
    """The :mod:`.extractworker` child: started on first use, one job at a time."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minidocker.registry.extractworker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            close_fds=True,
        )
        self._reply()  # {"ready": true}

    def _reply(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.poll()
            raise MinidockerError(f"layer extraction worker exited (status {code})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, job: dict[str, str]) -> Result:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if "error" in reply:
            kind = getattr(errors, str(reply.get("type")), MinidockerError)
            if not (isinstance(kind, type) and issubclass(kind, MinidockerError)):
                kind = MinidockerError
            raise kind(str(reply["error"]))
        return str(reply["diff_id"]), int(reply["size"])

    def kill(self) -> None:
        """Kill the child now, even mid-job (before its dirs are removed); its reader sees EOF."""
        if self.proc is not None:
            self.proc.kill()

    def stop(self) -> None:
        """End the child (EOF on its stdin) and reap it."""
        p, self.proc = self.proc, None
        if p is None:
            return
        for f in (p.stdin, p.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        p.wait()


class Helper:
    """The thread that keeps one :class:`WorkerProcess` busy with the lowest unclaimed layers.

    ``wait_blob(i)`` blocks until layer ``i``'s blob is verified (False: the pull failed);
    ``job(i)`` describes its extraction. A layer taken but still waiting for its download can be
    taken back by the main thread (:meth:`steal`), which would otherwise sit idle.
    """

    def __init__(
        self, plan: Schedule, wait_blob: Callable[[int], bool], job: Callable[[int], dict[str, str]]
    ) -> None:
        self.plan = plan
        self.wait_blob = wait_blob
        self.job = job
        self.worker = WorkerProcess()
        self.lock = threading.Lock()
        self.reserved: int | None = None  # taken, not yet sent to the worker
        self.thread = threading.Thread(target=self._run, name="extract-helper", daemon=True)

    def start(self) -> Helper:
        self.thread.start()
        return self

    def steal(self) -> int | None:
        """Take back the layer the helper waits to download, if any (main thread only)."""
        with self.lock:
            i, self.reserved = self.reserved, None
            return i

    def _run(self) -> None:
        try:
            self.worker.start()
        except (OSError, MinidockerError) as e:
            trace.emit(f"pull: no extraction worker ({e}); extracting in the CLI only")
            return
        while True:
            i = self.plan.claim()
            if i is None:
                return
            with self.lock:
                self.reserved = i
            ok = self.wait_blob(i)
            with self.lock:
                if self.reserved != i:
                    continue  # the main thread took it meanwhile
                self.reserved = None
            if not ok:
                self.plan.give_back(i)
                return
            trace.emit(f"pull: extracting layer {i} in the worker process")
            try:
                outcome: Result | BaseException = self.worker.run(self.job(i))
            except BaseException as e:  # the layer's error, raised by the main thread in order
                outcome = e
            self.plan.done(i, outcome)
            if isinstance(outcome, BaseException):
                return

    def stop(self, *, kill: bool = False) -> None:
        """Stop taking layers; end the worker (``kill``: mid-job) and wait for the thread."""
        self.plan.stop()
        if kill:
            self.worker.kill()
        self.thread.join()
        self.worker.stop()


def enabled() -> bool:
    """``MINIDOCKER_PULL_WORKERS=0`` extracts in the CLI process only (for comparisons)."""
    return workers(2) > 0


def workers(layers: int) -> int:
    """How many worker processes for ``layers`` missing layers: ``MINIDOCKER_PULL_WORKERS``, or
    one per CPU beyond the CLI's own (at least one), never more than there are other layers."""
    try:
        n = int(os.environ.get("MINIDOCKER_PULL_WORKERS", ""))
    except ValueError:
        n = max(1, (os.cpu_count() or 2) - 1)
    return max(0, min(n, layers - 1))
