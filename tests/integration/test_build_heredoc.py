"""Heredocs in RUN and COPY (BuildKit's Dockerfile syntax; Docker's classic builder has none, so
there is no dockerd to compare with here): the body runs or lands as written, the cache follows it."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from tests.integration import helpers

DOCKERFILE = """\
FROM busybox
ARG WHO=world
ENV GREETING=hello
RUN <<EOF
set -e
echo "$GREETING $WHO" > /greet
# a comment line inside the script: not a Dockerfile comment
mkdir -p /d
EOF
RUN cat <<EOF > /f2 && cat <<'RAW' > /f3
$GREETING via shell
EOF
$GREETING raw
RAW
COPY <<-EOF <<"QUOTED" /etc/app/
\tname=$GREETING "kept"
\tEOF
value=$GREETING
QUOTED
CMD ["sh", "-c", "cat /greet /f2 /f3 /etc/app/EOF /etc/app/QUOTED"]
"""


@pytest.fixture
def bb(md: Any, host: Any, data_root: str) -> Any:
    yield from helpers.with_busybox(md, host, data_root, no_processes=False)


def test_heredocs_in_run_and_copy(host, bb, scratch):  # type: ignore[no-untyped-def]
    ctx = scratch("heredoc")
    helpers.check(host, f"printf %s {shlex.quote(DOCKERFILE)} > {ctx}/Dockerfile")
    bb.ok("build", "-t", "hd", ctx)
    assert bb.ok("run", "--rm", "hd").splitlines() == [
        "hello world",
        "hello via shell",
        "$GREETING raw",
        'name=hello "kept"',
        "value=$GREETING",
    ]
    assert bb.ok("build", "-t", "hd", ctx).count("Using cache") == 6
    # a changed heredoc body misses the cache from its step on
    helpers.check(host, f"sed -i 's/^value=/val=/' {ctx}/Dockerfile")
    out = bb.ok("build", "-t", "hd", ctx)
    assert out.count("Using cache") == 4
    assert bb.ok("run", "--rm", "hd", "cat", "/etc/app/QUOTED").strip() == "val=$GREETING"
    assert bb.ok("ps", "-aq") == ""
