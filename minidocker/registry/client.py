"""The Distribution (v2) HTTP API on ``requests``: ping, auth, manifests, blobs, uploads.

``requests`` is imported here only, and this module only by the registry verbs, so nothing
else pays for it. Which URL a registry is reached at (plain HTTP for 127.0.0.0/8 and ``localhost``,
HTTPS then HTTP for ``insecure-registries``, verified HTTPS otherwise) is :mod:`.endpoints`' call;
the ping tries those URLs in order and the first one that answers is kept.

Use::

    reg = Registry("127.0.0.1:5000", creds=None)
    raw, media_type, dgst = reg.get_manifest("library/busybox", "latest")
    with open(tmp, "wb") as f:
        reg.fetch_blob("library/busybox", descriptor, f)   # raises on digest or size mismatch
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlencode, urljoin

from minidocker import trace
from minidocker.errors import InvalidInput, MinidockerError, NotFound
from minidocker.registry import auth, endpoints, manifest
from minidocker.registry.manifest import Descriptor

if TYPE_CHECKING:
    import requests

USER_AGENT = "minidocker (docker/20.10-compatible) requests"
CHUNK = 1 << 20
RETRIES = 3  # attempts for idempotent requests on connection errors and 5xx, with backoff


class RegistryError(MinidockerError):
    """The registry refused or failed (unreachable, 401, 5xx...)."""


class Unauthorized(RegistryError):
    pass


class DigestMismatch(MinidockerError):  # noqa: N818  (what it is, not "...Error")
    """A blob or manifest did not hash to its digest: nothing of it is kept."""


def is_insecure(domain: str) -> bool:
    """Plain HTTP straight away: a literal 127.0.0.0/8 address or ``localhost``."""
    return endpoints.is_local(domain)


def endpoint(domain: str) -> str:
    """The first URL tried for ``domain`` (see :func:`.endpoints.endpoints` for the whole list)."""
    return endpoints.endpoints(domain)[0].url


def _errors_text(resp: requests.Response) -> str:
    """The registry's ``{"errors":[{"code","message"}]}`` as Docker prints it (capped at 64 KiB)."""
    try:
        doc = resp.json() if len(resp.content) <= 65536 else {}
        errs = doc.get("errors") or []
        parts = [f"{str(e.get('code', '')).lower().replace('_', ' ')}: {e.get('message', '')}" for e in errs]
        if parts:
            return "; ".join(parts)
    except ValueError:
        pass
    return f"unexpected status {resp.status_code} {resp.reason}"


