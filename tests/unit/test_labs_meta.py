"""The labs and chapter pages are complete and consistent (no root: files, syntax and small helpers only).

Running the labs themselves needs root and mounts: that is ``python labs/runner.py --all``
(``tox -e labs``), which proves each lab fails on the fresh state and passes after its solution.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import py_compile
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "labs"
CHAPTERS = REPO / "docs" / "chapters"

sys.path.insert(0, str(LABS))

from _lib import checks, mkarchive  # noqa: E402

LAB_DIRS = sorted(d for d in LABS.iterdir() if d.is_dir() and re.match(r"\d\d-", d.name))
CHAPTER_PAGES = sorted(CHAPTERS.glob("[0-9][0-9]-*.md"))

LAB_FILES = ("README.md", "hints.md", "check.py", "setup.sh", "cleanup.sh", "solution/solution.sh")
LAB_SECTIONS = (
    "## Goal",
    "## The concept",
    "## Before you start",
    "## Steps",
    "## Check your work",
    "## Bonus",
)
CHAPTER_SECTIONS = (
    "## The concept",
    "## How minidocker does it",
    "## What Docker does differently",
    "## References",
    "## Verification",
    "## Next",
)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


#: Chapters announced in the index whose page and lab are not written yet (none since chapter 7 landed).
COMING: frozenset[int] = frozenset()


def test_there_are_labs_and_chapters() -> None:
    done = {f"{n:02d}" for n in range(1, 11) if n not in COMING}
    assert {d.name[:2] for d in LAB_DIRS} >= done | {"11"}, "ten chapter labs and the capstone"
    assert {p.name[:2] for p in CHAPTER_PAGES} >= done


# -- labs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("lab", LAB_DIRS, ids=_ids(LAB_DIRS))
def test_lab_has_its_files(lab: Path) -> None:
    missing = [f for f in LAB_FILES if not (lab / f).is_file()]
    assert not missing, f"{lab.name} lacks {missing}"


@pytest.mark.parametrize("lab", LAB_DIRS, ids=_ids(LAB_DIRS))
def test_lab_scripts_are_strict_executable_bash(lab: Path) -> None:
    for rel in ("setup.sh", "cleanup.sh", "solution/solution.sh"):
        script = lab / rel
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), f"{rel}: bash shebang"
        assert "set -euo pipefail" in text, f"{rel}: must stop at the first error"
        assert os.access(script, os.X_OK), f"{rel} is not executable"
        res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{rel}: {res.stderr}"


@pytest.mark.parametrize("lab", LAB_DIRS, ids=_ids(LAB_DIRS))
def test_lab_readme_sections_and_no_spoilers(lab: Path) -> None:
    text = (lab / "README.md").read_text()
    assert text.startswith(f"# Lab {lab.name[:2]} "), "first line: '# Lab NN — title'"
    missing = [s for s in LAB_SECTIONS if not re.search(rf"^{re.escape(s)}\b", text, re.M)]
    assert not missing, f"{lab.name}/README.md lacks sections {missing}"
    assert "solution" not in text.lower(), "the README must not point at the reference solution"
    assert f"minidocker lab check {lab.name[:2]}" in text, "README says how to check"
    assert re.search(r"^### Step 1\b", text, re.M), "steps are '### Step N — ...'"


@pytest.mark.parametrize("lab", LAB_DIRS, ids=_ids(LAB_DIRS))
def test_lab_hints_are_tiered(lab: Path) -> None:
    import runner

    levels = runner.hint_levels(runner.Lab(lab.name[:2], lab))
    assert len(levels) >= 2, "at least two hint levels"
    numbers = [int(re.match(r"Level (\d+)", h).group(1)) for h, _ in levels]  # type: ignore[union-attr]
    assert numbers == list(range(1, len(levels) + 1))
    assert all(body for _, body in levels)
    assert "solution" not in (lab / "hints.md").read_text().lower()


def _words(text: str) -> str:
    """Quotes, redirections and a trailing ``&`` dropped, blanks squeezed: how a hint would spell it."""
    words = text.replace('"', "").replace("'", "").split()
    return " ".join(w for w in words if not re.match(r"^(\d?>>?|<)(&\d|/dev/null)?$|^&$", w))


@pytest.mark.parametrize("lab", LAB_DIRS, ids=_ids(LAB_DIRS))
def test_lab_hints_never_give_the_solutions_commands(lab: Path) -> None:
    """Hints say what is wrong and where to look: no command of the reference solution, copied."""
    hints = _words((lab / "hints.md").read_text())
    work = f"/var/lib/minidocker-labs/{lab.name[:2]}"
    copied = []
    for line in (lab / "solution" / "solution.sh").read_text().splitlines():
        cmd = line.strip()
        if len(cmd) < 20 or cmd.startswith("#"):
            continue
        spelled = re.sub(r"^md ", "minidocker ", re.sub(r"\$\{?LAB\}?", work, cmd))
        if any(len(c) >= 20 and c in hints for c in {_words(cmd), _words(spelled)}):
            copied.append(cmd)
    assert not copied, f"{lab.name}/hints.md gives the solution's commands: {copied}"


@pytest.mark.parametrize("lab", LAB_DIRS, ids=_ids(LAB_DIRS))
def test_lab_checker_compiles_and_uses_the_shared_checker(lab: Path) -> None:
    py_compile.compile(str(lab / "check.py"), doraise=True)
    text = (lab / "check.py").read_text()
    assert "Checker(" in text and "fail_on_crash" in text
    # The checker is an independent witness: it must not import minidocker.
    assert not re.search(r"^\s*(from|import) minidocker", text, re.M)


@pytest.mark.parametrize("lab", LAB_DIRS, ids=_ids(LAB_DIRS))
def test_lab_scripts_stay_in_the_lab_dir(lab: Path) -> None:
    num = lab.name[:2]
    for rel in ("setup.sh", "cleanup.sh", "solution/solution.sh"):
        text = (lab / rel).read_text()
        assert f'lab_dir {num})"' in text, f"{rel} must work in $(lab_dir {num})"
        assert "/var/lib/minidocker\n" not in text and "/var/lib/minidocker/" not in text


def test_runner_discovers_every_lab() -> None:
    import runner

    assert sorted(runner.discover()) == [d.name[:2] for d in LAB_DIRS]


def test_prove_host_diff_reports_only_what_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    """prove's host check: new items count, items that vanish within the settle time do not."""
    import runner

    before = frozenset({"link eth0", "mount / (ext4)"})
    states = iter([
        before | {"link veth06a", "link lab11br", "cgroup /sys/fs/cgroup/pids/mdtest-x"},
        before | {"link lab11br", "cgroup /sys/fs/cgroup/pids/mdtest-x"},  # the veth went by itself
    ])  # fmt: skip
    last: list[frozenset[str]] = []

    def state() -> frozenset[str]:
        last[:] = [next(states, last[0] if last else before)]
        return last[0]

    monkeypatch.setattr(runner, "host_state", state)
    monkeypatch.setattr(runner, "SETTLE_SECONDS", 0.6)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    monkeypatch.setenv("MINIDOCKER_LABS_IGNORE_LEFTOVERS", "mdtest-")
    assert runner.leftovers(before) == ["link lab11br"]
    save = [
        "*filter",
        ":FORWARD DROP [0:0]",
        ":MINIDOCKER-FORWARD - [3:4]",
        "-A FORWARD -j MINIDOCKER-FORWARD",
    ]
    assert runner.iptables_items(save) == {
        "iptables -t filter :MINIDOCKER-FORWARD -",
        "iptables -t filter -A FORWARD -j MINIDOCKER-FORWARD",
    }, "built-in chains and counters are not a lab's"


