"""Docker image references (``busybox``, ``host:5000/ns/app:1.0@sha256:...``) and the reference store.

Parsing follows the ``github.com/docker/distribution/reference`` package vendored by Docker 20.10
(``regexp.go``, ``reference.go``, ``normalize.go``, ``helpers.go``); the store follows moby
``reference/store.go``. Messages are Docker's, because users compare them with what docker prints.

Grammar::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] path-component ['/' path-component]*
    domain           := domain-component ['.' domain-component]* [':' port-number]
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]*/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex       (sha256/sha384/sha512, lowercase hex of the right length)

Normalisation (``ParseNormalizedNamed``): the first ``/``-separated component is a registry domain
only when it contains ``.`` or ``:`` or is ``localhost``; otherwise the domain is ``docker.io``, and
a single-component path gets ``library/`` in front.

>>> r = parse("busybox")
>>> r.name, r.tag, str(r.with_default_tag())
('docker.io/library/busybox', None, 'docker.io/library/busybox:latest')
>>> parse("127.0.0.1:5000/library/busybox:1").familiar_string()
'127.0.0.1:5000/library/busybox:1'
>>> parse("user/x@sha256:" + "a" * 64).familiar_name
'user/x'

The store file ``<root>/image/overlay2/repositories.json`` maps familiar repository names to
familiar reference strings to image IDs (shared/docker-layout.md section 5)::

    {"Repositories":{"busybox":{"busybox:latest":"sha256:<id>"}}}
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from minidocker import fsutil, gojson, trace
from minidocker.errors import Conflict, CorruptStore, InvalidInput, NotFound
from minidocker.image import digest as _digest
from minidocker.record import FrozenRecord, record

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

NAME_TOTAL_LENGTH_MAX = 255
DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_NAME = "library"
DEFAULT_TAG = "latest"

# --- regular expressions (regexp.go) --------------------------------------------------------------
# Python's ``re`` backtracks where Go's RE2 does not, so two rewrites keep the *language* identical
# while avoiding exponential blow-up and Python-only behaviour:
#  * the separator ``(?:[._]|__|[-]*)`` may be empty, which makes ``[a-z0-9]+(?:sep[a-z0-9]+)*`` a
#    nested quantifier (catastrophic on ``aaaa...!``). An empty separator between two alphanumeric
#    runs is just a longer run, so ``-+`` instead of ``-*`` accepts exactly the same strings.
#  * Go's ``\w`` is ASCII-only and ``$`` means end of text; we compile with re.ASCII and always use
#    ``fullmatch`` (Python's ``$`` would also accept a trailing newline).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_NAME_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"

# Patterns, not compiled objects: ``re`` compiles each on first use and caches it. Compiling
# these two took ~0.6 ms of every ``run`` (issue 3, "Speed"), which now parses its plain
# ``busybox[:tag]`` without them (:func:`_parse_plain`).
_REFERENCE = rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?"
_ANCHORED_NAME = rf"(?:({_DOMAIN})/)?({_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)"
# go-digest: the loose shape used to tell "unsupported algorithm" from "bad format".
_GO_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
_HEX = "0123456789abcdef"
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TAG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
# go-digest algorithms linked into dockerd (crypto/sha256 and crypto/sha512, which also gives sha384).
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}

# distribution's error values, word for word.
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid digest format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"


def looks_like_id(s: str) -> bool:
    """True for a full 64-hex image ID, which callers must treat as an ID, never as a name.

    >>> looks_like_id("a" * 64), looks_like_id("busybox")
    (True, False)
    """
    return len(s) == 64 and not s.strip(_HEX)  # [a-f0-9]{64}: nothing left once hex is stripped


def looks_like_short_id(s: str) -> bool:
    """True for 6 to 64 lowercase hex chars: a possible ID prefix (``ShortIdentifierRegexp``).

    >>> looks_like_short_id("9e3b"), looks_like_short_id("9e3b6d")
    (False, True)
    """
    return 6 <= len(s) <= 64 and not s.strip(_HEX)


def validate_digest(s: str) -> str:
    """go-digest ``digest.Parse``: return ``s`` if it is a supported, well-formed digest, else raise.

    >>> validate_digest("sha256:" + "0" * 64)[:10]
    'sha256:000'
    """
    i = s.find(":")
    if i <= 0 or i + 1 == len(s):
        raise InvalidInput("invalid checksum digest format", subject=s)
    algorithm, encoded = s[:i], s[i + 1 :]
    size = _DIGEST_HEX_LEN.get(algorithm)
    if size is None:
        if not re.fullmatch(_GO_DIGEST, s):
            raise InvalidInput("invalid checksum digest format", subject=s)
        raise InvalidInput("unsupported digest algorithm", subject=s)
    if len(encoded) != size:
        raise InvalidInput("invalid checksum digest length", subject=s)
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidInput("invalid checksum digest format", subject=s)
    return s


@record(frozen=True)
class Reference(FrozenRecord):
    """A parsed reference. ``domain`` is empty only for references made by :func:`parse_raw`.

    >>> r = parse("busybox:1.36")
    >>> (r.domain, r.path, r.tag, r.digest)
    ('docker.io', 'library/busybox', '1.36', None)
    >>> str(r), r.familiar_string()
    ('docker.io/library/busybox:1.36', 'busybox:1.36')
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``docker.io/`` and a lone ``library/`` dropped.

        >>> parse("docker.io/library/a/b").familiar_name, parse("localhost/x").familiar_name
        ('library/a/b', 'localhost/x')
        """
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        parts = self.path.split("/")
        if len(parts) == 2 and parts[0] == OFFICIAL_REPO_NAME:
            return parts[1]
        return self.path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag is not None else "") + (
            f"@{self.digest}" if self.digest is not None else ""
        )

    def familiar_string(self) -> str:
        """``FamiliarString``: ``busybox:latest``, ``busybox@sha256:...``, ``user/x:1@sha256:...``."""
        return self.familiar_name + self._suffix()

    def __str__(self) -> str:
        return self.name + self._suffix()

    @property
    def is_name_only(self) -> bool:
        """``IsNameOnly``: neither tag nor digest."""
        return self.tag is None and self.digest is None

    def with_default_tag(self) -> Reference:
        """``TagNameOnly``: add ``latest`` when the reference has neither tag nor digest.

        >>> str(parse("a@sha256:" + "f" * 64).with_default_tag()).endswith(":latest")
        False
        """
        return dataclasses.replace(self, tag=DEFAULT_TAG) if self.is_name_only else self

    def trim(self) -> Reference:
        """``TrimNamed``: the repository alone, tag and digest removed."""
        return Reference(self.domain, self.path)

    def with_tag(self, tag: str) -> Reference:
        """``WithTag``: set the tag (keeps a digest, like distribution does)."""
        if not re.fullmatch(_TAG, tag, re.ASCII):
            raise InvalidInput(ERR_TAG_INVALID_FORMAT, subject=tag)
        return dataclasses.replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """``WithDigest``: set the digest (keeps a tag, like distribution does).

        >>> str(parse("busybox").with_digest("sha256:" + "1" * 64))[-8:]
        '11111111'
        """
        if not re.fullmatch(_DIGEST, digest, re.ASCII):
            raise InvalidInput(ERR_DIGEST_INVALID_FORMAT, subject=digest)
        return dataclasses.replace(self, digest=digest)

    def favor_digest(self) -> Reference:
        """Drop the tag when there is also a digest: the form stored and looked up by the store."""
        if self.tag is not None and self.digest is not None:
            return dataclasses.replace(self, tag=None)
        return self


def parse_raw(s: str) -> Reference:
    """distribution's ``Parse``: syntax only, no normalisation (``busybox`` has domain ``""``).

    >>> parse_raw("test:5000/repo:tag")
    Reference(domain='test:5000', path='repo', tag='tag', digest=None)
    """
    plain = _parse_plain(s)
    if plain is not None:
        return plain
    m = re.fullmatch(_REFERENCE, s, re.ASCII)
    if m is None:
        if s == "":
            raise InvalidInput(ERR_NAME_EMPTY, subject=s)
        if re.fullmatch(_REFERENCE, s.lower(), re.ASCII) is not None:
            raise InvalidInput(ERR_NAME_CONTAINS_UPPERCASE, subject=s)
        raise InvalidInput(ERR_REFERENCE_INVALID_FORMAT, subject=s)
    name, tag, dgst = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidInput(ERR_NAME_TOO_LONG, subject=s)
    nm = re.fullmatch(_ANCHORED_NAME, name, re.ASCII)
    if nm is not None:
        domain, path = nm.group(1) or "", nm.group(2)
    else:  # cannot happen: the name already matched the same grammar
        domain, path = "", name
    if dgst is not None:
        validate_digest(dgst)
    return Reference(domain, path, tag or None, dgst or None)


def _parse_plain(s: str) -> Reference | None:
    """:func:`parse_raw` of the common form without the grammar's regular expressions:
    ``docker.io/`` and path components of lowercase letters and digits only, an optional tag
    (``[\\w][\\w.-]{0,127}``), no digest. None for anything else: the grammar decides those.

    >>> _parse_plain("docker.io/library/busybox:1.36"), _parse_plain("docker.io/library/busy-box")
    (Reference(domain='docker.io', path='library/busybox', tag='1.36', digest=None), None)
    """
    if not s.startswith(DEFAULT_DOMAIN + "/") or "@" in s or len(s) > NAME_TOTAL_LENGTH_MAX:
        return None
    path, colon, tag = s[len(DEFAULT_DOMAIN) + 1 :].partition(":")
    if colon and not (len(tag) <= 128 and tag[:1] not in ("", ".", "-") and _TAG_CHARS.issuperset(tag)):
        return None
    if not all(part and _LOWER_ALNUM.issuperset(part) for part in path.split("/")):
        return None
    return Reference(DEFAULT_DOMAIN, path, tag or None, None)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """``splitDockerDomain``: the first component is a registry only if it looks like a host."""
    i = name.find("/")
    if i == -1 or ("." not in name[:i] and ":" not in name[:i] and name[:i] != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"{OFFICIAL_REPO_NAME}/{remainder}"
    return domain, remainder


def parse_normalized_named(s: str) -> Reference:
    """``ParseNormalizedNamed``: what ``docker pull/run/tag`` do with a user-typed reference.

    No default tag is added (see :meth:`Reference.with_default_tag`).

    >>> str(parse_normalized_named("index.docker.io/busybox"))
    'docker.io/library/busybox'
    >>> parse_normalized_named("BusyBox")
    Traceback (most recent call last):
    ...
    minidocker.errors.InvalidInput: invalid reference format: repository name must be lowercase
    """
    if looks_like_id(s):
        raise InvalidInput(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings", subject=s
        )
    domain, remainder = _split_docker_domain(s)
    # Only the text before the first ':' is checked: it is the remote name when there is a tag.
    remote_name = remainder.split(":", 1)[0]
    if remote_name.lower() != remote_name:
        raise InvalidInput(f"{ERR_REFERENCE_INVALID_FORMAT}: {ERR_NAME_CONTAINS_UPPERCASE}", subject=s)
    return parse_raw(f"{domain}/{remainder}")


def parse(s: str) -> Reference:
    """Parse a user-typed reference (``ParseNormalizedNamed``); raises InvalidInput with Docker's text."""
    return parse_normalized_named(s)