class Registry:
    def __init__(self, domain: str, creds: auth.Credentials | None = None,
                 insecure: endpoints.InsecureConfig | None = None) -> None:  # fmt: skip
        import requests

        self.domain = domain
        self.creds = creds
        self.endpoints = endpoints.endpoints(domain, insecure)
        self.base = self.endpoints[0].url
        self.verify = self.endpoints[0].verify
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.tokens = auth.TokenCache()
        self.challenge: tuple[str, dict[str, str]] | None = None
        self.pinged = False
        self.login = False  # ``login`` asks the token server for an offline token, as Docker does
        self._token_lock = threading.Lock()  # parallel downloads share one token per scope

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, method: str, url: str, *, attempts: int | None = None, **kw: Any) -> requests.Response:
        """One request with retry and backoff on connection errors and 5xx (idempotent verbs)."""
        import requests

        if attempts is None:
            attempts = RETRIES if method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            try:
                # per request: requests lets $REQUESTS_CA_BUNDLE override a session-wide False
                resp = self.session.request(method, url, timeout=(10, 120), verify=self.verify, **kw)
            except requests.ConnectionError as e:
                if attempt + 1 == attempts:
                    reason = _connection_reason(url, e)
                    raise RegistryError(f'{method} "{url}": {reason}') from None
            except requests.RequestException as e:
                raise RegistryError(f'{method} "{url}": {e}') from None
            else:
                if resp.status_code < 500 or attempt + 1 == attempts:
                    return resp
                resp.close()
            time.sleep(0.2 * 2**attempt)
            trace.emit(lambda: f"registry: retrying {method} {url}")
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """``GET /v2/`` on each endpoint in turn until one answers; learn its auth challenge.

        An insecure registry's HTTPS endpoint gets one try (no certificate check) and a transport
        failure there moves on to plain HTTP, as dockerd's endpoint fallback does.
        """
        if self.pinged:
            return
        for n, ep in enumerate(self.endpoints):
            last = n + 1 == len(self.endpoints)
            self.base = ep.url
            self.verify = ep.verify
            if not ep.verify:
                _quiet_insecure_warnings()
            url = f"{self.base}/v2/"
            try:
                resp = self._send("GET", url, attempts=None if last else 1)
            except RegistryError as e:
                if last:
                    raise
                trace.emit(f"registry: {e}; falling back to the next endpoint")
                continue
            trace.emit(f"registry: GET {url} -> {resp.status_code}")
            if resp.status_code == 401:
                self.challenge = auth.parse_challenge(resp.headers.get("WWW-Authenticate", ""))
            elif resp.status_code != 200:
                raise RegistryError(f'GET "{url}": {_errors_text(resp)}')
            self.pinged = True
            return

    def check_login(self) -> None:
        """What ``login`` verifies: ``/v2/`` answers 200 with these credentials (Basic), or the
        token server hands out a token for them (Bearer)."""
        self.login = True
        self.ping()
        if self.challenge is None:
            return
        resp = self.request("GET", "/v2/", "")
        if resp.status_code != 200:
            raise Unauthorized(f"login to {self.domain}: {_errors_text(resp)}")

    def _authorization(self, scope: str, *, fresh: bool = False) -> str | None:
        if self.challenge is None:
            return None
        scheme, params = self.challenge
        if scheme == "basic":
            if self.creds is None:
                raise Unauthorized("unauthorized: authentication required (log in first)")
            return self.creds.basic()
        if scheme != "bearer":
            raise RegistryError(f"unsupported authentication scheme {scheme!r}")
        with self._token_lock:
            token = None if fresh else self.tokens.get(scope)
            if token is None:
                token = self._fetch_token(params, scope)
        return f"Bearer {token}"

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        """``GET <realm>?scope=...&service=...`` (one ``scope`` parameter per space-separated
        scope, as a cross-repository mount needs two), Basic credentials if there are any."""
        realm = params.get("realm")
        if not realm:
            raise RegistryError("bearer challenge without a realm")
        query = [("scope", s) for s in scope.split()]
        if params.get("service"):
            query.append(("service", params["service"]))
        headers = {}
        if self.creds is not None:
            query.append(("account", self.creds.username))
            headers["Authorization"] = self.creds.basic()
        if self.login:
            query += [("client_id", "docker"), ("offline_token", "true")]
        url = f"{realm}?{urlencode(query)}" if query else realm
        resp = self._send("GET", url, headers=headers)
        trace.emit(lambda: f"registry: token for {scope!r} from {realm} -> {resp.status_code}")
        if resp.status_code in (401, 403):
            if self.creds is None:
                raise Unauthorized(f"unauthorized: token server {realm} refused anonymous access")
            raise Unauthorized("unauthorized: incorrect username or password")
        if resp.status_code != 200:
            raise RegistryError(f"token server {realm}: {_errors_text(resp)}")
        try:
            return self.tokens.put(scope, resp.json())
        except ValueError:
            raise RegistryError(f"token server {realm}: invalid JSON reply") from None

    def request(self, method: str, url: str, scope: str, *, headers: dict[str, str] | None = None,
                **kw: Any) -> requests.Response:  # fmt: skip
        """An authorised request; a 401 gets one retry with a fresh token, then is an error."""
        self.ping()
        url = urljoin(self.base + "/", url)
        for fresh in (False, True):
            h = dict(headers or {})
            authz = self._authorization(scope, fresh=fresh)
            if authz:
                h["Authorization"] = authz
            resp = self._send(method, url, headers=h, **kw)
            trace.emit(f"registry: {method} {url} -> {resp.status_code}")
            if resp.status_code != 401 or self.challenge is None or self.challenge[0] != "bearer":
                break
        if resp.status_code == 401:
            why = _errors_text(resp)
            if why.startswith("unexpected status"):  # a HEAD has no body: the challenge may say why
                _, params = auth.parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                if params.get("error"):
                    why = f"{params['error']}: {params.get('error_description') or 'access to the resource is denied'}"
            if self.creds is None:
                raise Unauthorized(f"unauthorized: authentication required: {why}")
            raise Unauthorized(f"unauthorized: {why}")
        if resp.status_code == 403:
            raise Unauthorized(f"denied: {_errors_text(resp)}")
        return resp

    # -- manifests -----------------------------------------------------------------------------
    def get_manifest(self, repo: str, ref: str, scope: str | None = None) -> tuple[bytes, str]:
        """GET a manifest by tag or digest: (exact bytes, Content-Type). Capped at 4 MiB (G8)."""
        import requests.structures

        headers = requests.structures.CaseInsensitiveDict[str]()
        # One Accept header per type, as Docker sends them (a single comma list works too).
        headers["Accept"] = ", ".join(manifest.ACCEPT)
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", scope or f"repository:{repo}:pull",
                            headers=dict(headers), stream=True)  # fmt: skip
        with resp:
            if resp.status_code == 404:
                raise NotFound(_errors_text(resp))
            if resp.status_code != 200:
                raise RegistryError(f"manifest {ref}: {_errors_text(resp)}")
            body = _read_capped(resp.raw.stream(CHUNK, decode_content=True), manifest.MAX_MANIFEST_SIZE)
            return body, resp.headers.get("Content-Type", "")

    def put_manifest(self, repo: str, tag: str, body: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{tag}", f"repository:{repo}:push,pull",
                            headers={"Content-Type": media_type}, data=body)  # fmt: skip
        if resp.status_code not in (200, 201):
            raise RegistryError(f"manifest PUT {repo}:{tag}: {_errors_text(resp)}")
        return "sha256:" + hashlib.sha256(body).hexdigest()

    # -- blobs ---------------------------------------------------------------------------------
    def fetch_blob(self, repo: str, desc: Descriptor, out: BinaryIO,
                   progress: Callable[[int], None] | None = None) -> None:  # fmt: skip
        """Stream a blob into ``out`` while hashing; raise unless size and digest match (G1, G8).

        On a connection drop the download resumes with ``Range`` where the registry allows it.
        """
        import requests

        h = hashlib.sha256()
        done = 0
        for attempt in range(RETRIES):
            headers = {"Range": f"bytes={done}-"} if done else {}
            resp = self.request("GET", f"/v2/{repo}/blobs/{desc.digest}", f"repository:{repo}:pull",
                                headers=headers, stream=True)  # fmt: skip
            with resp:
                if resp.status_code == 404:
                    raise NotFound(f"blob unknown: {desc.digest}")
                if done and resp.status_code != 206:  # no resume: start over
                    out.seek(0)
                    out.truncate()
                    h, done = hashlib.sha256(), 0
                elif resp.status_code not in (200, 206):
                    raise RegistryError(f"blob {desc.digest}: {_errors_text(resp)}")
                try:
                    for chunk in resp.raw.stream(CHUNK, decode_content=False):
                        done += len(chunk)
                        if done > desc.size:
                            raise DigestMismatch(f"blob {desc.digest} is larger than its descriptor says "
                                                 f"({desc.size} bytes)")  # fmt: skip
                        h.update(chunk)
                        out.write(chunk)
                        if progress:
                            progress(done)
                    break
                except (requests.ConnectionError, OSError) as e:
                    if attempt + 1 == RETRIES:
                        raise RegistryError(f"blob {desc.digest}: {e}") from None
                except Exception as e:  # urllib3 protocol errors
                    if type(e).__module__.startswith("urllib3") and attempt + 1 < RETRIES:
                        continue
                    raise
        got = "sha256:" + h.hexdigest()
        if done != desc.size or got != desc.digest:
            raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}")

    def blob_size(self, repo: str, dgst: str, *, push: bool = False) -> int | None:
        """``HEAD`` a blob: its size, or None when the registry does not have it."""
        scope = f"repository:{repo}:push,pull" if push else f"repository:{repo}:pull"
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{dgst}", scope)
        if resp.status_code != 200:
            return None
        try:
            return int(resp.headers.get("Content-Length", ""))
        except ValueError:
            return None

    def upload_blob(self, repo: str, dgst: str, chunks: Iterable[bytes], *,
                    mount_from: str | None = None) -> str:  # fmt: skip
        """Upload a blob: ``POST`` (or a cross-repository mount), then the data, then commit.

        One chunk is a *monolithic* upload: the data rides on the closing ``PUT ?digest=``. More
        chunks are a *chunked* upload: one ``PATCH`` with ``Content-Range`` per chunk, each
        moving the ``Location`` on, then an empty ``PUT ?digest=``. Returns "mounted" or "pushed".
        """
        scope = f"repository:{repo}:push,pull"
        url = f"/v2/{repo}/blobs/uploads/"
        if mount_from:
            # the token must also allow pulling from the source repository, or the registry
            # quietly starts a normal upload instead of mounting (202, not 201)
            both = f"{scope} repository:{mount_from}:pull"
            resp = self.request("POST", f"{url}?{urlencode({'mount': dgst, 'from': mount_from})}", both)
            if resp.status_code == 201:
                return "mounted"
        else:
            resp = self.request("POST", url, scope)
        if resp.status_code != 202:
            raise RegistryError(f"blob upload {dgst}: {_errors_text(resp)}")
        location = resp.headers.get("Location", "")
        it = iter(chunks)
        pending = next(it, b"")
        offset = 0
        for chunk in it:  # at least two chunks: PATCH them one by one
            location = self._patch(location, scope, dgst, pending, offset)
            offset += len(pending)
            pending = chunk
        if offset:
            location = self._patch(location, scope, dgst, pending, offset)
            pending = b""
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream"} if pending else None
        r = self.request("PUT", f"{location}{sep}{urlencode({'digest': dgst})}", scope,
                         headers=headers, data=pending or None)  # fmt: skip
        if r.status_code != 201:
            raise RegistryError(f"blob upload {dgst}: {_errors_text(r)}")
        return "pushed"

    def _patch(self, location: str, scope: str, dgst: str, chunk: bytes, offset: int) -> str:
        rng = f"{offset}-{offset + len(chunk) - 1}"
        r = self.request("PATCH", location, scope, data=chunk,
                         headers={"Content-Type": "application/octet-stream", "Content-Range": rng})  # fmt: skip
        if r.status_code != 202:
            raise RegistryError(f"blob upload {dgst}: {_errors_text(r)}")
        return str(r.headers.get("Location", location))


