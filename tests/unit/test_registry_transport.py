"""Registry transport without a registry: insecure-registries, HTTPS->HTTP fallback, uploads,
token expiry by ``issued_at``, multi-scope token requests, the manifest size cap, platforms.

Fakes are ``http.server`` instances on 127.0.0.1 inside this process.
"""

from __future__ import annotations

import hashlib
import http.server
import ipaddress
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from httpfake import serving

from minidocker.errors import InvalidInput, NotFound
from minidocker.registry import auth, client, endpoints, manifest
from minidocker.registry.endpoints import Endpoint


# -- insecure-registries -------------------------------------------------------------------------
def _cfg(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, doc: Any) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv(endpoints.ENV_CONFIG, str(path))


def test_insecure_entries_from_daemon_json(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _cfg(tmp_path, monkeypatch, {"debug": True, "insecure-registries": ["10.20.0.0/16", "Reg.LAN:5000",
                                                                           "fd00::/8"]})  # fmt: skip
    cfg = endpoints.load_config()
    assert ipaddress.ip_network("127.0.0.0/8") in cfg.cidrs  # always there, as in Docker
    assert cfg.names == {"reg.lan:5000"}
    assert endpoints.endpoints("reg.lan:5000") == [Endpoint("https://reg.lan:5000", verify=False),
                                                   Endpoint("http://reg.lan:5000")]  # fmt: skip
    assert endpoints.endpoints("reg.lan:5001") == [Endpoint("https://reg.lan:5001")]  # host:port is exact
    assert [e.url for e in endpoints.endpoints("10.20.3.4:5000")] == ["https://10.20.3.4:5000",
                                                                     "http://10.20.3.4:5000"]  # fmt: skip
    assert [e.url for e in endpoints.endpoints("[fd00::5]:5000")][-1] == "http://[fd00::5]:5000"
    assert endpoints.endpoints("10.21.0.1") == [Endpoint("https://10.21.0.1")]
    assert endpoints.endpoints("docker.io") == [Endpoint("https://registry-1.docker.io")]


def test_names_are_resolved_against_the_cidrs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's ``isCIDRMatch`` looks the host up: a name resolving into 127.0.0.0/8 is insecure."""
    _cfg(tmp_path, monkeypatch, {})
    table = {"loopy.lan": "127.0.1.1", "far.lan": "192.0.2.9"}

    def fake_getaddrinfo(host: str, *_a: Any, **_k: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror("no such host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], 0))]

    monkeypatch.setattr(endpoints.socket, "getaddrinfo", fake_getaddrinfo)
    assert [e.url for e in endpoints.endpoints("loopy.lan:5000")] == ["https://loopy.lan:5000",
                                                                     "http://loopy.lan:5000"]  # fmt: skip
    assert [e.url for e in endpoints.endpoints("far.lan:5000")] == ["https://far.lan:5000"]
    assert [e.url for e in endpoints.endpoints("unknown.lan")] == ["https://unknown.lan"]
    assert endpoints.endpoints("localhost:5000") == [Endpoint("http://localhost:5000")]


@pytest.mark.parametrize(
    ("doc", "match"),
    [({"insecure-registries": ["http://reg:5000"]}, "should not contain '://'"),
     ({"insecure-registries": ["10.0.0.300/8"]}, "not a valid CIDR"),
     ({"insecure-registries": "reg:5000"}, "must be a list"),
     ({"insecure-registries": [5]}, "invalid entry"), ([], "not a JSON object")],
)  # fmt: skip
def test_bad_daemon_json_is_one_clear_error(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, doc: Any,
                                            match: str) -> None:  # fmt: skip
    _cfg(tmp_path, monkeypatch, doc)
    with pytest.raises(InvalidInput, match=match) as e:
        endpoints.endpoints("192.0.2.1:5000")
    assert str(tmp_path / "daemon.json") in str(e.value)


def test_missing_explicit_config_and_default_files(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(endpoints.ENV_CONFIG, str(tmp_path / "nope.json"))
    with pytest.raises(InvalidInput, match="no such file"):
        endpoints.load_config()
    monkeypatch.delenv(endpoints.ENV_CONFIG)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert endpoints.config_files() == [endpoints.SYSTEM_CONFIG, f"{tmp_path}/.minidocker/daemon.json"]
    (tmp_path / ".minidocker").mkdir()
    (tmp_path / ".minidocker/daemon.json").write_text('{"insecure-registries": ["home.lan"]}')
    monkeypatch.setattr(endpoints, "SYSTEM_CONFIG", str(tmp_path / "absent.json"))
    assert endpoints.load_config().names == {"home.lan"}


# -- a fake registry that records what it is sent ---------------------------------------------------
class _Rec(http.server.BaseHTTPRequestHandler):
    log: list[tuple[str, str, dict[str, str], int]] = []
    token_reply: dict[str, Any] = {}
    manifest_body = b"{}"
    bearer = False

    def log_message(self, *a: Any) -> None:
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        self.log.append((self.command, self.path, dict(self.headers), len(body)))
        port = self.server.server_address[1]
        if self.path.startswith("/token"):
            self._reply(200, json.dumps(self.token_reply).encode())
            return
        if self.bearer and not self.headers.get("Authorization", "").startswith("Bearer "):
            self._reply(
                401,
                headers={"WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{port}/token",service="rec"'},
            )
            return
        if "/denied/" in self.path:  # what distribution answers a token without the needed access
            challenge = (
                f'Bearer realm="http://127.0.0.1:{port}/token",service="rec",error="insufficient_scope"'
            )
            self._reply(401, headers={"WWW-Authenticate": challenge})
        elif self.path == "/v2/":
            self._reply(200)
        elif self.command == "POST":
            if "mount=" in self.path:
                self._reply(201)
            else:
                self._reply(202, headers={"Location": "/v2/a/b/blobs/uploads/u1?_state=s0"})
        elif self.command == "PATCH":
            n = sum(1 for e in self.log if e[0] == "PATCH")
            self._reply(202, headers={"Location": f"/v2/a/b/blobs/uploads/u1?_state=s{n}"})
        elif self.command == "PUT":
            self._reply(201)
        elif "/manifests/" in self.path:
            self._reply(200, self.manifest_body, {"Content-Type": manifest.DOCKER_MANIFEST})
        else:
            self._reply(404)

    do_GET = do_POST = do_PATCH = do_PUT = do_HEAD = _handle  # noqa: N815


@pytest.fixture
def rec() -> Iterator[str]:
    _Rec.log = []
    _Rec.bearer = False
    _Rec.token_reply = {"token": "T", "expires_in": 300}
    with serving(_Rec) as address:
        yield address


def test_https_falls_back_to_http_for_an_insecure_registry(rec: str) -> None:
    """The HTTPS try on a plain-HTTP server fails its handshake; the insecure registry's HTTP
    endpoint answers, and every later request goes there."""
    reg = client.Registry(rec, None)
    reg.endpoints = [Endpoint(f"https://{rec}", verify=False), Endpoint(f"http://{rec}")]
    reg.ping()
    assert reg.base == f"http://{rec}"
    assert [e[1] for e in _Rec.log] == ["/v2/"]  # the TLS hello never became an HTTP request


def test_secure_registry_speaking_http_is_one_clear_error(rec: str) -> None:
    reg = client.Registry(rec, None)
    reg.endpoints = [Endpoint(f"https://{rec}")]
    with pytest.raises(client.RegistryError, match="server gave HTTP response to HTTPS client"):
        reg.ping()


def test_small_blob_is_monolithic_big_blob_is_chunked(rec: str) -> None:
    reg = client.Registry(rec, None)
    assert reg.upload_blob("a/b", "sha256:" + "1" * 64, iter([b"config"])) == "pushed"
    assert [(e[0], e[1].split("?")[0]) for e in _Rec.log[1:]] == [
        ("POST", "/v2/a/b/blobs/uploads/"), ("PUT", "/v2/a/b/blobs/uploads/u1")]  # fmt: skip
    put = _Rec.log[-1]
    assert "digest=sha256%3A" + "1" * 64 in put[1] and put[3] == len(b"config")
    _Rec.log.clear()
    reg.upload_blob("a/b", "sha256:" + "2" * 64, iter([b"x" * 10, b"y" * 10, b"z" * 5]))
    assert [e[0] for e in _Rec.log] == ["POST", "PATCH", "PATCH", "PATCH", "PUT"]
    ranges = [e[2]["Content-Range"] for e in _Rec.log if e[0] == "PATCH"]
    assert ranges == ["0-9", "10-19", "20-24"]
    # each PATCH goes to the Location the previous answer gave; the PUT carries no data
    assert [e[1] for e in _Rec.log[1:]][:3] == ["/v2/a/b/blobs/uploads/u1?_state=s0",
                                                "/v2/a/b/blobs/uploads/u1?_state=s1",
                                                "/v2/a/b/blobs/uploads/u1?_state=s2"]  # fmt: skip
    assert _Rec.log[-1][3] == 0 and _Rec.log[-1][1].startswith("/v2/a/b/blobs/uploads/u1?_state=s3&digest=")


def test_mount_asks_a_token_for_both_repositories(rec: str) -> None:
    _Rec.bearer = True
    reg = client.Registry(rec, auth.Credentials("u", "p"))
    assert reg.upload_blob("a/b", "sha256:" + "3" * 64, iter(()), mount_from="c/d") == "mounted"
    token = next(e[1] for e in _Rec.log if e[1].startswith("/token"))
    assert "scope=repository%3Aa%2Fb%3Apush%2Cpull&scope=repository%3Ac%2Fd%3Apull" in token
    post = next(e[1] for e in _Rec.log if e[0] == "POST")
    assert post == "/v2/a/b/blobs/uploads/?mount=sha256%3A" + "3" * 64 + "&from=c%2Fd"


def test_token_expiry_counts_from_issued_at(rec: str) -> None:
    """``issued_at`` + ``expires_in`` is the expiry: a token issued long ago is fetched again for
    every request, a fresh one once per scope."""
    _Rec.bearer = True
    reg = client.Registry(rec, None)
    for _ in range(3):
        reg.blob_size("a/b", "sha256:" + "4" * 64)
    assert sum(1 for e in _Rec.log if e[1].startswith("/token")) == 1
    _Rec.log.clear()
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    _Rec.token_reply = {"token": "T", "expires_in": 300, "issued_at": old}
    reg = client.Registry(rec, None)
    for _ in range(3):
        reg.blob_size("a/b", "sha256:" + "4" * 64)
    assert sum(1 for e in _Rec.log if e[1].startswith("/token")) == 3


def test_manifest_over_4_mib_is_refused_while_streaming(rec: str) -> None:
    _Rec.manifest_body = b"{" + b" " * (4 << 20) + b"}"
    reg = client.Registry(rec, None)
    with pytest.raises(InvalidInput, match="rejecting manifest larger than 4194304 bytes"):
        reg.get_manifest("a/b", "big")
    _Rec.manifest_body = b"{" + b" " * ((4 << 20) - 2) + b"}"
    raw, _ = reg.get_manifest("a/b", "edge")
    assert len(raw) == manifest.MAX_MANIFEST_SIZE == 4 << 20


# -- platforms ------------------------------------------------------------------------------------
def _list(*plats: dict[str, str]) -> manifest.Index:
    doc = {"schemaVersion": 2, "mediaType": manifest.DOCKER_LIST,
           "manifests": [{"mediaType": manifest.DOCKER_MANIFEST, "size": 1,
                          "digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), "platform": p}
                         for i, p in enumerate(plats)]}  # fmt: skip
    idx = manifest.parse(json.dumps(doc).encode())
    assert isinstance(idx, manifest.Index)
    return idx


def test_variant_aware_selection() -> None:
    idx = _list({"os": "linux", "architecture": "arm", "variant": "v6"},
                {"os": "linux", "architecture": "arm", "variant": "v7"},
                {"os": "linux", "architecture": "arm64"},  # no variant: means v8
                {"os": "linux", "architecture": "amd64"})  # fmt: skip
    pick = {str(p): idx.manifests.index(manifest.select(idx, manifest.parse_platform(p)))
            for p in ("linux/arm/v6", "linux/arm", "linux/arm/7", "linux/arm64/v8", "linux/arm64", "linux/amd64")}  # fmt: skip
    assert pick == {"linux/arm/v6": 0, "linux/arm": 1, "linux/arm/7": 1, "linux/arm64/v8": 2,
                    "linux/arm64": 2, "linux/amd64": 3}  # fmt: skip
    with pytest.raises(
        NotFound, match="no matching manifest for linux/arm64/v9 in the manifest list entries"
    ):
        manifest.select(
            _list({"os": "linux", "architecture": "amd64"}), manifest.parse_platform("linux/arm64/v9")
        )
    with pytest.raises(NotFound, match="no matching manifest for windows/amd64"):
        manifest.select(idx, manifest.parse_platform("windows/amd64"))


def test_head_401_says_why_from_the_challenge(rec: str) -> None:
    _Rec.bearer = True
    reg = client.Registry(rec, None)
    with pytest.raises(
        client.Unauthorized, match="authentication required: insufficient_scope: access to the"
    ):
        reg.blob_size("denied/x", "sha256:" + "5" * 64)
    assert sum(1 for e in _Rec.log if e[1].startswith("/token")) == 2  # one retry with a fresh token
