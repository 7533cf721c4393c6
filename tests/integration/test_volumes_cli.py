"""``minidocker volume ...`` against a real dockerd 20.10: output, errors, on-disk layout, and dockerd
reading our volumes from a copy of our data root (it scans volumes/, no bolt entry needed)."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.helpers import DockerDaemon, check, q


def _both(md: Any, dockerd: DockerDaemon, *args: str) -> tuple[Any, Any]:
    return md(*args), dockerd.docker(*args)


def test_volume_verbs_match_dockerd(host: Any, md: Any, dockerd: DockerDaemon, data_root: str) -> None:
    for args in (("volume", "create", "v1"), ("volume", "create", "--label", "a=b", "--name", "v2")):
        mine, theirs = _both(md, dockerd, *args)
        assert (mine.rc, mine.stdout) == (theirs.rc, theirs.stdout) == (0, args[-1] + "\n")
    mine, theirs = _both(md, dockerd, "volume", "ls")
    assert mine.stdout == theirs.stdout == "DRIVER    VOLUME NAME\nlocal     v1\nlocal     v2\n"
    mine, theirs = _both(md, dockerd, "volume", "ls", "-q")
    assert mine.stdout == theirs.stdout
    fmt = "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}"
    mine, theirs = _both(md, dockerd, "volume", "ls", "--format", fmt)
    assert mine.stdout == theirs.stdout

    mine_i = json.loads(md.ok("volume", "inspect", "v1", "v2"))
    theirs_i = json.loads(dockerd.ok("volume", "inspect", "v1", "v2"))
    for m, t in zip(mine_i, theirs_i, strict=True):
        assert list(m) == list(t)
        assert m["Mountpoint"] == f"{data_root}/volumes/{m['Name']}/_data"
        assert t["Mountpoint"] == f"{dockerd.data_root}/volumes/{t['Name']}/_data"
        for k in ("Driver", "Labels", "Name", "Options", "Scope"):
            assert m[k] == t[k]
        assert len(m["CreatedAt"]) == len(t["CreatedAt"])

    # layout and modes
    ours = check(host, f"cd {data_root}/volumes && stat -c '%a %n' . v1 v1/_data")
    docker = check(host, f"cd {dockerd.data_root}/volumes && stat -c '%a %n' . v1 v1/_data")
    assert ours == docker == "701 .\n701 v1\n755 v1/_data\n"

    # errors
    for args in (("volume", "create", "a"), ("volume", "create", "bad/name")):
        mine, theirs = _both(md, dockerd, *args)
        assert mine.rc != 0 and theirs.rc != 0
        assert mine.stderr.strip().split(": ", 1)[1] == theirs.stderr.strip().split(": ", 1)[1]
    mine, theirs = _both(md, dockerd, "volume", "rm", "nope")
    assert (mine.rc, mine.stderr) == (theirs.rc, theirs.stderr) == (1, "Error: No such volume: nope\n")
    mine, theirs = _both(md, dockerd, "volume", "inspect", "nope")
    assert (mine.rc, mine.stdout, mine.stderr) == (theirs.rc, theirs.stdout, theirs.stderr)

    # prune: every unused volume, Docker's report
    check(
        host,
        f"printf 12345 > {data_root}/volumes/v1/_data/f && printf 12345 > {dockerd.data_root}/volumes/v1/_data/f",
    )
    mine, theirs = _both(md, dockerd, "volume", "prune", "-f")
    assert mine.rc == theirs.rc == 0
    assert sorted(mine.stdout.splitlines()) == sorted(theirs.stdout.splitlines())
    assert "Total reclaimed space: 5B" in mine.stdout
    assert md.ok("volume", "ls", "-q") == dockerd.ok("volume", "ls", "-q") == ""


def test_dockerd_sees_our_volumes(host: Any, md: Any, data_root: str, scratch: Any) -> None:
    md.ok("volume", "create", "shared")
    anon = md.ok("volume", "create").strip()
    check(host, f"printf hi > {data_root}/volumes/shared/_data/f")
    daemon = DockerDaemon(host, scratch("dockerd-copy"))
    try:
        # a copy of our volumes/ (no metadata.db at all) in a fresh dockerd data root
        check(host, q("mkdir", "-p", daemon.data_root))
        check(host, q("cp", "-a", f"{data_root}/volumes", f"{daemon.data_root}/volumes"))
        daemon.start()
        assert daemon.ok("volume", "ls", "-q").split() == sorted([anon, "shared"])
        info = json.loads(daemon.ok("volume", "inspect", "shared"))[0]
        assert info["Mountpoint"] == f"{daemon.data_root}/volumes/shared/_data"
        assert check(host, f"cat {info['Mountpoint']}/f") == "hi"
        assert daemon.ok("volume", "rm", "shared") == "shared\n"
    finally:
        daemon.stop()
