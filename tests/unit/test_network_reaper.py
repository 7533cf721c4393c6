"""Chapter 6's grace period without root: the linger setting, the deadline file, who owns it, and
the reaper's decisions with the kernel work stubbed (minidocker.network.reaper)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from minidocker import trace
from minidocker.fsutil import DataRootLock
from minidocker.network import bridge, netlink, reaper
from minidocker.network.store import DEFAULT_NETWORK, NetworkStore


@pytest.fixture
def root(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    r = str(tmp_path)
    store = NetworkStore(r, DataRootLock(r))
    store.ensure_predefined()
    net = store.get(DEFAULT_NETWORK)
    net["IPAM"]["Config"] = [{"Subnet": "172.31.0.0/16", "Gateway": "172.31.0.1"}]
    store.save(net)
    taken: list[str] = []
    monkeypatch.setattr(bridge, "_take_down", lambda n: taken.append(bridge.bridge_of(n)))
    monkeypatch.setattr(netlink, "HOST_LOCK", os.path.join(r, "host.lock"))
    monkeypatch.setattr(reaper, "_site", lambda: None)
    monkeypatch.setattr(reaper, "taken", taken, raising=False)
    return r


def test_linger_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(reaper.ENV, raising=False)
    assert reaper.linger_seconds() == reaper.DEFAULT_LINGER
    monkeypatch.setenv(reaper.ENV, "0")
    assert reaper.linger_seconds() == 0.0
    assert reaper.linger_seconds("nan") == reaper.DEFAULT_LINGER


def test_schedule_asks_for_a_reaper_only_when_none_is_alive(root: str) -> None:
    assert reaper.schedule(root, 2.0)  # nobody owns the deadline: spawn one
    state = reaper.read_state(root)
    assert state and state["reaper"] == 0 and state["deadline"] > time.time() + 1.5
    # a live owner (a process whose command line names the reaper module): no second reaper
    with open(reaper.state_path(root), "w") as f:
        json.dump({"deadline": 0, "reaper": os.getpid()}, f)
    assert reaper.schedule(root, 2.0)  # ourselves: never taken for a reaper
    assert not reaper.alive(os.getpid())  # pytest's command line does not name the module
    assert not reaper.alive(0)


def test_the_reaper_removes_an_unused_bridge_at_its_deadline(root: str) -> None:
    reaper.schedule(root, 0.2)
    with trace.capture() as events:
        assert reaper.reap(root, "mdbrtest", "172.31.0.0/16") == "removed"
    assert reaper.taken == [bridge.bridge_of(NetworkStore(root, DataRootLock(root)).get("bridge"))]  # type: ignore[attr-defined]
    assert NetworkStore(root, DataRootLock(root)).get("bridge")["IPAM"]["Config"] == []
    assert reaper.read_state(root) is None
    assert any("lingers" in e for e in events) and any("removing it" in e for e in events)


def test_the_reaper_leaves_a_used_bridge(root: str) -> None:
    store = NetworkStore(root, DataRootLock(root))
    net = store.get(DEFAULT_NETWORK)
    net["Endpoints"] = {"c" * 64: {"IPAddress": "172.31.0.2"}}
    store.save(net)
    reaper.schedule(root, 0.0)
    assert reaper.reap(root, "mdbrtest", "172.31.0.0/16") == "in use"
    assert reaper.taken == []  # type: ignore[attr-defined]
    assert reaper.read_state(root) is None
    assert store.get(DEFAULT_NETWORK)["IPAM"]["Config"]  # the subnet stays with its bridge


def test_the_reaper_has_nothing_to_do_after_a_prune(root: str) -> None:
    reaper.schedule(root, 0.0)
    reaper.clear_state(root)  # network prune took the bridge down meanwhile
    assert reaper.reap(root, "mdbrtest", "172.31.0.0/16") == "gone"
    assert reaper.taken == []  # type: ignore[attr-defined]
