"""A registry that serves canned manifests, for what a real one never serves (standard library only).

A real distribution registry refuses to store or read a manifest over 4 MiB, so a client's own
limit can only be seen against a broken or hostile server: this one. Run on the target host::

    python3 staticregistry.py --dir D

It listens on a free 127.0.0.1 port (written to ``D/port``), answers ``GET /v2/`` with 200, and
``GET|HEAD /v2/<name>/manifests/<ref>`` with the bytes of ``D/manifests/<ref>`` and the
``Content-Type`` in ``D/manifests/<ref>.type`` (404 ``MANIFEST_UNKNOWN`` when absent). Nothing else
exists.
"""

from __future__ import annotations

import argparse
import os
from http.server import BaseHTTPRequestHandler

from loopbackhttp import serve_on_free_port


class Handler(BaseHTTPRequestHandler):
    root = "."

    def log_message(self, *a: object) -> None:
        pass

    def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path == "/v2/":
            self._reply(200, b"{}")
            return
        _, sep, ref = path.rpartition("/manifests/")
        name = os.path.join(self.root, ref)
        if sep and ref and "/" not in ref and os.path.isfile(name + ".type"):
            with open(name, "rb") as f:
                body = f.read()
            with open(name + ".type", encoding="ascii") as f:
                ctype = f.read().strip()
            self._reply(200, body, ctype)
            return
        self._reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')

    do_HEAD = do_GET  # noqa: N815


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    Handler.root = os.path.join(args.dir, "manifests")
    serve_on_free_port(Handler, args.dir)


if __name__ == "__main__":
    main()
