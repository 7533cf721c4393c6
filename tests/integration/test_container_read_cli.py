"""ps, inspect, logs, top, rename, port: output and exit codes next to a real dockerd 20.10's."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.integration import helpers

C1 = ["--network", "none", "--name", "c1", "busybox", "sh", "-c", 'sleep 100; echo "<a&b>"']
C2 = ["--network", "none", "--name", "c2", "-e", "A=1", "-l", "k=v", "busybox", "echo", "hi"]
TEMPLATES = [
    "{{.Name}} {{.State.Status}} {{.State.Pid}} {{.Path}} {{.Args}} {{json .Args}}",
    "{{.Config.Env}}|{{.Config.Entrypoint}}|{{.State.Health}}|{{.HostConfig.Binds}}|{{.Config.Labels}}",
    "{{.HostConfig.RestartPolicy}}|{{json .Config.Labels}}|{{.Config.Cmd}}|{{json .NetworkSettings.Ports}}",
    '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}} {{index .Config.Labels "k"}} {{len .Args}}',
    "{{if .State.Running}}up{{else}}down{{end}} {{upper .State.Status}} {{.GraphDriver.Name}} {{.Mounts}}",
    "{{json .State}} {{.HostConfig.LogConfig}} {{.NetworkSettings.Networks.none.IPAMConfig}}",
]
PS_FORMAT = "table {{.Image}}\t{{.Command}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Labels}}\t{{.Networks}}\t{{.State}}"


def normalize(text: str, roots: list[str]) -> str:
    for r in roots:
        text = text.replace(r, "ROOT")
    text = re.sub(r"[0-9a-f]{64}", "ID", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "SHORT", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "TIME", text)
    text = re.sub(r"(Less than a second|About a minute|\d+ seconds?|\d+ minutes) ago", "AGO", text)
    # the stored hostconfig is the client's: CLI 20.10 sends null where CLI 28 (our model) sends []
    return re.sub(r'"(BlkioDevice\w+|Ulimits)": (null|\[\])', r'"\1": X', text)


@pytest.fixture
def both(md, dockerd_module, busybox_rootfs_tar):  # type: ignore[no-untyped-def]
    """c1 and c2 created (not started) on both sides from the same busybox rootfs."""
    d = dockerd_module
    for name in ("c1", "c2"):
        d.docker("rm", "-f", name)
    d.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "busybox:latest")
    md.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "busybox:latest")
    for args in (C1, C2):
        d.ok("create", *args)
        md.ok("create", *args)
    yield md, d
    d.docker("rm", "-f", "c1", "c2")


def pair(md, d, *args: Any) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    return md(*args), d.docker(*args)


def test_inspect_of_created_containers_matches_docker(both) -> None:  # type: ignore[no-untyped-def]
    md, d = both
    roots = [md.data_root, d.data_root]
    ours, theirs = pair(md, d, "inspect", "c1", "c2")
    assert ours.rc == theirs.rc == 0
    assert normalize(ours.stdout, roots) == normalize(theirs.stdout, roots)
    doc = json.loads(ours.stdout)[0]
    assert doc["GraphDriver"]["Data"]["LowerDir"].startswith(md.data_root + "/overlay2/")
    assert '"sleep 100; echo \\"<a&b>\\""' in ours.stdout  # no HTML escaping, like the API
    for tpl in TEMPLATES:
        ours, theirs = pair(md, d, "inspect", "-f", tpl, "c2")
        assert (ours.rc, ours.stdout) == (theirs.rc, theirs.stdout), tpl
    # container first, then image; --type narrows
    assert json.loads(md.ok("inspect", "busybox"))[0]["RepoTags"] == ["busybox:latest"]
    assert md.ok("inspect", "--type", "container", "-f", "{{.Name}}", "c1") == "/c1\n"


def test_ps_matches_docker(both) -> None:  # type: ignore[no-untyped-def]
    md, d = both
    roots = [md.data_root, d.data_root]
    names = ["-f", "name=^/c[12]$"]
    for args in (["ps", "-a", *names, "--format", PS_FORMAT], ["ps", "-a", "--no-trunc", *names, "--format", PS_FORMAT],
                 ["ps", "-a", *names], ["ps", "-a", "--no-trunc", *names], ["ps", *names], ["ps", "-aq", *names],
                 ["ps", "-f", "status=created", *names, "--format", "{{.Names}} {{.Status}}"]):  # fmt: skip
        ours, theirs = pair(md, d, *args)
        assert ours.rc == theirs.rc == 0, args
        a, b = normalize(ours.stdout, roots), normalize(theirs.stdout, roots)
        if "--format" not in args:
            # CREATED ("1 second ago" here, "Less than a second ago" there) sets column widths
            a, b = ([re.split(r" {3,}", line) for line in x.splitlines()] for x in (a, b))  # type: ignore[assignment]
        assert a == b, args
    lines = md.ok("ps", "-a").splitlines()
    assert lines[0].startswith("CONTAINER ID   IMAGE     COMMAND   ")
    assert lines[1].split()[1:3] == ["busybox", '"echo']


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "nope"],
        ["inspect", "--type", "container", "nope"],
        ["inspect", "--type", "image", "c1"],
        ["inspect", "-f", "{{.Nope}}", "c1"],
        ["inspect", "-f", "{{.State.Pid", "c1"],
        ["logs", "nope"],
        ["logs", "--since", "abc", "c1"],
        ["port", "nope"],
        ["port", "c1", "80"],
        ["port", "c1"],
        ["ps", "-f", "status=foo"],
        ["ps", "-f", "foo=bar"],
        ["ps", "--format", "{{.ID"],
        ["rename", "c1", "c1"],
        ["rename", "nope", "x"],
        ["rename", "c1", "c2"],
        ["top", "c1"],
        ["top", "nope"],
    ],
)
def test_errors_match_docker(both, args) -> None:  # type: ignore[no-untyped-def]
    md, d = both
    ours, theirs = pair(md, d, *args)
    assert ours.rc == theirs.rc, helpers.describe(ours) + helpers.describe(theirs)
    assert ours.stdout == theirs.stdout
    # dockerd's messages come through its API ("Error response from daemon: "); the rename
    # verb adds a second line ("failed to rename container") that we fold into the first
    want = (theirs.stderr.splitlines() or [""])[0].replace("Error response from daemon: ", "Error: ")
    assert normalize(ours.stderr.strip(), []) == normalize(want, [])


def test_logs_read_the_json_file(host, md, busybox_rootfs_tar) -> None:  # type: ignore[no-untyped-def]
    md.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "busybox:latest")
    cid = md.ok("create", "--network", "none", "--name", "l1", "busybox", "true").strip()
    assert md("logs", "l1").stdout == ""  # created: no log file yet
    log = f"{md.data_root}/containers/{cid}/{cid}-json.log"
    records = [
        '{"log":"out1\\n","stream":"stdout","time":"2026-01-01T00:00:01.5Z"}',
        '{"log":"err \\u003cx\\u003e\\n","stream":"stderr","time":"2026-01-01T00:00:02.000000001Z"}',
        '{"log":"part","stream":"stdout","time":"2026-01-01T00:00:03Z"}',
        '{"log":"out2\\n","stream":"stdout","time":"2026-01-01T00:00:04Z"}',
    ]
    helpers.check(host, f"printf '%s\\n' {helpers.q(*records)} > {log}")
    r = md("logs", "l1")
    assert (r.rc, r.stdout, r.stderr) == (0, "out1\npartout2\n", "err <x>\n")
    r = md("logs", "-t", "--tail", "2", "l1")
    assert r.stdout == "2026-01-01T00:00:03.000000000Z part2026-01-01T00:00:04.000000000Z out2\n"
    r = md("logs", "--since", "2026-01-01T00:00:02Z", "--until", "1767225603", "l1")
    assert (r.stdout, r.stderr) == ("part", "err <x>\n")
    assert md("logs", "--tail", "0", "l1").stdout == ""
    assert md("logs", "-f", "l1").stdout == "out1\npartout2\n"  # not running: -f returns at the end


def test_rename_and_port(md, busybox_rootfs_tar) -> None:  # type: ignore[no-untyped-def]
    md.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "busybox:latest")
    cid = md.ok("create", "--network", "none", "--name", "old", "busybox", "true").strip()
    md.ok("create", "--network", "none", "--name", "other", "busybox", "true")
    assert md.ok("rename", "old", "new") == ""
    assert md.ok("inspect", "-f", "{{.Name}}", cid) == "/new\n"
    assert md.ok("ps", "-a", "--format", "{{.Names}}").split() == ["other", "new"]
    r = md.fail("rename", "new", "other", rc=1)
    assert 'The container name "/other" is already in use' in r.stderr
    assert (
        md.fail("inspect", "--type", "container", "old", rc=1).stderr.strip()
        == "Error: No such container: old"
    )
    assert md.ok("port", "new") == ""
    r = md.fail("port", "new", "80/udp", rc=1)
    assert r.stderr.strip() == "Error: No public port '80/udp' published for new"


def test_top_lists_the_container_processes(md, busybox_rootfs_tar) -> None:  # type: ignore[no-untyped-def]
    md.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "busybox:latest")
    md.ok("run", "-d", "--network", "none", "--name", "t1", "busybox", "sh", "-c", "sleep 60 & sleep 61")
    try:
        lines = md.ok("top", "t1").splitlines()
        assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert lines[0].startswith("UID                 PID                 PPID")  # tabwriter minwidth 20
        cmds = sorted(line.split(None, 7)[7] for line in lines[1:])
        assert cmds == ["sh -c sleep 60 & sleep 61", "sleep 60", "sleep 61"] or cmds == [
            "sleep 60",
            "sleep 61",
        ]
        lines = md.ok("top", "t1", "-o", "pid,comm").splitlines()
        assert lines[0].split() == ["PID", "COMMAND"] and {x.split()[1] for x in lines[1:]} >= {"sleep"}
        r = md.fail("top", "t1", "-o", "pid", "x=PID", rc=1)
        assert r.stderr.strip() == 'Error: specifying "x=PID" is not allowed'
    finally:
        md("rm", "-f", "t1")
