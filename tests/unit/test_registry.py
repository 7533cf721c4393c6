"""Registry client pieces without a registry: challenges, tokens, manifests, platforms, metadata.

The Bearer flow is exercised against a tiny in-process fake (http.server on 127.0.0.1).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpfake import serving

from minidocker.errors import InvalidInput, NotFound
from minidocker.registry import auth, client, distribution, manifest, push
from minidocker.registry.manifest import Platform

H = "sha256:" + "a" * 64
H2 = "sha256:" + "b" * 64


# -- WWW-Authenticate ---------------------------------------------------------------------------
def test_parse_bearer_challenge() -> None:
    scheme, params = auth.parse_challenge(
        'Bearer realm="http://127.0.0.1:5001/token",service="spec-registry",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "http://127.0.0.1:5001/token", "service": "spec-registry",
                      "scope": "repository:a/b:pull,push"}  # fmt: skip


def test_parse_basic_and_odd_challenges() -> None:
    assert auth.parse_challenge('Basic realm="mdtest"') == ("basic", {"realm": "mdtest"})
    assert auth.parse_challenge("Bearer realm=https://x/t, service=svc") == (
        "bearer", {"realm": "https://x/t", "service": "svc"})  # fmt: skip
    assert auth.parse_challenge('Bearer realm="a\\"b"')[1] == {"realm": 'a"b'}


def test_token_cache_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    cache = auth.TokenCache()
    assert cache.put("s", {"access_token": "t1", "expires_in": 10}) == "t1"  # at least 60 s
    now[0] += 50
    assert cache.get("s") == "t1"
    now[0] += 10
    assert cache.get("s") is None
    with pytest.raises(InvalidInput):
        cache.put("s", {})


def test_config_json_roundtrip(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = auth.store_credentials("127.0.0.1:5000", auth.Credentials("u", "p:w"))
    assert path == f"{tmp_path}/.minidocker/config.json"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert json.loads(Path(path).read_text())["auths"] == {
        "127.0.0.1:5000": {"auth": base64.b64encode(b"u:p:w").decode()}
    }
    assert auth.load_credentials("127.0.0.1:5000") == auth.Credentials("u", "p:w")
    auth.store_credentials("docker.io", auth.Credentials("hub", "x"))
    assert "https://index.docker.io/v1/" in json.loads(Path(path).read_text())["auths"]
    assert auth.remove_credentials("127.0.0.1:5000") is True
    assert auth.remove_credentials("127.0.0.1:5000") is False
    assert auth.load_credentials("127.0.0.1:5000") is None


def test_hmac_matches_dockerd() -> None:
    """The real push entry from docker-layout.md section 4 (anonymous push)."""
    key = auth.auth_config_key(None)
    assert key == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    got = distribution.compute_hmac(
        key,
        "sha256:fdda1477eae36a8e397e77f09c454a360c71868f8961b459bfee3d9c354dddf7",
        "127.0.0.1:5000/library/busybox",
    )
    assert got == "fd16b29dc300fb595227b44d0d8f60629afcf743594317d7311c9face727f828"


# -- endpoints ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("domain", "url"),
    [("127.0.0.1:5000", "http://127.0.0.1:5000"), ("localhost:5000", "http://localhost:5000"),
     ("127.9.9.9", "http://127.9.9.9"), ("[::1]:5000", "https://[::1]:5000"),
     ("registry.example:5000", "https://registry.example:5000"), ("docker.io", "https://registry-1.docker.io"),
     ("10.0.0.1:5000", "https://10.0.0.1:5000")],
)  # fmt: skip
def test_endpoint_scheme(domain: str, url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only literal 127.0.0.0/8 and ``localhost`` are plain HTTP; ``::1`` is not in Docker's default
    insecure range (127.0.0.0/8), so it is HTTPS like any other registry."""
    (tmp_path / "daemon.json").write_text("{}")
    monkeypatch.setenv("MINIDOCKER_DAEMON_CONFIG", str(tmp_path / "daemon.json"))
    assert client.endpoint(domain) == url