# -- shared checker helpers -------------------------------------------------------------------------
def test_checker_lines_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    c = checks.Checker("xx")
    c.expect("good", True, "unused")
    c.expect("bad", False, "expected 1, found 2")
    c.blocked("later", "bad failed")
    assert c.finish() == checks.EXIT_FAIL
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "PASS good",
        "FAIL bad: expected 1, found 2",
        "FAIL later: cannot check yet: bad failed",
    ]
    ok = checks.Checker("yy")
    ok.expect("fine", True)
    assert ok.finish() == checks.EXIT_PASS


def test_checker_chain_ids_agree_with_minidocker() -> None:
    from minidocker.image import digest

    diffs = ["sha256:" + hashlib.sha256(bytes([i])).hexdigest() for i in range(4)]
    assert checks.chain_ids(diffs) == digest.chain_ids(diffs)
    # The worked example of shared/docker-layout.md section 2.1, by hand.
    d0, d1 = diffs[:2]
    assert checks.chain_ids([d0, d1])[1] == "sha256:" + hashlib.sha256(f"{d0} {d1}".encode()).hexdigest()


def test_mkarchive_builds_a_consistent_three_layer_archive(tmp_path: Path) -> None:
    base = mkarchive._layer([("bin/", None, 0o755), ("bin/sh", b"#!fake\n", 0o755)])
    save = tmp_path / "base.tar"
    with tarfile.open(save, "w") as t:
        for name, data in (("manifest.json", b'[{"Config":"c.json","Layers":["x/layer.tar"]}]'),
                           ("x/layer.tar", base)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    assert mkarchive.base_layer_from_save(str(save)) == base

    data = mkarchive.build(base, "lab04/app:v1", "0123")
    assert data == mkarchive.build(base, "lab04/app:v1", "0123"), "deterministic for a given nonce"
    assert data != mkarchive.build(base, "lab04/app:v1", "4567"), "the nonce changes the image"
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        (item,) = manifest
        assert item["RepoTags"] == ["lab04/app:v1"]
        config_bytes = t.extractfile(item["Config"]).read()  # type: ignore[union-attr]
        assert item["Config"] == "blobs/sha256/" + hashlib.sha256(config_bytes).hexdigest()
        diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
        layers = [t.extractfile(x).read() for x in item["Layers"]]  # type: ignore[union-attr]
    assert len(layers) == 3 and layers[0] == base
    assert diff_ids == ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    with tarfile.open(fileobj=io.BytesIO(layers[2])) as top:
        assert "etc/.wh.motd" in top.getnames(), "the top layer deletes layer 2's motd"


# -- chapter pages ----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", CHAPTER_PAGES, ids=_ids(CHAPTER_PAGES))
def test_chapter_page_sections(page: Path) -> None:
    text = page.read_text()
    assert text.startswith(f"# Chapter {int(page.name[:2])} ")
    missing = [s for s in CHAPTER_SECTIONS if not re.search(rf"^{re.escape(s)}", text, re.M)]
    assert not missing, f"{page.name} lacks sections {missing}"
    assert f"labs/{page.name[:2]}-" in text, "links its lab"


@pytest.mark.parametrize(
    "page", [*CHAPTER_PAGES, CHAPTERS / "README.md"], ids=_ids([*CHAPTER_PAGES, CHAPTERS / "README.md"])
)
def test_chapter_relative_links_resolve(page: Path) -> None:
    text = page.read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_chapter_index_maps_every_chapter() -> None:
    text = (CHAPTERS / "README.md").read_text()
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"^\| (\d+) \|.*$", text, re.M)}
    assert sorted(rows) == list(range(1, 11))
    pages = {int(p.name[:2]) for p in CHAPTER_PAGES}
    for n, row in rows.items():
        status = row.rstrip(" |").rsplit("|", 1)[-1].strip()
        want = "coming" if n in COMING else "ready"
        assert status == want, f"chapter {n} is marked {want}, found {status!r}"
        # "ready" exactly when the page exists: a written chapter must not stay "coming"
        assert (n in pages) == (status == "ready"), f"chapter {n} is {status} but its page " + (
            "exists" if n in pages else "is missing"
        )
    for page in CHAPTER_PAGES:
        n = int(page.name[:2])
        assert f"({page.name})" in rows[n], f"chapter {n} row links {page.name}"
        assert f"labs/{page.name[:2]}-" in rows[n], f"chapter {n} row names its lab"
    for lab in LAB_DIRS:
        assert f"labs/{lab.name}/" in text, f"the index lists {lab.name}"
