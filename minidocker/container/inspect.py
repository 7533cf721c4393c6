"""What the daemon answers about containers: ``docker inspect`` (ContainerJSON) and ``docker ps``
(the ``types.Container`` summaries and their filters), in Docker 20.10's shapes and key order.

The CLI formats these (tables, templates); nothing here prints.

Use::

    doc = container_json(c, stores)            # one element of `inspect`'s list
    rows = list_containers(runtime.list(), stores, all_=True, filters={"status": ["exited"]})
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

from minidocker import gojson
from minidocker.container.state import Container, EndpointSettings
from minidocker.errors import InvalidInput, MinidockerError, NotFound
from minidocker.image.store import Stores

VALID_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
# filters `docker ps` accepts (daemon/list.go acceptedPsFilterTags)
PS_FILTERS = ("ancestor", "before", "expose", "exited", "health", "id", "label", "name", "status",
              "since", "volume", "network", "is-task", "publish")  # fmt: skip
SUPPORTED_FILTERS = ("ancestor", "exited", "id", "label", "name", "status")


# -- inspect -------------------------------------------------------------------------------------
def state_json(c: Container) -> dict[str, Any]:
    """``types.ContainerState``: the stored state plus ``Status``; ``Health`` only when set."""
    st = c.state
    out: dict[str, Any] = {
        "Status": st.status(),
        "Running": st.running,
        "Paused": st.paused,
        "Restarting": st.restarting,
        "OOMKilled": st.oom_killed,
        "Dead": st.dead,
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": st.started_at,
        "FinishedAt": st.finished_at,
    }
    if st.health is not None:
        out["Health"] = st.health
    return out


def _resolve_lower(home: str, entry: str) -> str:
    # dockerd's getLowerDirs: each l/<link> is read back to its ../<id>/diff target
    try:
        target = os.readlink(os.path.join(home, entry))
    except OSError:
        return os.path.join(home, entry)
    return os.path.normpath(os.path.join(home, "l", target))


def graph_driver(c: Container, stores: Stores) -> dict[str, Any]:
    """``GraphDriver`` of the container's RW layer: overlay2's ``GetMetadata`` (a Go map, keys
    sorted): the init layer's diff then the image layers' diffs as ``LowerDir``."""
    d = stores.driver
    try:
        mount = stores.layers.get_mount(c.id)
    except (FileNotFoundError, NotFound, MinidockerError, ValueError):
        return {"Data": None, "Name": c.driver or "overlay2"}
    data: dict[str, str] = {}
    lowers = d.lower(mount.mount_id)
    if lowers:
        data["LowerDir"] = ":".join(_resolve_lower(d.home, e) for e in lowers)
    data["MergedDir"] = os.path.join(d.dir(mount.mount_id), "merged")
    data["UpperDir"] = d.diff_path(mount.mount_id)
    data["WorkDir"] = os.path.join(d.dir(mount.mount_id), "work")
    return {"Data": data, "Name": c.driver or "overlay2"}


def mount_points(c: Container, stores: Stores) -> list[dict[str, Any]]:
    """``Mounts``: each stored ``volume.MountPoint`` as a ``types.MountPoint`` (``Mode`` is the
    stored ``Relabel``; a volume's ``Source`` is its ``_data`` dir), by destination."""
    out = []
    for dest in sorted(c.mount_points):
        m = c.mount_points[dest]
        source = m.get("Source") or ""
        if m.get("Type") == "volume" and not source and m.get("Name"):
            source = os.path.join(stores.root, "volumes", m["Name"], "_data")
        mp: dict[str, Any] = {}
        if m.get("Type"):
            mp["Type"] = m["Type"]
        if m.get("Name"):
            mp["Name"] = m["Name"]
        mp["Source"] = source
        mp["Destination"] = m.get("Destination") or dest
        if m.get("Driver"):
            mp["Driver"] = m["Driver"]
        mp["Mode"] = m.get("Relabel") or ""
        mp["RW"] = bool(m.get("RW"))
        mp["Propagation"] = m.get("Propagation") or ""
        out.append(mp)
    return out


def _endpoint_json(ep: EndpointSettings) -> dict[str, Any]:
    go = ep.to_go()
    go.pop("IPAMOperational", None)  # daemon-internal, not in the API's EndpointSettings
    return go


def network_settings_json(c: Container) -> dict[str, Any]:
    """``types.NetworkSettings``: the base fields, the ``bridge`` endpoint's addresses as the
    legacy top-level fields, and every network's endpoint (a sorted map)."""
    ns = c.network_settings
    nets = ns.networks or {}
    bridge = nets.get("bridge") or EndpointSettings()
    return {
        "Bridge": ns.bridge,
        "SandboxID": ns.sandbox_id,
        "HairpinMode": ns.hairpin_mode,
        "LinkLocalIPv6Address": ns.link_local_ipv6_address,
        "LinkLocalIPv6PrefixLen": ns.link_local_ipv6_prefix_len,
        # always a map in the API, even before the first start
        "Ports": gojson.sorted_map(
            {k: None if v is None else [b.to_go() for b in v] for k, v in (ns.ports or {}).items()}
        ),
        "SandboxKey": ns.sandbox_key,
        "SecondaryIPAddresses": ns.secondary_ip_addresses,
        "SecondaryIPv6Addresses": ns.secondary_ipv6_addresses,
        "EndpointID": bridge.endpoint_id,
        "Gateway": bridge.gateway,
        "GlobalIPv6Address": bridge.global_ipv6_address,
        "GlobalIPv6PrefixLen": bridge.global_ipv6_prefix_len,
        "IPAddress": bridge.ip_address,
        "IPPrefixLen": bridge.ip_prefix_len,
        "IPv6Gateway": bridge.ipv6_gateway,
        "MacAddress": bridge.mac_address,
        "Networks": gojson.sorted_map({k: _endpoint_json(v) for k, v in nets.items()}),
    }


def container_json(c: Container, stores: Stores, *, size: bool = False) -> dict[str, Any]:
    """``docker inspect <container>``: Docker 20.10's ``types.ContainerJSON``, key for key.

    ``size`` adds ``SizeRw``/``SizeRootFs`` (``inspect --size``).
    """
    doc: dict[str, Any] = {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state_json(c),
        "Image": c.image,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": c.log_path,
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": c.driver,
        "Platform": c.os,
        "MountLabel": c.mount_label,
        "ProcessLabel": c.process_label,
        "AppArmorProfile": c.app_armor_profile,
        "ExecIDs": None,
        "HostConfig": c.host_config.to_go(),
        "GraphDriver": graph_driver(c, stores),
    }
    if size:
        rw, root = sizes(c, stores)
        doc["SizeRw"] = rw
        doc["SizeRootFs"] = root
    doc["Mounts"] = mount_points(c, stores)
    doc["Config"] = c.config
    doc["NetworkSettings"] = network_settings_json(c)
    return doc


def sizes(c: Container, stores: Stores) -> tuple[int, int]:
    """(``SizeRw``, ``SizeRootFs``): bytes in the RW layer's diff, and that plus the image."""
    from minidocker.image.images import image_size
    from minidocker.storage.overlay2 import directory_size

    rw = 0
    with contextlib.suppress(Exception):
        rw = directory_size(stores.driver.diff_path(stores.layers.get_mount(c.id).mount_id))
    image = 0
    with contextlib.suppress(Exception):
        image = image_size(stores, c.image)
    return rw, rw + image


# -- ps ------------------------------------------------------------------------------------------
def command_line(c: Container) -> str:
    """``Command`` of ``ps``: Path and Args, an argument with a space in single quotes."""
    if not c.args:
        return c.path
    return c.path + " " + " ".join(f"'{a}'" if " " in a else a for a in c.args)


def _ports(c: Container) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for port, bindings in (c.network_settings.ports or {}).items():
        num, _, proto = port.partition("/")
        try:
            private = int(num)
        except ValueError:
            continue
        if not bindings:
            out.append({"PrivatePort": private, "Type": proto or "tcp"})
            continue
        for b in bindings:
            try:
                public = int(b.host_port)
            except ValueError:
                continue
            p: dict[str, Any] = {"PrivatePort": private, "PublicPort": public, "Type": proto or "tcp"}
            if b.host_ip:
                p = {"IP": b.host_ip, **p}
            out.append(p)
    return out


def _image_column(c: Container, stores: Stores) -> str:
    """The image as the user typed it, or the image id once that name points elsewhere."""
    from minidocker.image.images import resolve

    typed = c.config.get("Image") or ""
    if typed and typed != c.image:
        try:
            if resolve(stores, typed) == c.image:
                return str(typed)
        except MinidockerError:
            pass
        return c.image
    return typed or c.image


def summary(c: Container, stores: Stores, *, size: bool = False, now: float | None = None) -> dict[str, Any]:
    """One ``types.Container`` as ``GET /containers/json`` returns it (``now``: the clock, seconds)."""
    out: dict[str, Any] = {
        "Id": c.id,
        "Names": [c.name],
        "Image": _image_column(c, stores),
        "ImageID": c.image,
        "Command": command_line(c),
        "Created": gojson.parse_rfc3339(c.created) // 1_000_000_000,
        "Ports": _ports(c),
        "Labels": c.config.get("Labels") or {},
        "State": c.state.status(),
        "Status": c.state.describe(None if now is None else int(now * 1e9)),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {
            "Networks": {k: _endpoint_json(v) for k, v in (c.network_settings.networks or {}).items()}
        },
        "Mounts": mount_points(c, stores),
    }
    if size:
        rw, root = sizes(c, stores)
        out["SizeRw"] = rw
        out["SizeRootFs"] = root
    return out


def parse_filters(specs: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """``-f key=value`` flags to a filter map; unknown keys fail like the daemon.

    >>> parse_filters(["status=exited", "name=web"])
    {'status': ['exited'], 'name': ['web']}
    """
    out: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep:
            raise InvalidInput(f"bad format of filter (expected name=value): {spec}")
        key = key.strip().lower()
        if key not in PS_FILTERS:
            raise InvalidInput(f"Invalid filter '{key}'")
        if key not in SUPPORTED_FILTERS:
            raise InvalidInput(f"filter '{key}' is not supported by minidocker yet")
        out.setdefault(key, []).append(value)
    for v in out.get("status", []):
        if v not in VALID_STATES:
            raise InvalidInput(f"Invalid filter 'status={v}'")
    for v in out.get("exited", []):
        try:
            int(v)
        except ValueError:
            raise InvalidInput(f"Invalid filter 'exited={v}'") from None
    return out


def _match(patterns: list[str], source: str) -> bool:
    # filters.Args.Match: exact, else any pattern as an (unanchored) regular expression
    for p in patterns:
        if p == source:
            return True
        with contextlib.suppress(re.error):
            if re.search(p, source):
                return True
    return False


def _label_match(wanted: list[str], labels: dict[str, str]) -> bool:
    for w in wanted:
        k, sep, v = w.partition("=")
        if k not in labels or (sep and labels[k] != v):
            return False
    return True


def select(
    containers: list[Container],
    *,
    all_: bool = False,
    filters: dict[str, list[str]] | None = None,
    last: int = -1,
) -> list[Container]:
    """``daemon.Containers``: running ones unless ``all_``, the filters (AND between keys, OR
    within a key), the newest ``last`` when ``last > 0``. ``containers`` newest first."""
    filters = filters or {}
    if "status" in filters or last > 0:
        all_ = True  # a status filter or -n looks at every container
    out: list[Container] = []
    for c in containers:
        if last > 0 and len(out) >= last:
            break
        status = c.state.status()
        if not all_ and status not in ("running", "paused", "restarting"):
            continue
        if "id" in filters and not _match(filters["id"], c.id):
            continue
        if "name" in filters and not _match(filters["name"], c.name):
            continue
        if "status" in filters and status not in filters["status"]:
            continue
        if "exited" in filters and (status != "exited" or str(c.state.exit_code) not in filters["exited"]):
            continue
        if "label" in filters and not _label_match(filters["label"], c.config.get("Labels") or {}):
            continue
        if "ancestor" in filters and not any(
            a in (c.config.get("Image"), c.image) or c.image.removeprefix("sha256:").startswith(a)
            for a in filters["ancestor"]
        ):
            continue
        out.append(c)
    return out