# -- manifests --------------------------------------------------------------------------------------
def _m(**extra: Any) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": manifest.DOCKER_MANIFEST,
           "config": {"mediaType": manifest.DOCKER_CONFIG, "size": 3, "digest": H},
           "layers": [{"mediaType": manifest.DOCKER_LAYER, "size": 5, "digest": H2}]}  # fmt: skip
    doc.update(extra)
    return json.dumps(doc).encode()


def test_parse_schema2() -> None:
    m = manifest.parse(_m())
    assert isinstance(m, manifest.Manifest)
    assert m.config.digest == H and [(d.digest, d.size) for d in m.layers] == [(H2, 5)]


def test_schema1_refused() -> None:
    with pytest.raises(InvalidInput, match="schema 1"):
        manifest.parse(b'{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}')
    with pytest.raises(InvalidInput, match="schema 1"):
        manifest.parse(_m(), "application/vnd.docker.distribution.manifest.v1+prettyjws")


@pytest.mark.parametrize(
    "raw",
    [_m(manifests=[]), _m(mediaType=manifest.DOCKER_LIST), b"[]", b"{not json",
     _m(layers=[{"digest": "sha256:../../etc", "size": 1}]), _m(config={"digest": H}),
     _m(mediaType="application/vnd.docker.ai.model.config.v0.1+json")],
)  # fmt: skip
def test_malformed_manifests_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        manifest.parse(raw)


def test_oversized_manifest_refused() -> None:
    with pytest.raises(InvalidInput, match="rejecting"):
        manifest.parse(b" " * (manifest.MAX_MANIFEST_SIZE + 1))


def _index(*entries: tuple[str, dict[str, str]]) -> manifest.Index:
    doc = {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX,
           "manifests": [{"mediaType": mt, "size": 1, "digest": "sha256:" + str(i) * 64, "platform": p}
                         for i, (mt, p) in enumerate(entries)]}  # fmt: skip
    idx = manifest.parse(json.dumps(doc).encode())
    assert isinstance(idx, manifest.Index)
    return idx


