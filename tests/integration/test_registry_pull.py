"""The pull pipeline against a real registry (Debian's ``docker-registry``), through a small proxy.

Images are pushed *by hand* (blob uploads, config, manifest over the v2 API), so layers can be
gzip, zstd or uncompressed and of any size. The pull goes through :class:`Proxy`, an HTTP proxy
in this process in front of the registry, which records every request (Range headers, how many
blob downloads run at once) and injects faults: a connection cut in the middle of a blob, 5xx
answers, slow bodies.

Checked: a cut download resumes with ``Range`` (and the layer is right); 5xx then success is
retried; a zstd layer and an uncompressed layer pull; Docker-like bars with cursor movement on a
pty, plain lines when piped; downloads run in parallel up to ``--max-concurrent-downloads``;
peak RSS stays bounded with a layer larger than the bound (no whole-layer buffering); a pull
that fails leaves no temp file and registers nothing; ``benchmarks/run.py --only pull --quick``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import re
import socket
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.helpers import Minidocker, RegistryServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}

pytestmark = pytest.mark.registry


@pytest.fixture
def local(host):  # type: ignore[no-untyped-def]
    if not helpers.is_local(host):
        pytest.skip("the fault-injecting proxy runs in the pytest process: local host only")
    return host


# --------------------------------------------------------------------------------------------
# images pushed by hand


@dataclass
class Layer:
    tar: bytes  # or a path, for big layers (see big_layer)
    kind: str = "gzip"
    path: str | None = None

    def blob(self) -> bytes:
        if self.kind == "gzip":
            return gzip.compress(self.tar, compresslevel=1, mtime=0)
        if self.kind == "zstd":
            import zstandard

            return zstandard.ZstdCompressor(level=3).compress(self.tar)
        return self.tar


def make_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def random_layer(tag: str, size: int, kind: str = "gzip") -> Layer:
    """One file of incompressible bytes (a blob of about ``size`` bytes whatever the kind)."""
    return Layer(make_tar({f"{tag}/data.bin": os.urandom(size), f"{tag}/name.txt": tag.encode()}), kind)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _upload(base: str, repo: str, data: bytes | None, path: str | None = None) -> tuple[str, int]:
    import requests

    if path is not None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        dgst, size = "sha256:" + h.hexdigest(), os.path.getsize(path)
    else:
        assert data is not None
        dgst, size = _sha(data), len(data)
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=30)
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else base + loc
    sep = "&" if "?" in loc else "?"
    body: Any = open(path, "rb") if path is not None else data  # noqa: SIM115
    try:
        r = requests.put(f"{loc}{sep}digest={dgst}", data=body, timeout=300,
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})  # fmt: skip
    finally:
        if path is not None:
            body.close()
    assert r.status_code == 201, r.text
    return dgst, size


def push_by_hand(registry: RegistryServer, repo: str, tag: str, layers: list[Layer]) -> dict[str, Any]:
    """Upload the layer blobs, a config naming their DiffIDs and an OCI manifest; return the manifest."""
    import requests

    base = f"http://{registry.address}"
    descs, diff_ids = [], []
    for layer in layers:
        if layer.path is not None:
            dgst, size = _upload(base, repo, None, layer.path)
            diff_ids.append(dgst)  # uncompressed: the blob is the tar
        else:
            blob = layer.blob()
            dgst, size = _upload(base, repo, blob)
            diff_ids.append(_sha(layer.tar))
        descs.append({"mediaType": LAYER_TYPES[layer.kind], "digest": dgst, "size": size})
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }).encode()  # fmt: skip
    cdgst, csize = _upload(base, repo, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cdgst, "size": csize}, "layers": descs}  # fmt: skip
    r = requests.put(f"{base}/v2/{repo}/manifests/{tag}", data=json.dumps(manifest).encode(),
                     headers={"Content-Type": OCI_MANIFEST}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text
    manifest["image_id"] = cdgst
    return manifest


# --------------------------------------------------------------------------------------------
# the proxy


@dataclass
class Proxy:
    """HTTP proxy to ``upstream`` on a free 127.0.0.1 port; records blob GETs, injects faults."""

    upstream: str
    cut: set[str] = field(default_factory=set)  # digests whose next GET is cut half-way (once)
    cut_always: set[str] = field(default_factory=set)
    fail: dict[str, int] = field(default_factory=dict)  # digest -> how many 503s to answer first
    slow: float = 0.0  # seconds per 64 KiB of blob body
    gets: list[tuple[str, str | None, int]] = field(default_factory=list)  # digest, Range, status
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None
    thread: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def blob_gets(self, dgst: str) -> list[tuple[str, str | None, int]]:
        return [g for g in self.gets if g[0] == dgst]

    def start(self) -> Proxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._forward()

            def do_GET(self) -> None:  # noqa: N802
                self._forward()

            def _forward(self) -> None:
                m = re.search(r"/blobs/(sha256:[0-9a-f]{64})", self.path)
                dgst = m.group(1) if m and self.command == "GET" else None
                rng = self.headers.get("Range")
                if dgst is not None:
                    with proxy.lock:
                        if proxy.fail.get(dgst, 0) > 0:
                            proxy.fail[dgst] -= 1
                            proxy.gets.append((dgst, rng, 503))
                            self._answer(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')
                            return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, headers=headers)
                resp = conn.getresponse()
                if dgst is not None:
                    with proxy.lock:
                        proxy.gets.append((dgst, rng, resp.status))
                        proxy.active += 1
                        proxy.max_active = max(proxy.max_active, proxy.active)
                        cut = dgst in proxy.cut_always or dgst in proxy.cut
                        proxy.cut.discard(dgst)
                else:
                    cut = False
                counted = [dgst is not None]

                def done() -> None:
                    with proxy.lock:
                        if counted[0]:
                            proxy.active -= 1
                            counted[0] = False

                try:
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding"):
                            self.send_header(k, v)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    length = int(resp.getheader("Content-Length") or 0)
                    sent = 0
                    while self.command == "GET":
                        chunk = resp.read(65536)
                        if not chunk:
                            break
                        if cut and sent + len(chunk) >= length // 2:
                            self.wfile.write(chunk[: length // 2 - sent])
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)  # the cut: no more bytes
                            break
                        if dgst is not None and sent + len(chunk) >= length:
                            done()  # before the last bytes: the client's next request comes later
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        if proxy.slow and dgst is not None:
                            time.sleep(proxy.slow)
                    self.close_connection = True
                except OSError:
                    self.close_connection = True
                finally:
                    conn.close()
                    if dgst is not None:
                        done()

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[Proxy]:
    p = Proxy(registry.address).start()
    try:
        yield p
    finally:
        p.stop()


def fresh_md(host: Any, scratch: Any, what: str) -> Minidocker:
    root = scratch(what)
    return Minidocker(host=host, binary=helpers.minidocker_binary(host), data_root=f"{root}/data",
                      exec_root=f"{root}/exec", env={"HOME": root})  # fmt: skip


def nothing_left(host: Any, data_root: str) -> None:
    """No image, no layer, no overlay2 dir, no temp file (blob or write-set) stayed behind."""
    assert helpers.check(host, f"ls -A {data_root}/image/overlay2/imagedb/content/sha256") == ""
    assert helpers.check(host, f"ls -A {data_root}/image/overlay2/layerdb/sha256") == ""
    assert helpers.check(host, f"ls -A {data_root}/image/overlay2/layerdb/tmp") == ""
    assert helpers.check(host, f"ls -A {data_root}/overlay2 | grep -v '^l$' || true") == ""
    assert helpers.check(host, f"ls -A {data_root}/overlay2/l") == ""
    assert helpers.check(host, f"ls -A {data_root}/tmp") == ""


def layer_file(host: Any, md: Minidocker, chain_index: int, rel: str) -> bytes:
    """Bytes of ``rel`` in the ``chain_index``-th layer's overlay2 diff dir (of the only image)."""
    image_id = md.ok("images", "-q", "--no-trunc").split()[0]
    root = md.data_root
    cfg = json.loads(helpers.check(host, f"cat {root}/image/overlay2/imagedb/content/sha256/{image_id[7:]}"))
    diff_ids = cfg["rootfs"]["diff_ids"]
    chain = diff_ids[0]
    for d in diff_ids[1 : chain_index + 1]:
        chain = _sha(f"{chain} {d}".encode())
    cache_id = helpers.check(host, f"cat {root}/image/overlay2/layerdb/sha256/{chain[7:]}/cache-id")
    with open(f"{root}/overlay2/{cache_id}/diff/{rel}", "rb") as f:
        return f.read()


