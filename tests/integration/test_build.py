"""``build``, ``commit`` and ``diff`` (issue 6), black box, with a real dockerd's classic builder as
the reference: the same Dockerfile built on both sides must give the same config, history and
layer contents (names, types, modes, owners, sizes, link targets)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest

from tests.integration import helpers

PARITY_DOCKERFILE = """\
# escape=\\
ARG BASE=base
FROM ${BASE}
ARG V=1
ENV A=1 B="two words"
LABEL x=y z="${A}-z"
RUN mkdir -p /opt/x && echo hi > /opt/x/f && chmod 600 /opt/x/f && ln -s f /opt/x/l \\
    && rm /bin/ls && echo $V > /opt/v
WORKDIR /app
COPY a.txt .
COPY sub /app/sub/
COPY --chown=1:2 a.txt /owned/
ADD arch.tar.gz /unpacked/
EXPOSE 80 53/udp
VOLUME /data
USER nobody
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=5s --retries=3 CMD true
ONBUILD RUN echo triggered
RUN true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"""

CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
                 "StopSignal", "Shell", "Healthcheck", "OnBuild"]  # fmt: skip

# Lists each layer of a `save` archive (after the first): name, type, mode, uid, gid, size, link.
_LIST_LAYERS = r"""
import json, sys, tarfile
outer = tarfile.open(sys.argv[1])
manifest = json.load(outer.extractfile("manifest.json"))
out = []
for name in manifest[0]["Layers"][1:]:
    inner = tarfile.open(fileobj=outer.extractfile(name))
    out.append(sorted((m.name, m.type.decode(), m.mode, m.uid, m.gid, m.size, m.linkname)
                      for m in inner.getmembers()))
