"""Who we are to a registry: ``WWW-Authenticate`` challenges, Bearer tokens, stored credentials.

The flow (docker-layout.md section 9.1): ``GET /v2/`` answers 200 (anonymous) or 401 with a
challenge. ``Basic`` means: send the user and password on every request. ``Bearer realm=...,
service=...`` means: ask ``realm`` for a token for a *scope* (``repository:<name>:pull`` or
``:push,pull``), with the credentials as Basic auth if there are any, then send the token.
Tokens are cached per scope until they expire.

Credentials live in ``$HOME/.minidocker/config.json`` in Docker's ``auths`` format (mode 0600)::

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 user:password>"}}}

>>> parse_challenge('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"')
('bearer', {'realm': 'https://a/token', 'service': 'reg', 'scope': 'repository:x:pull'})
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from minidocker import fsutil
from minidocker.errors import InvalidInput

HUB_AUTH_KEY = "https://index.docker.io/v1/"  # where Docker files Docker Hub credentials
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split one ``WWW-Authenticate`` value into (lower-case scheme, parameters)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        quoted, bare = m.group(2), m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        pos = m.end()
    return scheme.lower(), params


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def auth_config_key(creds: Credentials | None) -> str:
    """The HMAC key of v2metadata (docker-layout.md section 4): ``sha256:`` + sha256 of the JSON of
    the credential fields that are set (anonymous: ``{}``)."""
    import hashlib

    subset = {} if creds is None else {"username": creds.username, "password": creds.password}
    data = json.dumps({k: v for k, v in subset.items() if v}, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class TokenCache:
    """Bearer tokens by scope until they expire: ``issued_at`` (RFC 3339, default: now) plus
    ``expires_in`` (at least 60 s), which is how Docker's token handler dates them.

    >>> c = TokenCache()
    >>> c.put("repository:a:pull", {"token": "t", "expires_in": 300}), c.get("repository:a:pull")
    ('t', 't')
    >>> c.put("s", {"token": "u", "issued_at": "2001-01-01T00:00:00Z"}) and c.get("s") is None
    True
    """

    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def get(self, scope: str) -> str | None:
        hit = self.tokens.get(scope)
        if hit is None or hit[1] <= time.monotonic():
            return None
        return hit[0]

    def put(self, scope: str, reply: dict[str, Any]) -> str:
        token = reply.get("token") or reply.get("access_token")
        if not isinstance(token, str) or not token:
            raise InvalidInput("authorization server did not include a token in the response")
        expires = reply.get("expires_in")
        lifetime = max(int(expires), 60) if isinstance(expires, int) and expires > 0 else 60
        age = 0.0
        issued = reply.get("issued_at")
        if isinstance(issued, str) and issued:
            try:
                age = time.time() - datetime.datetime.fromisoformat(issued).timestamp()
            except ValueError:
                age = 0.0  # Docker would refuse the reply; a bad date just means "now" here
        self.tokens[scope] = (token, time.monotonic() + lifetime - age)
        return token


# -- config.json ------------------------------------------------------------------------------------
def config_path() -> str:
    return os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".minidocker", "config.json")


def server_key(domain: str) -> str:
    return HUB_AUTH_KEY if domain in ("docker.io", "index.docker.io", "registry-1.docker.io") else domain


def _load() -> dict[str, Any]:
    try:
        with open(config_path(), encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise InvalidInput(f"{config_path()}: invalid JSON: {e}") from None
    return doc if isinstance(doc, dict) else {}


def _save(doc: dict[str, Any]) -> None:
    path = config_path()
    fsutil.makedirs(os.path.dirname(path), 0o700)
    fsutil.atomic_write(path, json.dumps(doc, indent="\t").encode() + b"\n", 0o600)


def load_credentials(domain: str) -> Credentials | None:
    entry = (_load().get("auths") or {}).get(server_key(domain))
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{config_path()}: invalid auth for {domain}") from None
    return Credentials(user, password)


def store_credentials(domain: str, creds: Credentials) -> str:
    """Save (mode 0600) and return the file's path."""
    doc = _load()
    auths = doc.setdefault("auths", {})
    auths[server_key(domain)] = {
        "auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    }
    _save(doc)
    return config_path()


def remove_credentials(domain: str) -> bool:
    doc = _load()
    auths = doc.get("auths") or {}
    if server_key(domain) not in auths:
        return False
    del auths[server_key(domain)]
    with contextlib.suppress(KeyError):
        doc["auths"] = auths
    _save(doc)
    return True
