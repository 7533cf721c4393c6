"""Chapter 6: bridge networks. A Linux bridge per network, a veth pair per container, IPAM,
iptables rules in our own chains, all undone when the last user is gone.

A container on a bridge network goes through three steps, split so a failure anywhere leaves
nothing behind (the runtime's teardown calls :func:`release`, which undoes whatever exists)::

    ep = allocate(stores, cid, "bridge")     # address reserved in the network's record (locked)
    ...                                      # /etc/hosts written with ep.ip; container created
    attach(stores, ep, pid)                  # bridge up (first use), veth, eth0, /run/netns/<id>
    ...
    release(stores, cid)                     # veth, /run/netns, address; the default bridge and
                                             # our iptables chains when nobody needs them any more

User networks (``network create``) have their bridge and rules from creation to ``network rm``;
the default ``bridge`` network brings its Linux bridge up at first use and takes it down a grace
period (``$MINIDOCKER_BRIDGE_LINGER``, 2 s) after its last container, through a detached reaper
(:mod:`minidocker.network.reaper`): a ``run`` meanwhile reuses it, and shortly after the last
container a host carries none of our links or rules.

The code is in :mod:`minidocker.network.bridge`; this package gives its names lazily (PEP 562),
so that ``run`` can import :mod:`minidocker.network.helper` first thing and fork the pyroute2
helper without first loading the chapter (dataclasses, ipaddress, the stores: 15-35 ms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minidocker.network.bridge import (
        BRIDGE_NAME_OPT,
        ERR_ALIAS,
        ERR_HOST,
        ERR_IP,
        ERR_NONE,
        ERR_SHARED,
        Endpoint,
        allocate,
        allocate_all,
        attach,
        bridge_of,
        check_endpoint_options,
        connect,
        create_network,
        disconnect,
        endpoints_of,
        inspect_doc,
        is_bridge_mode,
        network_name,
        prune_default,
        release,
        remove_network,
    )
    from minidocker.network.store import (
        DEFAULT_NETWORK,
        PREDEFINED,
        NetworkNotFound,
        NetworkSpec,
        NetworkStore,
    )

__all__ = [
    "BRIDGE_NAME_OPT",
    "DEFAULT_NETWORK",
    "ERR_ALIAS",
    "ERR_HOST",
    "ERR_IP",
    "ERR_NONE",
    "ERR_SHARED",
    "PREDEFINED",
    "Endpoint",
    "NetworkNotFound",
    "NetworkSpec",
    "NetworkStore",
    "allocate",
    "allocate_all",
    "attach",
    "bridge_of",
    "check_endpoint_options",
    "connect",
    "create_network",
    "disconnect",
    "endpoints_of",
    "inspect_doc",
    "is_bridge_mode",
    "network_name",
    "prune_default",
    "release",
    "remove_network",
]

# submodules: never answered here, so ``from minidocker.network import helper`` imports just that
_SUBMODULES = frozenset({"bridge", "helper", "ipam", "iptables", "names", "netlink", "reaper", "store"})


def __getattr__(name: str) -> Any:
    if name.startswith("__") or name in _SUBMODULES:
        raise AttributeError(name)
    from minidocker.network import bridge

    try:
        return getattr(bridge, name)
    except AttributeError:
        raise AttributeError(f"module 'minidocker.network' has no attribute {name!r}") from None