print(json.dumps(out))
"""


@pytest.fixture
def ctxdir(host: Any, scratch: Any) -> str:
    d = scratch("buildctx")
    helpers.check(host, f"cd {d} && mkdir -p sub/deep && echo hello > a.txt && echo s > sub/s.txt && "
                        "chmod 640 sub/s.txt && echo d > sub/deep/d && echo junk > skip.log && "
                        "mkdir -p t/dir && echo in > t/dir/f && ln -s f t/dir/l && "
                        "tar -C t --owner=5 --group=6 -czf arch.tar.gz dir && rm -r t")  # fmt: skip
    return d


@pytest.fixture
def bb(md: Any, host: Any, data_root: str) -> Any:
    yield from helpers.with_busybox(md, host, data_root, tag="base")


def _layers(host: Any, archive: str) -> Any:
    return json.loads(helpers.check(host, f"python3 -c {shlex.quote(_LIST_LAYERS)} {archive}"))


def test_build_matches_docker_classic_builder(host, bb, dockerd, ctxdir, scratch):  # type: ignore[no-untyped-def]
    out = scratch("buildout")
    helpers.busybox_into_dockerd(bb, dockerd, out)
    helpers.write_file(host, f"{ctxdir}/Dockerfile", PARITY_DOCKERFILE)
    helpers.write_file(host, f"{ctxdir}/.dockerignore", "*.log\n")
    labels = ["--label", "l1=v1", "--label", "l0=a $b"]
    theirs_run = helpers.docker_classic_build(host, dockerd, "-t", "p:1", *labels, ctxdir)
    assert theirs_run.rc == 0, helpers.describe(theirs_run)
    ours_out = bb.ok("build", "-t", "p:1", *labels, ctxdir)
    assert "Successfully tagged p:1" in ours_out

    # the whole progress output, container and image IDs aside: "Sending build context", each
    # "Step N/M", " ---> Running in" / "Removing intermediate container" for every step that
    # commits a container (metadata-only ones too), RUN output, " ---> <id>", "Successfully ..."
    def progress(text: str) -> list[str]:
        return [re.sub(r"\b[0-9a-f]{12}\b", "<id>", line) for line in text.splitlines()]

    assert progress(ours_out) == progress(theirs_run.stdout)
    assert ours_out.count(" ---> Running in ") == ours_out.count("Removing intermediate container") == 17
    theirs = json.loads(dockerd.ok("image", "inspect", "p:1"))[0]
    ours = json.loads(bb.ok("image", "inspect", "p:1"))[0]
    for f in CONFIG_FIELDS:
        assert ours["Config"].get(f) == theirs["Config"].get(f), f
    assert len(ours["RootFS"]["Layers"]) == len(theirs["RootFS"]["Layers"])
    t_cfg = json.loads(helpers.check(host, f"cat {dockerd.data_root}/image/overlay2/imagedb/content/sha256/"
                                           f"{theirs['Id'][7:]}"))  # fmt: skip
    data_root = bb.data_root
    o_cfg = json.loads(
        helpers.check(host, f"cat {data_root}/image/overlay2/imagedb/content/sha256/{ours['Id'][7:]}")
    )
    # history byte for byte but the times: COPY's source hashes are dockerd's own (tarsum v1)
    theirs_hist = [(h.get("created_by"), bool(h.get("empty_layer"))) for h in t_cfg["history"]]
    ours_hist = [(h.get("created_by"), bool(h.get("empty_layer"))) for h in o_cfg["history"]]
    assert ours_hist == theirs_hist
    assert ours["Parent"] and theirs["Parent"]
    dockerd.ok("save", "-o", f"{out}/theirs.tar", "p:1")
    bb.ok("save", "-o", f"{out}/ours.tar", "p:1")
    assert _layers(host, f"{out}/ours.tar") == _layers(host, f"{out}/theirs.tar")


def test_seed_form_cache_and_no_cache(host, bb, ctxdir):  # type: ignore[no-untyped-def]
    helpers.write_file(host, f"{ctxdir}/dockerfile", "FROM base\nRUN echo built > /built\nWORKDIR /srv\n"
                                                     'ENTRYPOINT ["cat", "/built"]\n')  # fmt: skip
    first = bb.ok("build", "-f", f"{ctxdir}/dockerfile", "-t", "xx:0.01", ctxdir)
    assert "Successfully tagged xx:0.01" in first and "Using cache" not in first
    assert bb.ok("run", "--rm", "xx:0.01").strip() == "built"
    assert bb.ok("run", "--rm", "--entrypoint", "pwd", "xx:0.01").strip() == "/srv"
    again = bb.ok("build", "-f", f"{ctxdir}/dockerfile", "-t", "xx:0.01", "-t", "yy", ctxdir)
    assert again.count("Using cache") == 3
    assert first.splitlines()[-2] == again.splitlines()[-3]  # same "Successfully built <id>"
    assert "Successfully tagged yy:latest" in again
    fresh = bb.ok("build", "--no-cache", "-q", "-f", f"{ctxdir}/dockerfile", ctxdir)
    assert fresh.strip().startswith("sha256:") and "Step" not in fresh
    # a changed COPY source misses the cache from that step on
    helpers.write_file(host, f"{ctxdir}/Dockerfile", "FROM base\nCOPY a.txt /a\nRUN cat /a\n")
    bb.ok("build", ctxdir)
    helpers.check(host, f"echo changed > {ctxdir}/a.txt")
    changed = bb.ok("build", ctxdir)
    assert "Using cache" not in changed and "changed" in changed


def test_multistage_target_args_and_dockerignore(host, bb, ctxdir):  # type: ignore[no-untyped-def]
    helpers.write_file(host, f"{ctxdir}/.dockerignore", "*.log\nsub/deep\n")
    helpers.write_file(host, f"{ctxdir}/Dockerfile", "FROM base AS one\nARG WHO=nobody\nRUN echo $WHO > /who\n"
                                                     "COPY . /ctx/\nFROM base AS two\nCOPY --from=one /who /who2\n"
                                                     "FROM base AS three\nRUN false\n")  # fmt: skip
    out = bb.ok("build", "--target", "two", "--build-arg", "WHO=me", "-t", "ms", ctxdir)
    assert "RUN false" not in out
    assert bb.ok("run", "--rm", "ms", "cat", "/who2").strip() == "me"
    bb.ok("build", "--target", "one", "-t", "ctx", ctxdir)
    listing = bb.ok("run", "--rm", "ctx", "find", "/ctx").split()
    assert "/ctx/a.txt" in listing and "/ctx/sub/s.txt" in listing
    assert "/ctx/skip.log" not in listing and "/ctx/sub/deep" not in listing


@pytest.mark.parametrize(
    ("dockerfile", "rc", "message"),
    [
        ("FROM base\nFROB x\n", 125, "line 2: unknown instruction: FROB"),
        ("RUN true\n", 125, "Dockerfile:1 : no build stage"),
        ("FROM base\nCOPY ../etc/passwd /x\n", 125, "Dockerfile:2 forbidden path outside the build context"),
        ("FROM base\nCOPY nothere /x\n", 125, "Dockerfile:2 file not found in build context"),
        (
            "FROM base\nENV A=1\nRUN exit 3\n",
            3,
            "Dockerfile:3 The command '/bin/sh -c exit 3' returned a non-zero code: 3",
        ),
        ("FROM nosuchimage\n", 125, "Dockerfile:1 FROM: pull access denied for nosuchimage"),
        (
            "FROM base\nADD http://example.com/x /x\n",
            125,
            "Dockerfile:2 ADD http://example.com/x: remote URLs need network",
        ),
        ("FROM base\nEXPOSE\n", 125, "line 2: EXPOSE requires at least one argument"),
        ("FROM base AS a\nRUN true\nFROM base AS a\n", 125, "Dockerfile:3 a stage name already used"),
        ("", 125, "the Dockerfile (Dockerfile) cannot be empty"),
        ("FROM base\nRUN <<EOF\ntrue\n", 125, "line 2: unterminated heredoc EOF"),
    ],
)
def test_build_errors(host, bb, ctxdir, dockerfile, rc, message):  # type: ignore[no-untyped-def]
    helpers.write_file(host, f"{ctxdir}/Dockerfile", dockerfile)
    res = bb.fail("build", "-t", "bad:1", ctxdir, rc=rc)
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr  # one clear line
    assert "bad" not in bb.ok("images", "--format", "{{.Repository}}")
    assert bb.ok("ps", "-aq") == ""


def test_commit_and_diff(host, bb):  # type: ignore[no-untyped-def]
    cid = bb.ok("run", "-d", "busybox", "sh", "-c",
                "mkdir /n && echo hi > /n/f && ln /n/f /n/g && rm /bin/ls && rm -rf /home && mkdir /home && "
                "touch /home/x && sleep 100").strip()  # fmt: skip
    helpers.check(host, f"for i in $(seq 50); do {bb.command('exec', cid, 'test', '-e', '/home/x')} && exit 0; "
                        "sleep 0.1; done; exit 1")  # fmt: skip
    changes = bb.ok("diff", cid).splitlines()
    for line in ["C /bin", "D /bin/ls", "A /n", "A /n/f", "A /n/g", "A /home/x"]:
        assert line in changes
    image_id = bb.ok(
        "commit", "-a", "me", "-m", "msg", "-c", "ENV FOO=bar", "-c", "LABEL l=1", cid, "snap:1"
    ).strip()
    assert image_id.startswith("sha256:")
    info = json.loads(bb.ok("image", "inspect", "snap:1"))[0]
    assert info["Author"] == "me" and info["Container"] == cid
    assert info["Config"]["Env"][0] == "FOO=bar" and info["Config"]["Labels"] == {"l": "1"}
    hist = bb.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "snap:1").splitlines()
    assert hist[0].startswith("sh -c mkdir /n") and hist[0].endswith("|msg")
    bb.ok("rm", "-f", cid)
    got = bb.ok(
        "run", "--rm", "snap:1", "sh", "-c", "cat /n/g; ls /home; test -e /bin/ls || echo gone; echo $FOO"
    )
    assert got.split() == ["hi", "x", "gone", "bar"]
    parent = host.file(f"{bb.data_root}/image/overlay2/imagedb/metadata/sha256/{image_id[7:]}/parent")
    assert parent.content_string == bb.ok("image", "inspect", "--format", "{{.Id}}", "busybox").strip()
    # the layer tar has Docker's whiteouts
    listing = helpers.check(
        host, f"{bb.command('save', 'snap:1')} | tar -xO --wildcards '*/layer.tar' | tar -tvi"
    )
    assert "bin/.wh.ls" in listing and "home/.wh..wh..opq" in listing


def test_onbuild_triggers_run_in_the_child(host, bb, ctxdir, scratch):  # type: ignore[no-untyped-def]
    helpers.write_file(host, f"{ctxdir}/Dockerfile", "FROM base\nONBUILD RUN echo trig > /trig\n")
    bb.ok("build", "-t", "ob", ctxdir)
    child = scratch("buildchild")
    helpers.write_file(host, f"{child}/Dockerfile", "FROM ob\nLABEL c=1\n")
    out = bb.ok("build", "-t", "obchild", child)
    assert "# Executing 1 build trigger" in out
    assert bb.ok("run", "--rm", "obchild", "cat", "/trig").strip() == "trig"
    info = json.loads(bb.ok("image", "inspect", "obchild"))[0]
    assert info["Config"]["OnBuild"] is None


def test_quiet_build_shows_its_progress_only_on_failure(host, bb, ctxdir):  # type: ignore[no-untyped-def]
    """``-q``: only the image ID on success; on failure the held-back progress, RUN output
    included, goes to stderr before the error (the docker CLI's buffer)."""
    helpers.write_file(
        host, f"{ctxdir}/Dockerfile", "FROM base\nRUN echo out; echo err >&2\nRUN echo boom; exit 4\n"
    )
    res = bb.fail("build", "-q", "-t", "quiet:1", ctxdir, rc=4)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    for want in [
        "Step 2/3 : RUN echo out; echo err >&2",
        "out",
        "err",
        "Step 3/3 : RUN echo boom; exit 4",
        "boom",
    ]:
        assert want in lines, res.stderr
    assert lines[-1].endswith(
        "Dockerfile:3 The command '/bin/sh -c echo boom; exit 4' returned a non-zero code: 4"
    )
    helpers.write_file(host, f"{ctxdir}/Dockerfile", "FROM base\nRUN echo out; echo err >&2\n")
    res = bb("build", "-q", "-t", "quiet:1", ctxdir)
    assert res.rc == 0 and res.stderr == "" and res.stdout.strip().startswith("sha256:")


SYMLINK_DOCKERFILE = """\
FROM base AS one
RUN mkdir -p /o/d && echo hi > /o/d/f && chown 7:8 /o/d/f && ln -s f /o/d/l && ln -s /o/d/f /o/abs
FROM base
COPY d /d/
COPY top /top
COPY d/l2 /l2
COPY . /all/
COPY --from=one /o/d/f /f1
COPY --from=one /o /o
COPY --from=one /o/abs /abs
"""


def test_copy_of_symlinks_and_from_stages_matches_docker(host, bb, dockerd, scratch):  # type: ignore[no-untyped-def]
    """Symlinks as sources (followed, inside the context) and inside copied directories (kept),
    dangling, absolute and escaping ones; COPY --from a stage with owned files: the same history
    (so the same cache keys: dockerd's tarsum sums, owners and the host's names for them counted
    for --from) and the same layer entries as dockerd's classic builder."""
    ctx, out = scratch("buildlinks"), scratch("buildlinks-out")
    helpers.check(
        host,
        f"cd {ctx} && mkdir -p d/sub && echo a > d/a && echo ig > d/ig.log && ln -s a d/l1 && "
        "ln -s sub d/l2 && ln -s nothere d/l3 && ln -s /d/a d/l4 && ln -s ig.log d/l5 && "
        "ln -s ../../../etc/passwd d/l6 && ln -s d/l1 top && echo '*.log' > .dockerignore",
    )
    helpers.write_file(host, f"{ctx}/Dockerfile", SYMLINK_DOCKERFILE)
    helpers.busybox_into_dockerd(bb, dockerd, out)
    theirs = helpers.docker_classic_build(host, dockerd, "-t", "links:1", ctx)
    assert theirs.rc == 0, helpers.describe(theirs)
    bb.ok("build", "-t", "links:1", ctx)
    fmt = ("history", "--no-trunc", "--format", "{{.CreatedBy}}", "links:1")
    assert bb.ok(*fmt) == dockerd.ok(*fmt)
    dockerd.ok("save", "-o", f"{out}/theirs.tar", "links:1")
    bb.ok("save", "-o", f"{out}/ours.tar", "links:1")
    assert _layers(host, f"{out}/ours.tar") == _layers(host, f"{out}/theirs.tar")
    assert bb.ok("run", "--rm", "links:1", "cat", "/top", "/abs").split() == ["a", "hi"]
