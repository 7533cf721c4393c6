"""Which writes of ``create`` are fsync'd: exactly those Docker makes durable (issue 3, "Speed").

dockerd writes ``config.v2.json`` and ``hostconfig.json`` with ``AtomicWriteFile`` (fsync, then
rename) and the layer store's ``mounts/<id>/{mount-id,init-id,parent}``, the overlay2 ``link`` and
``lower`` files with plain ``os.WriteFile``. Each fsync costs 0.3 ms on an idle disk and several
ms under write load, on ``run``'s critical path, so minidocker syncs the same set and no more (all
of them are still renamed into place). The CLI runs here in a child interpreter whose ``os.fsync``
records the name of every file it syncs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any

import pytest

from tests.integration import helpers

pytestmark = pytest.mark.root

SPY = """
import json, os, sys
synced = []
real_fsync = os.fsync
def spy(fd):
    synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
    real_fsync(fd)
os.fsync = spy
from minidocker.cli import main
try:
    main.cli.main(args=sys.argv[1:], prog_name="minidocker", standalone_mode=False)
finally:
    print("SYNCED " + json.dumps(synced))
"""


def _synced(md: Any, host: Any, *args: str) -> list[str]:
    python = os.path.join(os.path.dirname(md.binary), "python")
    words = [python, "-c", SPY, "--data-root", md.data_root, "--exec-root", md.exec_root, *args]
    out = helpers.check(host, " ".join(shlex.quote(w) for w in words))
    line = next(x for x in out.splitlines() if x.startswith("SYNCED "))
    # atomic writes sync their temp file: ".tmp-config.v2.json123456789" -> "config.v2.json"
    return [re.sub(r"^\.tmp-(.*?)\d+$", r"\1", name) for name in json.loads(line[len("SYNCED ") :])]


def test_create_syncs_the_container_record_and_nothing_else(md: Any, host: Any) -> None:
    md.ok("buildbase")
    synced = _synced(md, host, "create", "--network", "none", "--name", "durable", "busybox", "true")
    assert synced == ["config.v2.json", "hostconfig.json"]
    # the unsynced files are there all the same, with Docker's content
    cid = md.ok("inspect", "-f", "{{.Id}}", "durable").strip()
    mounts = f"{md.data_root}/image/overlay2/layerdb/mounts/{cid}"
    mount_id = host.file(f"{mounts}/mount-id").content_string
    assert re.fullmatch(r"[0-9a-f]{64}", mount_id)
    assert host.file(f"{mounts}/init-id").content_string == f"{mount_id}-init"
    assert host.file(f"{mounts}/parent").content_string.startswith("sha256:")
    md.ok("rm", "durable")
