"""Manifests, manifest lists and OCI indexes: what a registry serves, checked before it is trusted.

A manifest names one image: its config blob (whose sha256 is the image ID) and its layer blobs
(compressed tars). A list/index names one manifest per platform. Docker refuses schema 1 and
never picks the parser from the HTTP Content-Type alone (CVE-2021-41190): a document with
``manifests`` must not also have ``layers``/``config``, and a ``mediaType`` field must agree.

>>> m = parse(b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"x","size":2,'
...           b'"digest":"sha256:%s"},"layers":[]}' % (DOCKER_MANIFEST.encode(), b"a" * 64))
>>> m.config.size, m.layers
(2, [])
"""

from __future__ import annotations

import json
import platform as _platform
import re
from dataclasses import dataclass, field
from typing import Any

from minidocker.errors import InvalidInput, NotFound
from minidocker.image import digest as _digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Every type Docker sends in Accept (one header line each: a single header may get schema 1 back).
ACCEPT = (DOCKER_MANIFEST, DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, *SCHEMA1[1:], "application/json")
# 4 MiB, as Docker/containers' ``MaxManifestBodySize`` and the registry's own PUT limit (a registry
# never serves more unless it is broken or hostile; containerd's 4*1048*1048 is the same idea)
MAX_MANIFEST_SIZE = 4 << 20
LAYER_TYPES_SKIPPED = ("application/vnd.oci.image.layer.nondistributable",
                       "application/vnd.docker.image.rootfs.foreign")  # fmt: skip


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    urls: list[str] = field(default_factory=list)

    @classmethod
    def decode(cls, obj: Any, what: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidInput(f"malformed manifest: {what} is not an object")
        dgst, size = obj.get("digest"), obj.get("size")
        if not isinstance(dgst, str) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"malformed manifest: {what} needs a digest and a size")
        _digest.validate(dgst)  # G5: before it is ever a path component
        plat = obj.get("platform")
        return cls(str(obj.get("mediaType") or ""), dgst, size, plat if isinstance(plat, dict) else None,
                   list(obj.get("urls") or []))  # fmt: skip


@dataclass(frozen=True)
class Manifest:
    """A single-image manifest (Docker schema 2 or OCI)."""

    media_type: str
    config: Descriptor
    layers: list[Descriptor]


@dataclass(frozen=True)
class Index:
    """A Docker manifest list or an OCI index."""

    media_type: str
    manifests: list[Descriptor]