def test_platform_selection_first_match_in_order() -> None:
    idx = _index(
        (manifest.OCI_MANIFEST, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ("application/vnd.in-toto+json", {"os": "linux", "architecture": "amd64"}),  # unknown: skipped
        (manifest.OCI_MANIFEST, {"os": "linux", "architecture": "amd64"}),
        (manifest.OCI_MANIFEST, {"os": "linux", "architecture": "amd64"}),
        (manifest.OCI_MANIFEST, {"os": "linux", "architecture": "arm", "variant": "v6"}),
    )
    assert manifest.select(idx, Platform("linux", "amd64")).digest == "sha256:" + "2" * 64
    assert manifest.select(idx, manifest.parse_platform("linux/arm64")).digest == "sha256:" + "0" * 64
    # arm/v7 has no exact match: the arm fallback ignores the variant
    assert manifest.select(idx, manifest.parse_platform("linux/arm/v7")).digest == "sha256:" + "4" * 64
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        manifest.select(idx, manifest.parse_platform("linux/s390x"))


def test_host_platform_and_parse() -> None:
    host = manifest.host_platform()
    assert host.os == "linux"
    assert str(manifest.parse_platform("linux/aarch64")) == "linux/arm64/v8"
    assert manifest.parse_platform("linux") == host  # containerd: an OS alone takes the host's arch
    assert str(manifest.parse_platform("s390x")) == "linux/s390x"
    for bad in ("", "linux/", "a/b/c/d", "nope", "linux/amd 64"):
        with pytest.raises(InvalidInput, match="unknown operating system or architecture"):
            manifest.parse_platform(bad)


def test_push_manifest_is_dockers_indented_schema2() -> None:
    body = push.build_manifest(b"{}", [(H2, 5)])
    assert body.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType": "application/vnd.docker.distribution')
    assert b'\n   "layers": [\n      {\n         "mediaType"' in body
    assert manifest.parse(body) == manifest.Manifest(
        manifest.DOCKER_MANIFEST,
        manifest.Descriptor(manifest.DOCKER_CONFIG, "sha256:" + hashlib.sha256(b"{}").hexdigest(), 2),
        [manifest.Descriptor(manifest.DOCKER_LAYER, H2, 5)],
    )


# -- distribution metadata ---------------------------------------------------------------------------
def test_distribution_store_like_dockerd(tmp_path: Any) -> None:
    store = distribution.DistributionStore(str(tmp_path))
    diff = "sha256:" + "d" * 64
    store.add(diff, H, "127.0.0.1:5001/spec/two", "7a96")
    store.add(diff, H, "127.0.0.1:5001/spec/two")
    store.add(diff, H, "127.0.0.1:5001/spec/two", "7a96")  # identical entry moves to the end
    raw = (tmp_path / "distribution/v2metadata-by-diffid/sha256" / ("d" * 64)).read_bytes()
    assert raw == (
        b'[{"Digest":"%s","SourceRepository":"127.0.0.1:5001/spec/two","HMAC":""},'
        b'{"Digest":"%s","SourceRepository":"127.0.0.1:5001/spec/two","HMAC":"7a96"}]'
        % (H.encode(), H.encode())
    )
    assert (tmp_path / "distribution/diffid-by-digest/sha256" / ("a" * 64)).read_bytes() == diff.encode()
    assert store.diff_id(H) == diff and store.diff_id(H2) is None
    assert os.stat(tmp_path / "distribution").st_mode & 0o777 == 0o700
    for i in range(60):
        store.add(diff, H, f"r/{i}")
    assert len(store.metadata(diff)) == distribution.MAX_ENTRIES


# -- the Bearer flow against a fake registry -----------------------------------------------------------
class _Fake(http.server.BaseHTTPRequestHandler):
    log: list[str] = []
    blob = b"hello blob"

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        port = self.server.server_address[1]
        self.log.append(f"GET {self.path} {self.headers.get('Authorization', '')}")
        if self.path.startswith("/token"):
            ok = self.headers.get("Authorization") == auth.Credentials("u", "pw").basic()
            self._reply(200 if ok else 401, json.dumps({"token": "T1", "expires_in": 300}).encode())
            return
        if self.headers.get("Authorization") != "Bearer T1":
            self.send_response(401)
            self.send_header("WWW-Authenticate",
                             f'Bearer realm="http://127.0.0.1:{port}/token",service="fake"')  # fmt: skip
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/v2/a/b/blobs/"):
            self._reply(200, self.blob)
        else:
            self._reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake() -> Iterator[str]:
    _Fake.log = []
    with serving(_Fake) as address:
        yield address


def test_bearer_token_flow_and_cache(fake: str) -> None:
    reg = client.Registry(fake, auth.Credentials("u", "pw"))
    good = manifest.Descriptor("", "sha256:" + hashlib.sha256(_Fake.blob).hexdigest(), len(_Fake.blob))
    buf = io.BytesIO()
    reg.fetch_blob("a/b", good, buf)
    reg.fetch_blob("a/b", good, io.BytesIO())
    assert buf.getvalue() == _Fake.blob
    tokens = [line for line in _Fake.log if line.startswith("GET /token")]
    assert len(tokens) == 1 and "scope=repository%3Aa%2Fb%3Apull" in tokens[0] and "account=u" in tokens[0]
    with pytest.raises(client.DigestMismatch, match="verification failed"):
        reg.fetch_blob("a/b", manifest.Descriptor("", H, len(_Fake.blob)), io.BytesIO())
    with pytest.raises(client.DigestMismatch, match="larger"):
        reg.fetch_blob("a/b", manifest.Descriptor("", good.digest, 3), io.BytesIO())
    with pytest.raises(NotFound, match="manifest unknown"):
        reg.get_manifest("a/b", "latest")


def test_bearer_wrong_password(fake: str) -> None:
    reg = client.Registry(fake, auth.Credentials("u", "nope"))
    with pytest.raises(client.Unauthorized, match="incorrect username or password"):
        reg.get_manifest("a/b", "latest")


def test_registry_down() -> None:
    with pytest.raises(client.RegistryError, match="connection refused"):
        client.Registry("127.0.0.1:1").ping()
