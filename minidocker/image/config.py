"""Image configs as Docker writes them for locally created images (import, commit, build, buildbase).

Docker marshals its ``image.Image`` struct and then re-marshals it through a map, so the
*top-level* keys come out sorted while nested ``config``/``container_config`` keep the field
order of ``container.Config`` (shared/docker-layout.md section 1.1). Pulled and loaded images keep
the registry's bytes untouched; only configs we create go through here.

>>> cfg = container_config(Cmd=["sh"])
>>> list(cfg)[:3]
['Hostname', 'Domainname', 'User']
"""

from __future__ import annotations

import os

from minidocker import DOCKER_VERSION, gojson

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

# container.Config in Go declaration order; True marks `omitempty` fields.
_CONTAINER_CONFIG_FIELDS: list[tuple[str, Any, bool]] = [
    ("Hostname", "", False),
    ("Domainname", "", False),
    ("User", "", False),
    ("AttachStdin", False, False),
    ("AttachStdout", False, False),
    ("AttachStderr", False, False),
    ("ExposedPorts", None, True),
    ("Tty", False, False),
    ("OpenStdin", False, False),
    ("StdinOnce", False, False),
    ("Env", None, False),
    ("Cmd", None, False),
    ("Healthcheck", None, True),
    ("ArgsEscaped", False, True),
    ("Image", "", False),
    ("Volumes", None, False),
    ("WorkingDir", "", False),
    ("Entrypoint", None, False),
    ("NetworkDisabled", False, True),
    ("MacAddress", "", True),
    ("OnBuild", None, False),
    ("Labels", None, False),
    ("StopSignal", "", True),
    ("StopTimeout", None, True),
    ("Shell", None, True),
]
_MAP_FIELDS = {"ExposedPorts", "Volumes", "Labels"}  # Go maps: keys sorted on output


def container_config(**fields: Any) -> dict[str, Any]:
    """A ``container.Config`` dict in Go field order with Go's omitempty rules applied."""
    unknown = set(fields) - {name for name, _, _ in _CONTAINER_CONFIG_FIELDS}
    if unknown:
        raise TypeError(f"unknown container.Config fields: {sorted(unknown)}")
    out: dict[str, Any] = {}
    for name, zero, omitempty in _CONTAINER_CONFIG_FIELDS:
        value = fields.get(name, zero)
        if omitempty and (value is None or value is False or value == "" or value == {} or value == []):
            continue
        if name in _MAP_FIELDS and isinstance(value, dict):
            value = gojson.sorted_map(value)
        out[name] = value
    return out


def normalize_container_config(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    """Re-order a parsed container.Config (e.g. from a loaded image) into Go field order."""
    if cfg is None:
        return None
    return container_config(
        **{k: v for k, v in cfg.items() if k in {n for n, _, _ in _CONTAINER_CONFIG_FIELDS}}
    )


def go_arch() -> str:
    """runtime.GOARCH of this machine."""
    machine = os.uname().machine.lower()  # platform.machine(), without importing platform
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}.get(
        machine, machine
    )


def history_entry(
    created: str,
    *,
    author: str = "",
    created_by: str = "",
    comment: str = "",
    empty_layer: bool = False,
) -> dict[str, Any]:
    """An ``image.History`` item: created, author?, created_by?, comment?, empty_layer?."""
    out: dict[str, Any] = {"created": created}
    if author:
        out["author"] = author
    if created_by:
        out["created_by"] = created_by
    if comment:
        out["comment"] = comment
    if empty_layer:
        out["empty_layer"] = True
    return out


def image_config(
    *,
    config: dict[str, Any] | None,
    diff_ids: list[str],
    history: list[dict[str, Any]],
    created: str,
    comment: str = "",
    author: str = "",
    container: str = "",
    container_cfg: dict[str, Any] | None = None,
    parent: str = "",
) -> bytes:
    """Serialise an ``image.Image`` exactly as dockerd does for locally created images."""
    image: dict[str, Any] = {
        "architecture": go_arch(),
        "config": config,
        "container_config": container_cfg if container_cfg is not None else container_config(),
        "created": created,
        "docker_version": DOCKER_VERSION,
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    if config is None:
        del image["config"]
    if comment:
        image["comment"] = comment
    if author:
        image["author"] = author
    if container:
        image["container"] = container
    if parent:
        image["parent"] = parent
    return gojson.canonical_top_level(image)