def parse(raw: bytes, content_type: str = "") -> Manifest | Index:
    """Parse and validate a manifest body (never re-serialised: its digest is of these bytes)."""
    if len(raw) > MAX_MANIFEST_SIZE:
        raise InvalidInput(f"rejecting {len(raw)} byte manifest: larger than {MAX_MANIFEST_SIZE}")
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise InvalidInput(f"malformed manifest: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("malformed manifest: not a JSON object")
    media = doc.get("mediaType") or ""
    if not isinstance(media, str):
        raise InvalidInput("malformed manifest: mediaType is not a string")
    ct = content_type.split(";")[0].strip()
    if media in SCHEMA1 or ct in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise InvalidInput(
            "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
            "support is disabled by default: this image must be re-pushed with a newer format"
        )
    if media.startswith("application/vnd.docker.ai."):
        raise InvalidInput(f"unsupported manifest media type {media}")
    if doc.get("schemaVersion") != 2:
        raise InvalidInput(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
    has_list = "manifests" in doc
    has_image = "layers" in doc or "config" in doc
    if has_list and has_image:  # CVE-2021-41190: one digest, one meaning
        raise InvalidInput("malformed manifest: has both 'manifests' and 'layers'/'config'")
    kind = media or ct
    if has_list:
        if media and media not in (DOCKER_LIST, OCI_INDEX):
            raise InvalidInput(f"malformed manifest: mediaType {media} on an index")
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise InvalidInput("malformed manifest: 'manifests' is not a list")
        return Index(
            kind or OCI_INDEX, [Descriptor.decode(m, f"manifests[{i}]") for i, m in enumerate(items)]
        )
    if media and media not in (DOCKER_MANIFEST, OCI_MANIFEST):
        raise InvalidInput(f"unsupported manifest media type {media}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidInput("malformed manifest: 'layers' is not a list")
    config = Descriptor.decode(doc.get("config"), "config")
    return Manifest(kind or OCI_MANIFEST, config,
                    [Descriptor.decode(x, f"layers[{i}]") for i, x in enumerate(layers)])  # fmt: skip


# -- platforms -------------------------------------------------------------------------------------
_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
         "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}  # fmt: skip


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)


def normalize(p: Platform) -> Platform:
    """containerd's ``platforms.Normalize`` (the 1.4/1.5 one Docker 20.10 uses): ``aarch64`` and
    ``arm64`` mean ``arm64/v8``, ``arm`` means ``arm/v7``, a bare variant number gets its ``v``,
    ``armhf``/``armel`` are ``arm/v7``/``arm/v6``, ``x86_64`` is ``amd64``.

    >>> [str(normalize(Platform("Linux", a, v))) for a, v in
    ...  [("aarch64", ""), ("arm64", "8"), ("arm", ""), ("arm", "6"), ("armel", ""), ("x86_64", "")]]
    ['linux/arm64/v8', 'linux/arm64/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v6', 'linux/amd64']
    """
    raw, variant = p.architecture.lower(), p.variant.lower()
    arch = _ARCH.get(raw, raw)
    if raw == "armhf":
        variant = "v7"
    elif raw == "armel":
        variant = "v6"
    if arch == "arm64" and variant in ("", "8"):
        variant = "v8"
    elif arch == "arm" and variant in ("", "7"):
        variant = "v7"
    elif arch == "arm" and variant in ("5", "6", "8"):
        variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(p.os.lower(), arch, variant)


def host_platform() -> Platform:
    machine = _platform.machine()
    variant = "v6" if machine == "armv6l" else ""
    return normalize(Platform("linux", _ARCH.get(machine, machine), variant))


_KNOWN_OS = ("aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux",
             "netbsd", "openbsd", "plan9", "solaris", "windows")  # fmt: skip
_KNOWN_ARCH = ("386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle",
               "ppc64", "ppc64le", "riscv64", "s390x", "wasm", *_ARCH)  # fmt: skip


def parse_platform(spec: str) -> Platform:
    """``--platform os/arch[/variant]``, as containerd's ``platforms.Parse``: one part alone is an
    OS (with the host's architecture) or an architecture (on the host's OS).

    >>> str(parse_platform("linux/arm64")), str(parse_platform("linux/arm/6"))
    ('linux/arm64/v8', 'linux/arm/v6')
    >>> str(parse_platform("arm64"))
    'linux/arm64/v8'
    """
    parts = spec.strip().lower().split("/")
    bad = InvalidInput(f'"{spec}": unknown operating system or architecture: invalid argument', subject=spec)
    if len(parts) > 3 or not all(re.fullmatch(r"[a-z0-9_-]+", x) for x in parts):
        raise bad
    if len(parts) == 1:
        host = host_platform()
        if parts[0] in _KNOWN_OS:
            return Platform(parts[0], host.architecture, host.variant)
        if parts[0] in _KNOWN_ARCH:
            return normalize(Platform(host.os, parts[0]))
        raise bad
    return normalize(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def select(index: Index, want: Platform) -> Descriptor:
    """The first entry (in list order) matching ``want``; for 32-bit arm, retry ignoring the variant.

    Entries of unknown media types are skipped (the OCI spec requires it).
    """
    want = normalize(want)
    usable = [
        d for d in index.manifests if d.media_type in ("", DOCKER_MANIFEST, OCI_MANIFEST) and d.platform
    ]

    def of(d: Descriptor) -> Platform:
        p = d.platform or {}
        return normalize(
            Platform(str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", "")))
        )

    for d in usable:
        if of(d) == want:
            return d
    if want.architecture == "arm":  # moby's backwards-compatible retry is for 32-bit arm only
        for d in usable:
            if (of(d).os, of(d).architecture) == (want.os, want.architecture):
                return d
    raise NotFound(f"no matching manifest for {want} in the manifest list entries")
