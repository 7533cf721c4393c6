"""Chapter 5: token auth and transport security against a real ``docker-registry``.

Token auth: the registry runs in its own ``auth: token`` mode (realm, service, issuer,
rootcertbundle) in front of ``tokenserver.py``, which signs RS256 JWTs with a throwaway key whose
self-signed certificate is the registry's root bundle and rides in the token's ``x5c`` header.
Anonymous users may pull ``public/*``; ``mdtest``/``s3cret`` may do anything. The token server logs
every request, so the tests count tokens (cache, expiry, scopes).

Transport: a registry listening on an address outside 127.0.0.0/8 (on a bridge the test makes)
is HTTPS-only until ``insecure-registries`` in a ``daemon.json`` lists it (by ``host:port`` or by
CIDR); then HTTPS is tried without certificate checks and plain HTTP after it, as Docker does.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shlex
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.test_registry import fresh_md, nothing_left, one_error_line

pytestmark = pytest.mark.registry

HERE = os.path.dirname(os.path.abspath(__file__))
USER, PASSWORD = "mdtest", "s3cret"
SERVICE, ISSUER = "mdtest-registry", "mdtest-token-issuer"


class ConfiguredRegistry(helpers.RegistryServer):
    """``helpers.RegistryServer`` with a chosen listen address, optional TLS and extra config
    (an ``auth:`` section) appended to the same base configuration."""

    def __init__(self, host: Any, root: str, extra: str = "", bind: str = "127.0.0.1",
                 tls: tuple[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(host, root)
        self.extra = extra
        self.bind = bind
        self.tls = tls

    @property
    def address(self) -> str:
        return f"{self.bind}:{self.port}"

    @property
    def log(self) -> str:
        return helpers.check(self.host, f"cat {shlex.quote(self.root)}/registry.log")

    def start(self, timeout: float = 30.0) -> ConfiguredRegistry:
        host, root = self.host, shlex.quote(self.root)
        self.port = int(helpers.check(host, "python3 -c " + shlex.quote(
            f"import socket;s=socket.socket();s.bind(({self.bind!r},0));print(s.getsockname()[1])")).strip())  # fmt: skip
        extra = self.extra
        if self.tls:  # continues the `http:` block the base configuration ends with
            extra = f"  tls:\n    certificate: {self.tls[0]}\n    key: {self.tls[1]}\n" + extra
        config = helpers._REGISTRY_CONFIG.format(root=self.root, port=self.port, auth=extra)
        config = config.replace("addr: 127.0.0.1:", f"addr: {self.bind}:")
        helpers.check(host, f"printf %s {shlex.quote(config)} > {root}/config.yml")
        self.pid = int(helpers.check(host, f"setsid nohup docker-registry serve {root}/config.yml "
                                           f">>{root}/registry.log 2>&1 </dev/null & echo $!").strip())  # fmt: skip
        scheme = "https" if self.tls else "http"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = host.run(f"curl -sk -o /dev/null -w %{{http_code}} {scheme}://{self.address}/v2/")
            if r.stdout.strip() in ("200", "401"):
                return self
            time.sleep(0.1)
        raise helpers.CommandFailed(f"docker-registry did not answer on {self.address}\n{self.log}")


def _background(host: Any, argv: list[str], workdir: str, timeout: float = 15.0) -> tuple[int, int]:
    """Start one of our stdlib servers on the host; (pid, port) once it wrote ``workdir/port``."""
    pid = int(helpers.check(host, f"setsid nohup {helpers.q(*argv)} >>{shlex.quote(workdir)}/server.log 2>&1 "
                                  "</dev/null & echo $!").strip())  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = host.file(f"{workdir}/port")
        if f.exists:
            return pid, int(f.content_string)
        time.sleep(0.1)
    _kill(host, pid)
    raise helpers.CommandFailed(
        f"{argv[1]} did not start: " + helpers.check(host, f"cat {workdir}/server.log")
    )


def _kill(host: Any, pid: int) -> None:
    host.run(f"kill {pid} 2>/dev/null; for i in $(seq 50); do kill -0 {pid} 2>/dev/null || break; "
             f"sleep 0.1; done; kill -9 {pid} 2>/dev/null; true")  # fmt: skip


def _self_signed(host: Any, d: str, cn: str, san: str | None = None) -> tuple[str, str]:
    ext = ["-addext", f"subjectAltName={san}"] if san else []
    helpers.check(host, helpers.q("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                                  "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-subj", f"/CN={cn}", *ext)
                  + " 2>/dev/null")  # fmt: skip
    return f"{d}/cert.pem", f"{d}/key.pem"


class TokenRegistry:
    def __init__(self, host: Any, root: str) -> None:
        self.host, self.root = host, root
        self.ts = f"{root}/tokenserver"
        self.ts_pid: int | None = None
        self.registry: ConfiguredRegistry | None = None

    def start(self) -> TokenRegistry:
        helpers.check(self.host, f"mkdir -p {self.ts} {self.root}/registry")
        cert, key = _self_signed(self.host, self.ts, "mdtest-token-signer")
        self.ts_pid, port = _background(self.host, [
            "python3", f"{HERE}/tokenserver.py", "--dir", self.ts, "--key", key, "--cert", cert,
            "--issuer", ISSUER, "--service", SERVICE, "--user", f"{USER}:{PASSWORD}", "--public", "public/"],
            self.ts)  # fmt: skip
        self.realm = f"http://127.0.0.1:{port}/token"
        auth = (f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
                f"    rootcertbundle: {cert}\n")  # fmt: skip
        self.registry = ConfiguredRegistry(self.host, f"{self.root}/registry", auth).start()
        return self

    @property
    def address(self) -> str:
        assert self.registry is not None
        return self.registry.address

    def requests(self) -> list[dict[str, Any]]:
        f = self.host.file(f"{self.ts}/requests.log")
        return [json.loads(line) for line in f.content_string.splitlines()] if f.exists else []

    def stop(self) -> None:
        if self.registry is not None:
            self.registry.stop()
        if self.ts_pid is not None:
            _kill(self.host, self.ts_pid)


@pytest.fixture(scope="module")
def token_registry(host: Any) -> Iterator[TokenRegistry]:
    if host.run("command -v docker-registry >/dev/null && command -v openssl >/dev/null").rc != 0:
        pytest.skip("docker-registry or openssl is not installed on the target host (scripts/provision.sh)")
    server = TokenRegistry(host, helpers.make_temp_dir(host, "registry-token"))
    try:
        yield server.start()
    finally:
        server.stop()
        helpers.remove_tree(host, server.root)


def _login(md: Any, host: Any, address: str, password: str = PASSWORD, rc: int = 0) -> Any:
    pw = f"{md.env['HOME']}/pw"
    helpers.check(host, f"printf %s {shlex.quote(password)} > {pw}")
    result = md("login", "-u", USER, "--password-stdin", address, stdin=pw)
    assert result.rc == rc, helpers.describe(result)
    return result


def _pushed(md: Any, name: str) -> str:
    md.ok("tag", "busybox", name)
    return md.ok("push", name).splitlines()[-1].split()[2]


# -- token auth ------------------------------------------------------------------------------------
def test_token_login_push_pull_and_logout(host, md, token_registry, scratch):  # type: ignore[no-untyped-def]
    home = scratch("home")
    md.env["HOME"] = home
    image_id = md.ok("buildbase").split()[1]
    addr = token_registry.address
    name = f"{addr}/private/tok:1"
    md.ok("tag", "busybox", name)
    one_error_line(md.fail("push", name, rc=125), name, "unauthorized")

    bad = _login(md, host, addr, "wrong", rc=125)
    one_error_line(bad, "incorrect username or password")
    assert not host.file(f"{home}/.minidocker/config.json").exists
    before = len(token_registry.requests())
    assert _login(md, host, addr).stdout.strip() == "Login Succeeded"
    cfg = host.file(f"{home}/.minidocker/config.json")
    assert cfg.mode == 0o600
    assert json.loads(cfg.content_string) == {
        "auths": {addr: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}
    }
    login_req = token_registry.requests()[before:]
    assert [(r["user"], r["scope"]) for r in login_req] == [(USER, [])]  # one token, no scope
    assert "client_id=docker" in login_req[0]["query"] and "offline_token=true" in login_req[0]["query"]

    before = len(token_registry.requests())
    md.ok("push", name)
    pushed = token_registry.requests()[before:]
    assert {(r["user"], tuple(r["scope"])) for r in pushed} == {(USER, ("repository:private/tok:push,pull",))}
    assert pushed[0]["access"] == [{"type": "repository", "name": "private/tok", "actions": ["push", "pull"]}]

    before = len(token_registry.requests())
    other = fresh_md(host, scratch, "tok-pull", home=home)
    other.ok("pull", name)
    assert other.ok("images", "-q", "--no-trunc").split() == [image_id]
    pulled = token_registry.requests()[before:]
    # manifest, config and layer GETs all ride on one cached token
    assert [(r["user"], r["scope"]) for r in pulled] == [(USER, ["repository:private/tok:pull"])]
    assert len([x for x in token_registry.registry.log.splitlines() if '"GET /v2/private/tok/' in x]) >= 3

    # a stored but wrong password: one line naming the reference, nothing left behind
    helpers.check(host, f"printf %s {shlex.quote(json.dumps({'auths': {addr: {'auth': base64.b64encode(b'mdtest:nope').decode()}}}))} "
                        f"> {home}/.minidocker/config.json")  # fmt: skip
    third = fresh_md(host, scratch, "tok-wrong", home=home)
    one_error_line(third.fail("pull", name, rc=125), name, "incorrect username or password")
    nothing_left(host, third.data_root)
    assert md.ok("logout", addr).strip() == f"Removing login credentials for {addr}"
    assert json.loads(cfg.content_string)["auths"] == {}


def test_token_anonymous_pull_of_a_public_repository(host, md, token_registry, scratch):  # type: ignore[no-untyped-def]
    md.env["HOME"] = scratch("home")
    image_id = md.ok("buildbase").split()[1]
    addr = token_registry.address
    _login(md, host, addr)
    _pushed(md, f"{addr}/public/anon:1")
    _pushed(md, f"{addr}/private/anon:1")

    before = len(token_registry.requests())
    anon = fresh_md(host, scratch, "tok-anon")  # its HOME has no config.json
    lines = anon.ok("pull", f"{addr}/public/anon:1").splitlines()
    assert lines[-2] == f"Status: Downloaded newer image for {addr}/public/anon:1"
    assert anon.ok("images", "-q", "--no-trunc").split() == [image_id]
    reqs = token_registry.requests()[before:]
    assert [(r["user"], r["account"], r["scope"]) for r in reqs] == [
        ("", "", ["repository:public/anon:pull"])
    ]
    assert reqs[0]["access"] == [{"type": "repository", "name": "public/anon", "actions": ["pull"]}]

    other = fresh_md(host, scratch, "tok-anon2")
    one_error_line(
        other.fail("pull", f"{addr}/private/anon:1", rc=125), f"{addr}/private/anon:1", "unauthorized"
    )
    nothing_left(host, other.data_root)
    other.ok("buildbase")
    other.ok("tag", "busybox", f"{addr}/public/anon:2")
    one_error_line(
        other.fail("push", f"{addr}/public/anon:2", rc=125), f"{addr}/public/anon:2", "unauthorized"
    )


def test_token_cached_until_it_expires(host, md, token_registry, scratch):  # type: ignore[no-untyped-def]
    home = scratch("home")
    md.env["HOME"] = home
    md.ok("buildbase")
    addr = token_registry.address
    _login(md, host, addr)
    name = f"{addr}/private/expiry:1"
    _pushed(md, name)

    def pull_tokens(what: str) -> int:
        before = len(token_registry.requests())
        fresh_md(host, scratch, what, home=home).ok("pull", name)
        return sum(
            1 for r in token_registry.requests()[before:] if r["scope"] == ["repository:private/expiry:pull"]
        )

    assert pull_tokens("tok-cached") == 1
    # tokens now come back "issued an hour ago": issued_at + expires_in is already past, so the
    # client must ask again before each of its (at least three) requests
    helpers.check(host, f"echo 3600 > {token_registry.ts}/issued-ago")
    try:
        assert pull_tokens("tok-expired") >= 3
    finally:
        helpers.check(host, f"rm -f {token_registry.ts}/issued-ago")


def test_token_cross_repository_mount(host, md, token_registry, scratch):  # type: ignore[no-untyped-def]
    md.env["HOME"] = scratch("home")
    md.ok("buildbase")
    addr = token_registry.address
    _login(md, host, addr)
    _pushed(md, f"{addr}/private/mnt-a:1")
    before = len(token_registry.requests())
    md.ok("tag", "busybox", f"{addr}/private/mnt-b:1")
    out = md.ok("push", f"{addr}/private/mnt-b:1").splitlines()
    assert any(line.endswith(": Mounted from private/mnt-a") for line in out), out
    scopes = [r["scope"] for r in token_registry.requests()[before:]]
    assert ["repository:private/mnt-b:push,pull", "repository:private/mnt-a:pull"] in scopes
    log = token_registry.registry.log
    mounts = [x for x in log.splitlines() if '"POST /v2/private/mnt-b/blobs/uploads/?mount=sha256' in x]
    assert len(mounts) == 1 and "from=private%2Fmnt-a" in mounts[0] and '" 201 ' in mounts[0], mounts
    assert '"PATCH /v2/private/mnt-b/' not in log


# -- insecure-registries -----------------------------------------------------------------------------
@pytest.fixture
def bridge_address(host: Any) -> Iterator[str]:
    """An address outside 127.0.0.0/8 on a bridge this test makes (local traffic only)."""
    if host.run("command -v docker-registry >/dev/null && command -v openssl >/dev/null").rc != 0:
        pytest.skip("docker-registry or openssl is not installed on the target host (scripts/provision.sh)")
    name = f"mdreg{random.randrange(10**6)}"
    addr = f"198.18.{random.randrange(1, 250)}.{random.randrange(1, 250)}"
    if host.run(f"ip link add {name} type bridge").rc != 0:
        pytest.skip("cannot create a bridge on the target host")
    try:
        helpers.check(host, f"ip addr add {addr}/32 dev {name} && ip link set {name} up")
        yield addr
    finally:
        host.run(f"ip link del {name}")


def _daemon_json(host: Any, d: str, entries: list[str]) -> str:
    path = f"{d}/daemon-{len(entries)}-{random.randrange(10**6)}.json"
    helpers.check(host, f"printf %s {shlex.quote(json.dumps({'insecure-registries': entries}))} > {path}")
    return path


def test_insecure_registry_falls_back_to_http(host, md, bridge_address, scratch):  # type: ignore[no-untyped-def]
    root = scratch("registry-insecure")
    reg = ConfiguredRegistry(host, root, bind=bridge_address).start()
    try:
        md.env["HOME"] = scratch("home")
        image_id = md.ok("buildbase").split()[1]
        name = f"{reg.address}/mini/insecure:1"
        md.ok("tag", "busybox", name)
        conf = scratch("conf")
        plain = {"MINIDOCKER_DAEMON_CONFIG": _daemon_json(host, conf, [])}
        # not listed: HTTPS only, and the server speaks HTTP
        one_error_line(md.fail("push", name, env=plain, rc=125), name,
                       "server gave HTTP response to HTTPS client")  # fmt: skip
        by_name = {"MINIDOCKER_DAEMON_CONFIG": _daemon_json(host, conf, ["mdtest.invalid", reg.address])}
        md.ok("push", name, env=by_name)
        by_cidr = {"MINIDOCKER_DAEMON_CONFIG": _daemon_json(host, conf, ["198.18.0.0/15"])}
        puller = fresh_md(host, scratch, "insecure-pull", home=md.env["HOME"])
        puller.ok("pull", name, env=by_cidr)
        assert puller.ok("images", "-q", "--no-trunc").split() == [image_id]
        bad = {"MINIDOCKER_DAEMON_CONFIG": _daemon_json(host, conf, [f"http://{reg.address}"])}
        one_error_line(puller.fail("pull", name, env=bad, rc=125), "should not contain '://'")
    finally:
        reg.stop()


def test_insecure_registry_https_skips_certificate_checks(host, md, bridge_address, scratch):  # type: ignore[no-untyped-def]
    root = scratch("registry-tls")
    cert, key = _self_signed(host, root, "mdtest-registry", f"IP:{bridge_address}")
    reg = ConfiguredRegistry(host, root, bind=bridge_address, tls=(cert, key)).start()
    try:
        md.env["HOME"] = scratch("home")
        md.ok("buildbase")
        name = f"{reg.address}/mini/tls:1"
        md.ok("tag", "busybox", name)
        conf = scratch("conf")
        plain = {"MINIDOCKER_DAEMON_CONFIG": _daemon_json(host, conf, [])}
        one_error_line(md.fail("push", name, env=plain, rc=125), name,
                       "x509: certificate signed by unknown authority")  # fmt: skip
        listed = {"MINIDOCKER_DAEMON_CONFIG": _daemon_json(host, conf, [reg.address])}
        out = md.ok("push", name, env=listed)
        assert out.splitlines()[-1].startswith("1: digest: sha256:")
        fresh_md(host, scratch, "tls-pull", home=md.env["HOME"]).ok("pull", name, env=listed)
    finally:
        reg.stop()


# -- manifests a real registry never serves ------------------------------------------------------------
def test_oversized_manifest_from_a_hostile_registry(host, scratch):  # type: ignore[no-untyped-def]
    d = scratch("static-registry")
    helpers.check(host, f"mkdir {d}/manifests")
    mt = "application/vnd.docker.distribution.manifest.v2+json"
    head = json.dumps({"schemaVersion": 2, "mediaType": mt})[:-1] + ', "pad": "'
    # valid JSON, one byte per "x": 4 MiB of padding alone is over the limit
    helpers.check(host, f"{{ printf %s {shlex.quote(head)}; head -c {4 << 20} /dev/zero | tr '\\0' x; "
                        f"printf '\"}}'; }} > {d}/manifests/big && printf %s {mt} > {d}/manifests/big.type")  # fmt: skip
    pid, port = _background(host, ["python3", f"{HERE}/staticregistry.py", "--dir", d], d)
    try:
        puller = fresh_md(host, scratch, "oversized")
        ref = f"127.0.0.1:{port}/evil/big:big"
        one_error_line(puller.fail("pull", ref, rc=125), ref, "rejecting manifest larger than 4194304 bytes")
        nothing_left(host, puller.data_root)
    finally:
        _kill(host, pid)