def _quiet_insecure_warnings() -> None:
    """urllib3 warns on stderr for every unverified HTTPS request; an insecure registry is one
    the configuration asked for, and errors must stay one line."""
    import warnings

    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)


def _connection_reason(url: str, e: Exception) -> str:
    """urllib3 nests causes several levels deep; say what Go's net package would."""
    from urllib.parse import urlsplit

    text = str(e)
    host = urlsplit(url).hostname or url
    low = text.lower()
    if "wrong version number" in low or "record layer failure" in low or "packet length too long" in low:
        return "http: server gave HTTP response to HTTPS client"
    if "hostname mismatch" in low:
        return f"x509: certificate is not valid for {host}"
    if "certificate verify failed" in low:
        return "x509: certificate signed by unknown authority"
    if "refused" in low:
        return "connection refused"
    if "NameResolutionError" in text or "Name or service not known" in text:
        return f"lookup {host}: no such host"
    if "timed out" in text.lower():
        return "i/o timeout"
    return text.splitlines()[0][:200]


def _read_capped(chunks: Iterable[bytes], limit: int) -> bytes:
    buf = bytearray()
    for c in chunks:
        buf += c
        if len(buf) > limit:
            raise InvalidInput(f"rejecting manifest larger than {limit} bytes")
    return bytes(buf)