# --------------------------------------------------------------------------------------------
# tests


def test_cut_download_resumes_with_range(local, registry, proxy, scratch):  # type: ignore[no-untyped-def]
    layers = [random_layer("a", 3 << 20), random_layer("b", 2 << 20)]
    m = push_by_hand(registry, "pull/resume", "1", layers)
    cut = m["layers"][0]["digest"]
    proxy.cut.add(cut)
    md = fresh_md(local, scratch, "resume")
    out = md.ok("pull", f"{proxy.address}/pull/resume:1")
    assert out.count("Pull complete") == 2, out
    gets = proxy.blob_gets(cut)
    assert len(gets) == 2, gets
    assert gets[0][1] is None and gets[0][2] == 200, gets
    size = m["layers"][0]["size"]
    assert gets[1][1] == f"bytes={size // 2}-" and gets[1][2] == 206, gets  # resumed where it stopped
    with tarfile.open(fileobj=io.BytesIO(layers[0].tar)) as t:
        want = t.extractfile("a/data.bin").read()  # type: ignore[union-attr]
    assert layer_file(local, md, 0, "a/data.bin") == want
    assert md.ok("images", "-q", "--no-trunc").split() == [m["image_id"]]
    assert helpers.check(local, f"ls -A {md.data_root}/tmp") == ""


