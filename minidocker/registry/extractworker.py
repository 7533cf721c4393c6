"""A helper process for ``pull``: extracts downloaded layers on the other core.

Extraction is Python (tar parsing, tar-split, one syscall after another) and holds the GIL, so
threads cannot run two of them at once; this process can. A layer's overlay2 ``diff`` does not
depend on its parent's content, so while the CLI extracts one layer the worker extracts another;
the CLI still commits them (``LayerStore.commit``) base first.

Protocol: one JSON object per line on stdin, one reply per line on stdout::

    -> {"blob": "/root/tmp/GetImageBlob123", "diff": "/root/overlay2/<id>/diff",
        "tarsplit": "/root/image/overlay2/layerdb/tmp/write-set-x/tar-split.json.gz"}
    <- {"diff_id": "sha256:...", "size": 12345}        or   {"error": "...", "type": "InvalidInput"}

``{"ready": true}`` is written once at start, after the imports. EOF on stdin ends the process.

Use (what ``pull`` does)::

    p = subprocess.Popen([sys.executable, "-m", "minidocker.registry.extractworker"], stdin=PIPE, stdout=PIPE)
"""

from __future__ import annotations

import json
import sys
from typing import Any


def extract(job: dict[str, Any]) -> dict[str, Any]:
    """Inflate ``job["blob"]`` (a verified blob file) into ``job["diff"]``; DiffID and size."""
    from minidocker.image.layerstore import extract_into
    from minidocker.registry.unpack import Inflater
    from minidocker.storage.overlay2 import directory_size

    with open(job["blob"], "rb") as f:
        tar = Inflater(f)
        try:
            # Go's gzip reader hands over EOF with the last data; plain files report it alone.
            diff_id = extract_into(
                tar,  # type: ignore[arg-type]  # a RawIOBase reads bytes
                job["diff"],
                job["tarsplit"],
                eof_empty_segment=tar.kind != "gzip",
                stream_digest=tar.diff_id,
            )
        finally:
            tar.close()
    return {"diff_id": diff_id, "size": directory_size(job["diff"]), "kind": tar.kind}


def main() -> int:
    # the imports of a job, now: the parent counts the worker as ready only after this
    import minidocker.image.layerstore  # noqa: F401
    import minidocker.registry.unpack  # noqa: F401
    from minidocker.errors import MinidockerError

    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        try:
            reply = extract(json.loads(line))
        except MinidockerError as e:
            reply = {"error": str(e), "type": type(e).__name__}
        except Exception as e:  # noqa: BLE001  (reported to the parent, which fails the pull)
            reply = {"error": f"{type(e).__name__}: {e}", "type": "MinidockerError"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
