"""Port mapping (chapter 7): -p/--expose parsing like nat.ParsePortSpecs, what gets published,
the iptables rules of a mapping, and the userland proxy's sockets (127.0.0.1 only, no root)."""

from __future__ import annotations

import socket
import threading

import pytest

from minidocker import portmap
from minidocker.container.create import RunOptions, container_config, host_config
from minidocker.errors import Conflict, InvalidInput
from minidocker.portmap import proxy
from minidocker.portmap.spec import parse_expose, parse_port_spec, parse_port_specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [("80/tcp", ("", ""))]),
        ("8080:80", [("80/tcp", ("", "8080"))]),
        ("127.0.0.1:8080:80/udp", [("80/udp", ("127.0.0.1", "8080"))]),
        ("127.0.0.1::80", [("80/tcp", ("127.0.0.1", ""))]),
        ("80/", [("80/tcp", ("", ""))]),
        ("8000-8001:80-81", [("80/tcp", ("", "8000")), ("81/tcp", ("", "8001"))]),
        ("8000-8010:80", [("80/tcp", ("", "8000-8010"))]),
        ("[::1]:8080:80", [("80/tcp", ("::1", "8080"))]),
        ("80/SCTP", [("80/sctp", ("", ""))]),
    ],
)
def test_parse_port_spec_shapes(spec: str, expected: list[tuple[str, tuple[str, str]]]) -> None:
    assert parse_port_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("abc", "Invalid containerPort: abc"),
        ("x:80", "Invalid hostPort: x"),
        ("1.2.3:8080:80", "Invalid ip address: 1.2.3"),
        ("8080:", "No port specified: 8080:<empty>"),
        ("80/icmp", "Invalid proto: icmp"),
        ("8000-8002:80-81", "Invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
        ("70000", "Invalid containerPort: 70000"),
    ],
)
def test_parse_port_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_port_spec(spec)
    assert str(e.value) == message


def test_parse_port_specs_merges_bindings_of_one_port() -> None:
    exposed, bindings = parse_port_specs(["8080:80", "127.0.0.1:8081:80", "53/udp"])
    assert exposed == {"80/tcp": {}, "53/udp": {}}
    assert bindings == {"80/tcp": [("", "8080"), ("127.0.0.1", "8081")], "53/udp": [("", "")]}


def test_parse_expose() -> None:
    assert parse_expose(["80", "7000-7001/udp"]) == {"80/tcp": {}, "7000/udp": {}, "7001/udp": {}}
    with pytest.raises(InvalidInput, match="invalid port format for --expose: 1:2"):
        parse_expose(["1:2"])
    with pytest.raises(InvalidInput, match="invalid range format for --expose: x"):
        parse_expose(["x"])


def test_run_options_become_docker_shapes() -> None:
    opts = RunOptions(image="busybox", publish=["127.0.0.1:8080:80"], expose=["443"], publish_all=True)
    hc = host_config(opts, cgroup_v2=False).to_go()
    assert hc["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert hc["PublishAllPorts"] is True
    cfg = container_config(opts, {"ExposedPorts": {"9000/tcp": {}}})
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}, "9000/tcp": {}}
    plain = host_config(RunOptions(image="busybox"), cgroup_v2=False).to_go()
    assert plain["PortBindings"] == {} and plain["PublishAllPorts"] is False


def test_requested_bindings_and_publish_all() -> None:
    exposed = {"80/tcp": {}, "443/tcp": {}, "53/udp": {}}
    got = portmap.requested(exposed, {"80/tcp": [("127.0.0.1", "8080"), ("", "")]}, False, v6=False)
    assert [(m.key, m.host_ip, m.host_port) for m in got] == [
        ("80/tcp", "127.0.0.1", 8080),
        ("80/tcp", "0.0.0.0", 0),
    ]
    got = portmap.requested(exposed, {"80/tcp": [("", "8080")]}, True, v6=False)
    assert [(m.key, m.host_port) for m in got] == [("53/udp", 0), ("80/tcp", 8080), ("443/tcp", 0)]
    ranged = portmap.requested(None, {"80/tcp": [("", "8000-8010")]}, False, v6=False)[0]
    assert (ranged.host_port, ranged.host_port_end) == (8000, 8010)
    with pytest.raises(InvalidInput, match="Invalid ip address"):
        portmap.requested(None, {"80/tcp": [("nohost", "8080")]}, False)