def test_5xx_is_retried_then_succeeds(local, registry, proxy, scratch):  # type: ignore[no-untyped-def]
    m = push_by_hand(registry, "pull/retry", "1", [random_layer("r", 256 << 10)])
    dgst = m["layers"][0]["digest"]
    proxy.fail[dgst] = 4  # more than one request's own quick retries (3): the download retries too
    md = fresh_md(local, scratch, "retry")
    out = md.ok("pull", f"{proxy.address}/pull/retry:1")
    assert "Pull complete" in out, out
    statuses = [g[2] for g in proxy.blob_gets(dgst)]
    assert statuses.count(503) == 4 and statuses[-1] == 200, statuses


def test_zstd_and_uncompressed_layers(local, registry, scratch):  # type: ignore[no-untyped-def]
    layers = [
        Layer(make_tar({"z/hello.txt": b"zstd layer\n" * 1000}), "zstd"),
        Layer(make_tar({"u/plain.txt": b"uncompressed\n"}), "none"),
        Layer(make_tar({"g/gz.txt": b"gzip\n"}), "gzip"),
    ]
    m = push_by_hand(registry, "pull/zstd", "1", layers)
    assert m["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    md = fresh_md(local, scratch, "zstd")
    name = f"{registry.address}/pull/zstd:1"
    out = md.ok("pull", name)
    assert out.count("Pull complete") == 3, out
    assert md.ok("images", "-q", "--no-trunc").split() == [m["image_id"]]
    assert layer_file(local, md, 0, "z/hello.txt") == b"zstd layer\n" * 1000
    assert layer_file(local, md, 1, "u/plain.txt") == b"uncompressed\n"
    assert layer_file(local, md, 2, "g/gz.txt") == b"gzip\n"
    # the layer store reproduces each layer's tar exactly (tar-split): save works
    md.ok("save", "-o", f"{md.data_root}/../saved.tar", name)


def test_progress_bars_on_a_pty_plain_lines_when_piped(local, registry, proxy, scratch):  # type: ignore[no-untyped-def]
    m = push_by_hand(registry, "pull/tty", "1", [random_layer("t1", 2 << 20), random_layer("t2", 1 << 20)])
    short = [d["digest"][7:19] for d in m["layers"]]
    proxy.slow = 0.01  # ~0.3 s per layer: several redraws
    name = f"{proxy.address}/pull/tty:1"
    md = fresh_md(local, scratch, "tty")
    cmd = md.command("pull", name)
    r = helpers.run(local, f"script -qfec {helpers.q(cmd)} /dev/null")
    assert r.rc == 0, helpers.describe(r)
    text = r.stdout
    assert "\x1b[" in text and "\x1b[2K" in text, repr(text[-2000:])  # cursor movement, line clears
    assert re.search(rf"{short[0]}: Downloading \[=*>\s*\]\s+\d+(\.\d+)?[kM]?B/2\.\d+MB", text), repr(
        text[-3000:]
    )
    for s in short:
        assert f"{s}: Pull complete" in text, repr(text[-2000:])
    assert "Status: Downloaded newer image for" in text
    piped = fresh_md(local, scratch, "piped").ok("pull", name)
    assert "\x1b" not in piped and "Downloading" not in piped and "Extracting" not in piped, piped
    lines = piped.splitlines()
    for s in short:
        want = [
            f"{s}: Pulling fs layer",
            f"{s}: Verifying Checksum",
            f"{s}: Download complete",
            f"{s}: Pull complete",
        ]
        assert [line for line in lines if line.startswith(s)] == want, piped


def test_downloads_run_in_parallel_up_to_the_limit(local, registry, proxy, scratch):  # type: ignore[no-untyped-def]
    layers = [random_layer(f"p{i}", 1 << 20) for i in range(5)]
    push_by_hand(registry, "pull/par", "1", layers)
    proxy.slow = 0.02  # 16 chunks of 64 KiB: ~0.3 s per blob, long enough to overlap
    name = f"{proxy.address}/pull/par:1"
    out = fresh_md(local, scratch, "par").ok("pull", name)
    assert proxy.max_active == 3, proxy.gets  # Docker's default
    assert out.count("Waiting") == 2, out
    proxy.max_active = 0
    fresh_md(local, scratch, "par1").ok("pull", "--max-concurrent-downloads", "1", name)
    assert proxy.max_active == 1
    proxy.max_active = 0
    fresh_md(local, scratch, "par5").ok("pull", "--max-concurrent-downloads", "5", name)
    assert proxy.max_active >= 4


def test_peak_rss_bounded_with_a_layer_larger_than_the_bound(local, registry, scratch):  # type: ignore[no-untyped-def]
    """A 300 MB uncompressed layer (and a gzip one on top): peak RSS stays well under 200 MB."""
    if not os.access("/usr/bin/time", os.X_OK):
        pytest.skip("GNU time is not installed")
    d = scratch("bigblob")
    path = f"{d}/layer.tar"
    with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("big/data.bin")
        info.size, info.mtime = 300 << 20, 1_600_000_000
        chunk = os.urandom(1 << 20)

        class Repeat(io.RawIOBase):
            left = info.size

            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                n = min(len(b), self.left, len(chunk))
                b[:n] = chunk[:n]
                self.left -= n
                return n

        t.addfile(info, io.BufferedReader(Repeat()))
    layers = [Layer(b"", "none", path), random_layer("top", 8 << 20)]
    m = push_by_hand(registry, "pull/big", "1", layers)
    os.unlink(path)
    md = fresh_md(local, scratch, "big")
    cmd = md.command("pull", f"{registry.address}/pull/big:1")
    r = helpers.run(local, f"/usr/bin/time -f 'maxrss %M' {cmd}")
    assert r.rc == 0, helpers.describe(r)
    kib = int(re.findall(r"maxrss (\d+)", r.stderr)[-1])
    assert kib < 150 * 1024, f"peak RSS {kib} KiB"
    assert md.ok("images", "-q", "--no-trunc").split() == [m["image_id"]]


def test_failed_pull_leaves_no_temp_files_and_registers_nothing(local, registry, proxy, scratch):  # type: ignore[no-untyped-def]
    layers = [random_layer("f0", 2 << 20), random_layer("f1", 1 << 20), random_layer("f2", 1 << 20)]
    m = push_by_hand(registry, "pull/fail", "1", layers)
    proxy.cut_always.add(m["layers"][2]["digest"])  # the top layer never arrives whole
    md = fresh_md(local, scratch, "fail")
    name = f"{proxy.address}/pull/fail:1"
    r = md.fail("pull", name, rc=125, timeout=120)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and name in err[0] and m["layers"][2]["digest"] in err[0], helpers.describe(r)
    gets = proxy.blob_gets(m["layers"][2]["digest"])
    assert len(gets) >= 5 and all(g[1] and g[1].startswith("bytes=") for g in gets[1:]), (
        gets
    )  # resumed each time
    nothing_left(local, md.data_root)
    assert (
        helpers.check(local, f"cat {md.data_root}/image/overlay2/repositories.json") == '{"Repositories":{}}'
    )
    # a zstd layer that is not zstd (big enough for the extraction worker process to be used):
    # whichever extractor gets it fails; same cleanup
    bad = Layer(make_tar({"x": b"x"}), "zstd")
    bad.blob = lambda: b"\x28\xb5\x2f\xfd" + os.urandom(6 << 20)  # type: ignore[method-assign]
    push_by_hand(
        registry, "pull/badzstd", "1", [random_layer("ok", 1 << 20), bad, random_layer("ok2", 1 << 20)]
    )
    r = md.fail("pull", f"{registry.address}/pull/badzstd:1", rc=125)
    assert "zstd" in r.stderr, helpers.describe(r)
    nothing_left(local, md.data_root)


def test_layers_already_present_are_skipped_and_new_ones_stack_on_them(local, registry, scratch):  # type: ignore[no-untyped-def]
    """Pull an image, then one that adds layers on top (enough bytes for the worker process):
    "Already exists" for the shared ones, the new ones extracted on both cores, committed in order."""
    base = [random_layer("s0", 1 << 20), random_layer("s1", 1 << 20)]
    push_by_hand(registry, "pull/base", "1", base)
    more = [*base, random_layer("n0", 3 << 20), random_layer("n1", 3 << 20), random_layer("n2", 1 << 20)]
    m = push_by_hand(registry, "pull/more", "1", more)
    md = fresh_md(local, scratch, "stack")
    md.ok("pull", f"{registry.address}/pull/base:1")
    out = md.ok("pull", f"{registry.address}/pull/more:1", trace=True)
    short = [d["digest"][7:19] for d in m["layers"]]
    assert f"{short[0]}: Already exists" in out and f"{short[1]}: Already exists" in out, out
    assert [f"{s}: Pull complete" in out for s in short] == [False, False, True, True, True], out
    assert md.ok("images", "-q", "--no-trunc").split().count(m["image_id"]) == 1
    assert layer_file(local, md, 4, "n2/name.txt") == b"n2"
    md.ok("fsck")  # chain ids, diff ids via tar-split, overlay2 lower chains: all consistent
    assert helpers.check(
        local, f"ls -A {md.data_root}/tmp {md.data_root}/image/overlay2/layerdb/tmp"
    ).split() == [
        f"{md.data_root}/image/overlay2/layerdb/tmp:",
        f"{md.data_root}/tmp:",
    ]


@pytest.mark.docker
def test_quick_pull_benchmark_prints_a_ratio_and_cleans_up(local, scratch):  # type: ignore[no-untyped-def]
    if local.run("command -v dockerd >/dev/null 2>&1").rc != 0:
        pytest.skip("dockerd is not installed")
    base = scratch("bench")
    env = [f"MINIDOCKER_BENCH_TMP={base}", f"MINIDOCKER_BENCH_CACHE={base}/cache"]
    run = os.path.join(REPO, "benchmarks", "run.py")
    result = helpers.run(
        local,
        helpers.q(
            "env",
            *env,
            sys.executable,
            run,
            "--only",
            "pull",
            "--quick",
            "--iterations",
            "1",
            "--warmup",
            "0",
        ),
        timeout=400,
    )
    assert result.rc == 0, helpers.describe(result)
    assert re.search(r"^ratio minidocker/docker: \d+\.\d+x", result.stdout, re.M), helpers.describe(result)
    assert re.search(r"^peak RSS minidocker: \d+ MiB", result.stdout, re.M), helpers.describe(result)
    assert sorted(os.listdir(base)) == ["cache"], os.listdir(base)
    assert helpers.mounts_under(local, base) == []
    procs = local.run(helpers.q("ps", "-eo", "pid=,stat=,args=")).stdout
    alive = [
        ln
        for ln in procs.splitlines()
        if base in ln and not ln.split()[1].startswith("Z") and "ps -eo" not in ln
    ]
    assert alive == [], alive