def tag_name_only(ref: Reference) -> Reference:
    """``TagNameOnly``: add the ``latest`` tag to a bare name."""
    return ref.with_default_tag()


def parse_docker_ref(s: str) -> Reference:
    """``ParseDockerRef``: normalised, and either tagged (``latest`` by default) or digested, never both.

    >>> str(parse_docker_ref("busybox:1@sha256:" + "a" * 64)).count(":1@")
    0
    """
    return parse_normalized_named(s).favor_digest().with_default_tag()


def parse_any_reference(s: str) -> Reference | str:
    """``ParseAnyReference``: a 64-hex ID or a bare ``sha256:<hex>`` gives the digest string
    ``sha256:<hex>`` (an image ID); anything else is parsed as a normalised name.

    >>> parse_any_reference("a" * 64) == "sha256:" + "a" * 64
    True
    >>> parse_any_reference("busybox:1")
    Reference(domain='docker.io', path='library/busybox', tag='1', digest=None)
    """
    if looks_like_id(s):
        return "sha256:" + s
    try:
        return validate_digest(s)
    except InvalidInput:
        pass
    return parse_normalized_named(s)


def _as_ref(ref: Reference | str) -> Reference:
    return ref if isinstance(ref, Reference) else parse_normalized_named(ref)


# --- the reference store (moby reference/store.go) ------------------------------------------------

