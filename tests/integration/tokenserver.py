"""A small Docker token server for the tests (the realm of a registry in ``auth: token`` mode).

Standard library only, plus the ``openssl`` CLI to sign, so it runs with the target host's
``python3`` (the tests start it there, like the registry)::

    python3 tokenserver.py --dir D --key key.pem --cert cert.pem --issuer I --service S \\
        --user mdtest:s3cret --public public/

It listens on a free 127.0.0.1 port and writes it to ``D/port``. ``GET /token?scope=...&service=...``
answers ``{"token", "access_token", "expires_in", "issued_at"}``. The token is an RS256 JWT whose
header carries the certificate in ``x5c`` (distribution 2.x verifies the chain against its
``rootcertbundle`` and then the signature with the leaf's key), and whose claims are ``iss``,
``sub``, ``aud`` (the service), ``exp``/``nbf``/``iat``, ``jti`` and ``access``: a list of
``{"type", "name", "actions"}``, what the registry checks each request against.

Policy: valid Basic credentials get every action asked for; no credentials get ``pull`` on
repositories under ``--public`` and nothing else (an empty ``access`` list, which the registry
answers with 401 ``insufficient_scope``); wrong credentials get 401. Every request is appended to
``D/requests.log`` as one JSON line (``scope`` list, ``account``, ``user``, ``code``, ``query``) so a
test can count them. If ``D/issued-ago`` exists, ``issued_at`` is that many seconds in the past:
a client that honours ``issued_at + expires_in`` then finds the token already expired.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from loopbackhttp import serve_on_free_port

LIFETIME = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Config:
    def __init__(self, args: argparse.Namespace) -> None:
        self.dir = args.dir
        self.key = args.key
        with open(args.cert, encoding="ascii") as f:
            self.x5c = [base64.b64encode(ssl.PEM_cert_to_DER_cert(f.read())).decode()]
        self.issuer = args.issuer
        self.service = args.service
        self.user, _, self.password = args.user.partition(":")
        self.public = args.public
        self.lock = threading.Lock()

    def sign(self, claims: dict[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing_input.encode(), capture_output=True, check=True,
        ).stdout  # fmt: skip
        return f"{signing_input}.{b64url(sig)}"

    def issued_ago(self) -> int:
        try:
            with open(os.path.join(self.dir, "issued-ago"), encoding="ascii") as f:
                return int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def record(self, entry: dict[str, object]) -> None:
        with self.lock, open(os.path.join(self.dir, "requests.log"), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``repository:ns/name:push,pull`` -> ("repository", "ns/name", ["push", "pull"])."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


class Handler(BaseHTTPRequestHandler):
    cfg: Config

    def log_message(self, *a: object) -> None:  # quiet: the request log says it all
        pass

    def _reply(self, code: int, doc: dict[str, object]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        cfg = self.cfg
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        user = None
        authz = self.headers.get("Authorization", "")
        entry: dict[str, object] = {"scope": scopes, "account": query.get("account", [""])[0],
                                    "query": url.query, "time": time.time()}  # fmt: skip
        if url.path != "/token":
            entry["code"] = 404
            cfg.record(entry)
            self._reply(404, {"details": "not found"})
            return
        if authz.startswith("Basic "):
            try:
                u, _, p = base64.b64decode(authz[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                u, p = "", ""
            if (u, p) != (cfg.user, cfg.password):
                entry["code"] = 401
                cfg.record(entry)
                self._reply(401, {"details": "incorrect username or password"})
                return
            user = u
        access = []
        for s in scopes:
            parsed = parse_scope(s)
            if parsed is None:
                continue
            kind, name, actions = parsed
            granted = actions if user else [a for a in actions if a == "pull" and name.startswith(cfg.public)]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": cfg.issuer, "sub": user or "", "aud": query.get("service", [cfg.service])[0],
                  "exp": now + LIFETIME, "nbf": now - 1, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}  # fmt: skip
        token = cfg.sign(claims)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - cfg.issued_ago()))
        entry.update(code=200, user=user or "", access=access)
        cfg.record(entry)
        self._reply(200, {"token": token, "access_token": token, "expires_in": LIFETIME, "issued_at": issued})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--user", required=True, help="user:password")
    ap.add_argument("--public", default="public/", help="repository prefix anonymous users may pull")
    args = ap.parse_args()
    Handler.cfg = Config(args)
    serve_on_free_port(Handler, args.dir)


if __name__ == "__main__":
    main()
