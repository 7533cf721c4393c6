"""Dockerfile instructions applied to a config without a build: ``import -c``, ``commit -c``.

Docker allows CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME
and WORKDIR here (``BuildFromConfig``). Shell forms run through ``/bin/sh -c`` like in a build.

>>> cfg = apply_changes(container_config(), ['CMD ["sh"]', "ENV A=1 B=2", "WORKDIR /srv"])
>>> cfg["Cmd"], cfg["Env"], cfg["WorkingDir"]
(['sh'], ['A=1', 'B=2'], '/srv')
"""

from __future__ import annotations

import json
import posixpath
import shlex
from typing import Any

from minidocker.errors import InvalidInput
from minidocker.image.config import container_config

ALLOWED = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR"}  # fmt: skip


def _exec_or_shell(rest: str, cfg: dict[str, Any]) -> list[str]:
    """JSON array (exec form) or a shell command wrapped in the config's SHELL."""
    stripped = rest.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    shell = cfg.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, stripped]


def _key_values(rest: str, instruction: str) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` pairs, or the legacy ``K V with spaces`` form."""
    words = shlex.split(rest, posix=True)
    if not words:
        raise InvalidInput(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if not value.strip():
            raise InvalidInput(f"{instruction} requires at least two arguments")
        return [(key, value.strip())]
    pairs = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise InvalidInput(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        pairs.append((key, value))
    return pairs


def apply_changes(cfg: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply Dockerfile-style ``changes`` to a container.Config dict; returns a new dict."""
    fields = dict(cfg)
    for change in changes:
        instruction, _, rest = change.strip().partition(" ")
        op = instruction.upper()
        if op not in ALLOWED:
            raise InvalidInput(f"{instruction} is not a valid change command")
        if op == "CMD":
            fields["Cmd"] = _exec_or_shell(rest, fields)
        elif op == "ENTRYPOINT":
            fields["Entrypoint"] = _exec_or_shell(rest, fields)
            fields["Cmd"] = fields.get("Cmd") if not rest.strip() else None
        elif op == "ENV":
            env = list(fields.get("Env") or [])
            for key, value in _key_values(rest, "ENV"):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            fields["Env"] = env
        elif op == "LABEL":
            labels = dict(fields.get("Labels") or {})
            labels.update(_key_values(rest, "LABEL"))
            fields["Labels"] = labels
        elif op == "EXPOSE":
            ports = dict(fields.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else f"{p}/tcp"] = {}
            fields["ExposedPorts"] = ports
        elif op == "VOLUME":
            vols = dict(fields.get("Volumes") or {})
            stripped = rest.strip()
            items = json.loads(stripped) if stripped.startswith("[") else stripped.split()
            for v in items:
                vols[v] = {}
            fields["Volumes"] = vols
        elif op == "WORKDIR":
            wd = rest.strip()
            fields["WorkingDir"] = posixpath.join(fields.get("WorkingDir") or "/", wd)
        elif op == "USER":
            fields["User"] = rest.strip()
        elif op == "STOPSIGNAL":
            fields["StopSignal"] = rest.strip()
        elif op == "ONBUILD":
            fields["OnBuild"] = [*(fields.get("OnBuild") or []), rest.strip()]
        elif op == "HEALTHCHECK":
            raise InvalidInput("HEALTHCHECK changes are not supported yet")
    return container_config(**fields)