Repositories = dict[str, dict[str, str]]


class ReferenceStore:
    """``repositories.json``: familiar name -> familiar reference -> image ID.

    The file is the only state: every read loads it, every change re-reads it under the data-root
    lock, applies the change and rewrites it atomically (mode 0600), so several minidocker
    processes never lose each other's updates.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> s = ReferenceStore(os.path.join(d, "repositories.json"), fsutil.DataRootLock(d))
    >>> s.add_tag(parse("busybox"), "sha256:" + "a" * 64)
    >>> open(os.path.join(d, "repositories.json")).read()[:50]
    '{"Repositories":{"busybox":{"busybox:latest":"sha2'
    """

    def __init__(self, path: str, lock: fsutil.DataRootLock) -> None:
        self.path = path
        self.lock = lock

    # -- file I/O

    def _load(self) -> Repositories:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)  # surrounding whitespace (a trailing newline) is fine, as in Go
        except ValueError as e:
            raise CorruptStore(f"{self.path}: {e}", subject=self.path) from e
        if not isinstance(doc, dict):
            raise CorruptStore(f"{self.path}: not a JSON object", subject=self.path)
        # Go's decoder matches struct fields case-insensitively, preferring the exact spelling.
        repos: Any = doc.get("Repositories")
        if "Repositories" not in doc:
            for k, v in doc.items():
                if k.lower() == "repositories":
                    repos = v
        if repos is None:
            return {}
        if not isinstance(repos, dict):
            raise CorruptStore(f"{self.path}: Repositories is not an object", subject=self.path)
        out: Repositories = {}
        for name, refs in repos.items():
            if refs is None:
                refs = {}
            if not isinstance(refs, dict) or not all(isinstance(v, str) for v in refs.values()):
                raise CorruptStore(f"{self.path}: bad entry for {name!r}", subject=self.path)
            out[name] = dict(refs)
        return out

    def _save(self, repos: Repositories) -> None:
        doc = {"Repositories": gojson.sorted_map({k: gojson.sorted_map(v) for k, v in repos.items()})}
        parent = os.path.dirname(self.path)
        if parent:
            fsutil.makedirs(parent, 0o700)
        fsutil.atomic_write(self.path, gojson.marshal(doc), 0o600)

    def initialize(self) -> None:
        """Create ``{"Repositories":{}}`` when the file is absent, as dockerd does at start-up."""
        with self.lock.held():
            if not os.path.exists(self.path):
                self._save({})

    # -- mutations

    def add_tag(self, ref: Reference | str, image_id: str, force: bool = False) -> None:
        """Point a tag at ``image_id`` (``sha256:<hex>``); a bare name gets ``latest``.

        Raises InvalidInput for a digest reference, Conflict if the tag already names another
        image and ``force`` is false (``docker tag`` and pull always force).
        """
        r = _as_ref(ref)
        if r.digest is not None:
            raise InvalidInput("refusing to create a tag with a digest reference", subject=str(r))
        self._add(r.with_default_tag(), image_id, force)

    def add_digest(self, ref: Reference | str, image_id: str, force: bool = False) -> None:
        """Point ``name@digest`` at ``image_id``. A digest reference is never moved: if it already
        names another image this raises Conflict whatever ``force`` says. (Pull checks with
        :meth:`get` first and only logs "Image ID for digest ... changed ..., cannot update".)"""
        r = _as_ref(ref)
        if r.digest is None:
            raise InvalidInput(f"{r.familiar_string()} is not a digest reference", subject=str(r))
        self._add(r, image_id, force)

    def _add(self, ref: Reference, image_id: str, force: bool) -> None:
        _digest.validate(image_id)
        ref = ref.favor_digest()
        name, key = ref.familiar_name, ref.familiar_string()
        if name == "sha256":
            raise InvalidInput(
                "refusing to create an ambiguous tag using digest algorithm as name", subject=key
            )
        with self.lock.held():
            repos = self._load()
            repo = repos.setdefault(name, {})
            old = repo.get(key)
            if old is not None:
                if old == image_id:
                    return  # nothing to do; not even a rewrite, like moby
                if ref.digest is not None:  # force only works for tags
                    raise Conflict(f"Cannot overwrite digest {ref.digest}", subject=key)
                if not force:
                    raise Conflict(
                        f"Conflict: Tag {key} is already set to image {old}, "
                        "if you want to replace it, please use the force option",
                        subject=key,
                    )
            repo[key] = image_id
            self._save(repos)
        trace.emit(lambda: f"reference {key} -> {image_id}")

    def delete(self, ref: Reference | str) -> bool:
        """Remove one reference. True if it existed; False if not (moby returns
        ``ErrDoesNotExist`` there, "reference does not exist": raise NotFound yourself if needed).
        A repository left empty disappears from the file."""
        r = _as_ref(ref).favor_digest().with_default_tag()
        name, key = r.familiar_name, r.familiar_string()
        with self.lock.held():
            repos = self._load()
            repo = repos.get(name)
            if repo is None or key not in repo:
                return False
            old = repo.pop(key)
            if not repo:
                del repos[name]
            self._save(repos)
        trace.emit(lambda: f"reference {key} (was {old}) deleted")
        return True

    # -- queries

    def get(self, ref: Reference | str) -> str:
        """The image ID a reference points to; with tag and digest, the digest wins.

        Raises NotFound("reference does not exist").
        """
        r = _as_ref(ref)
        r = r.favor_digest() if r.digest is not None else r.with_default_tag()
        image_id = self._load().get(r.familiar_name, {}).get(r.familiar_string())
        if image_id is None:
            raise NotFound("reference does not exist", subject=r.familiar_string())
        return image_id

    def references(self, image_id: str) -> list[Reference]:
        """Every reference to ``image_id``, sorted by full string like moby's ``lexicalRefs``."""
        refs: list[Reference] = []
        for repo in self._load().values():
            for key, value in repo.items():
                if value != image_id:
                    continue
                try:
                    refs.append(parse_normalized_named(key))
                except InvalidInput:
                    continue  # moby skips unparsable keys when it loads the file
        refs.sort(key=str)
        return refs

    def references_by_name(self, ref: Reference | str) -> list[tuple[Reference, str]]:
        """``ReferencesByName``: (reference, image ID) for every entry of the repository, sorted."""
        repo = self._load().get(_as_ref(ref).familiar_name, {})
        out: list[tuple[Reference, str]] = []
        for key, value in repo.items():
            try:
                out.append((parse_normalized_named(key), value))
            except InvalidInput:
                return []  # moby: "should never happen", and it returns nil
        out.sort(key=lambda a: str(a[0]))
        return out

    def all(self) -> Repositories:
        """A fresh copy of the whole mapping, both levels key-sorted."""
        repos = self._load()
        return {k: dict(sorted(repos[k].items())) for k in sorted(repos)}