def test_ipv6_bindings_like_docker_20_10() -> None:
    """No HostIp: 0.0.0.0 plus a "::" twin (when the host listens on IPv6); an explicit IPv6
    HostIp is kept as given. Neither gets an iptables rule: the userland proxy serves them."""
    got = portmap.requested(None, {"80/tcp": [("", "8080"), ("::1", "9090")]}, False, v6=True)
    assert [(m.host_ip, m.host_port, m.implicit, m.ipv6) for m in got] == [
        ("0.0.0.0", 8080, False, False),
        ("::", 8080, True, True),
        ("::1", 9090, False, True),
    ]
    assert portmap.port_rules(got[1], "10.1.0.2", "br0") == []
    assert portmap.port_rules(got[2], "10.1.0.2", "br0") == []
    assert len(portmap.port_rules(got[0], "10.1.0.2", "br0")) == 3
    # the bracketed form is what -p [::1]:8080:80 records
    assert portmap.requested(None, {"80/tcp": [("[::1]", "1")]}, False, v6=True)[0].host_ip == "::1"
    assert [m.host_ip for m in portmap.requested(None, {"53/sctp": [("", "")]}, False, v6=True)] == [
        "0.0.0.0"
    ]


def test_bind_gives_the_ipv6_twin_its_ipv4_port() -> None:
    wanted = portmap.requested(None, {"80/tcp": [("127.0.0.1", "")], "81/tcp": [("", "")]}, False, v6=True)
    assert [m.host_ip for m in wanted] == ["127.0.0.1", "0.0.0.0", "::"]
    bound = portmap.bind(wanted)
    try:
        assert [m.host_ip for m in bound] == ["127.0.0.1", "0.0.0.0", "::"]
        assert bound[1].host_port == bound[2].host_port != 0
        assert bound[2].sock is not None and bound[2].sock.family.name == "AF_INET6"
    finally:
        portmap.close(bound)


def test_port_settings_records_exposed_only_ports_as_null() -> None:
    got = portmap.port_settings({"80/tcp": {}, "443/tcp": {}}, [portmap.Mapping("tcp", 80, "0.0.0.0", 49153)])
    assert got == {"80/tcp": [("0.0.0.0", "49153")], "443/tcp": None}


def test_rules_dnat_forward_hairpin() -> None:
    rules = [
        str(r) for r in portmap.port_rules(portmap.Mapping("udp", 53, "0.0.0.0", 5353), "10.9.0.2", "br9")
    ]
    assert rules == [
        "-t nat -A MINIDOCKER ! -i br9 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.9.0.2:53",
        "-t filter -A MINIDOCKER-FORWARD -d 10.9.0.2/32 ! -i br9 -o br9 -p udp -m udp --dport 53 -j ACCEPT",
        "-t nat -A MINIDOCKER-POSTROUTING -s 10.9.0.2/32 -d 10.9.0.2/32 -p udp -m udp --dport 53 -j MASQUERADE",
    ]


def test_bind_picks_free_ports_and_fails_whole_on_conflict() -> None:
    taken = proxy.listen("tcp", "127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        ok = portmap.bind(
            [portmap.Mapping("tcp", 80, "127.0.0.1", 0), portmap.Mapping("udp", 53, "127.0.0.1", 0)]
        )
        assert all(m.host_port > 0 and m.sock is not None for m in ok)
        portmap.close(ok)
        assert all(m.sock is None for m in ok)
        first = portmap.Mapping("tcp", 81, "127.0.0.1", 0)
        with pytest.raises(Conflict) as e:
            portmap.bind([first, portmap.Mapping("tcp", 80, "127.0.0.1", port)])
        assert str(e.value) == (
            f"Error starting userland proxy: listen tcp4 127.0.0.1:{port}: bind: address already in use"
        )
        assert first.sock is None  # what was taken before the conflict is given back
        ranged = portmap.Mapping("tcp", 80, "127.0.0.1", port, port + 20)
        got = portmap.bind([ranged])  # a range: the first free port in it
        assert port < got[0].host_port <= port + 20
        portmap.close(got)
    finally:
        taken.close()


def _echo_server() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(b"echo:" + data)

    threading.Thread(target=loop, daemon=True).start()
    return srv


def test_tcp_relay_passes_data_and_half_close() -> None:
    srv = _echo_server()
    listener = proxy.listen("tcp", "127.0.0.1", 0)
    threading.Thread(target=proxy.serve, args=(listener, "tcp", srv.getsockname()), daemon=True).start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as c:
            c.sendall(b"hi")
            c.shutdown(socket.SHUT_WR)  # the echo server sees EOF only if the relay passes it on
            got = b""
            while data := c.recv(1024):
                got += data
        assert got == b"echo:hi"
    finally:
        listener.close()
        srv.close()


def test_udp_relay_round_trip() -> None:
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))

    def answer() -> None:
        data, peer = upstream.recvfrom(1024)
        upstream.sendto(b"re:" + data, peer)

    threading.Thread(target=answer, daemon=True).start()
    listener = proxy.listen("udp", "127.0.0.1", 0)
    threading.Thread(target=proxy.serve, args=(listener, "udp", upstream.getsockname()), daemon=True).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(10)
            c.sendto(b"q", listener.getsockname())
            assert c.recv(1024) == b"re:q"
    finally:
        listener.close()
        upstream.close()
