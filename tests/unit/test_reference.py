"""References (distribution/reference as vendored by Docker 20.10) and repositories.json (moby reference/store.go).

Parsing tables come from distribution's reference_test.go and normalize_test.go. Cases that changed
after Docker 20.10 (IPv6 domains, uppercase first components treated as a domain) are checked with
20.10's behaviour, which is what the on-disk format and the CLI messages follow.
"""

from __future__ import annotations

import multiprocessing
import os
import stat

import pytest

from minidocker import fsutil
from minidocker.errors import Conflict, CorruptStore, InvalidInput, NotFound
from minidocker.image import reference as R
from minidocker.image.reference import Reference, ReferenceStore

F64 = "f" * 64
D_F = "sha256:" + F64
SHA512_F = "sha512:" + "f" * 128

# --- distribution's Parse (no normalisation) -------------------------------------------------------

# (input, name, domain, tag, digest)
RAW_VALID = [
    ("test_com", "test_com", "", None, None),
    ("test.com:tag", "test.com", "", "tag", None),
    ("test.com:5000", "test.com", "", "5000", None),
    ("test.com/repo:tag", "test.com/repo", "test.com", "tag", None),
    ("test:5000/repo", "test:5000/repo", "test:5000", None, None),
    ("test:5000/repo:tag", "test:5000/repo", "test:5000", "tag", None),
    (f"test:5000/repo@{D_F}", "test:5000/repo", "test:5000", None, D_F),
    (f"test:5000/repo:tag@{D_F}", "test:5000/repo", "test:5000", "tag", D_F),
    ("lowercase:Uppercase", "lowercase", "", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a/" * 127 + "a", "a", "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", None, None),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com/bar/baz/quux",
        "sub-dom1.foo.com",
        "some-long-tag",
        None,
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app",
        "b.gcr.io",
        "test.example.com",
        None,
    ),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", None),
    (
        f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512_F}",
        "xn--7o8h.com/myimage",
        "xn--7o8h.com",
        "xn--7o8h.com",
        SHA512_F,
    ),
    ("foo_bar.com:8080", "foo_bar.com", "", "8080", None),
    ("foo/foo_bar.com:8080", "foo/foo_bar.com", "foo", "8080", None),
    ("192.168.1.1", "192.168.1.1", "", None, None),
    ("192.168.1.1:tag", "192.168.1.1", "", "tag", None),
    ("192.168.1.1:5000", "192.168.1.1", "", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1/repo", "192.168.1.1", None, None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000/repo", "192.168.1.1:5000", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", None),
    ("test_com/foo", "test_com/foo", "", None, None),
    ("test-com:8080/foo", "test-com:8080/foo", "test-com:8080", None, None),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo", "xn--n3h.com:18080", None, None),
]


@pytest.mark.parametrize(("text", "name", "domain", "tag", "digest"), RAW_VALID)
def test_parse_raw_valid(text: str, name: str, domain: str, tag: str | None, digest: str | None) -> None:
    r = R.parse_raw(text)
    assert str(r) == text
    assert (r.name, r.domain, r.tag, r.digest) == (name, domain, tag, digest)


RAW_INVALID = [
    ("", "repository name must have at least one component"),
    (":justtag", "invalid reference format"),
    (f"@{D_F}", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    (f"validname@invaliddigest:{F64}", "unsupported digest algorithm"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    # IPv6 domains only became valid after Docker 20.10.
    ("[2001:db8::1]", "invalid reference format"),
    ("[2001:db8::1]/repo", "invalid reference format"),
    ("[::1]:5000/repo", "invalid reference format"),
    ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
    # Python-only pitfalls: a trailing newline, non-ASCII word characters.
    ("busybox\n", "invalid reference format"),
    ("busybox:tag\n", "invalid reference format"),
    ("busybox:tagé", "invalid reference format"),
    ("busybox@sha256:" + "F" * 64, "invalid checksum digest format"),
]


@pytest.mark.parametrize(("text", "message"), RAW_INVALID)
def test_parse_raw_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as ei:
        R.parse_raw(text)
    assert str(ei.value) == message


# --- ParseNormalizedNamed ------------------------------------------------------------------------

VALID_NAMES = [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
    "localhost/x",
    "localhost:5000/x:1",
]


@pytest.mark.parametrize("text", VALID_NAMES)
def test_normalized_valid(text: str) -> None:
    R.parse_normalized_named(text)


INVALID_NAMES = [
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
    # Valid in newer distribution (uppercase first component taken as a domain), not in 20.10.
    "Docker/docker",
    "DOCKER/docker",
    "[fc00::1]:5000/docker",
]


@pytest.mark.parametrize("text", INVALID_NAMES)
def test_normalized_invalid(text: str) -> None:
    with pytest.raises(InvalidInput):
        R.parse_normalized_named(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BUSYBOX", "invalid reference format: repository name must be lowercase"),
        ("Foo/bar", "invalid reference format: repository name must be lowercase"),
        ("example.com/Foo:tag", "invalid reference format: repository name must be lowercase"),
        # Only the part before the first ':' is checked, so an uppercase algorithm trips it too.
        ("foo@SHA256:" + F64, "invalid reference format: repository name must be lowercase"),
        ("busy:box:x", "invalid reference format"),
        ("", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        ("busybox:-x", "invalid reference format"),
        ("busybox:" + "a" * 129, "invalid reference format"),
        (
            F64,
            f"invalid repository name ({F64}), cannot specify 64-byte hexadecimal strings",
        ),
        ("a" * 250, "repository name must not be more than 255 characters"),
    ],
)
def test_normalized_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as ei:
        R.parse_normalized_named(text)
    assert str(ei.value) == message


# (remote name, familiar name, full name, other spellings, domain)
REPO_INFO = [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", ["index.docker.io/fooo/bar"], "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", ["library/ubuntu"], "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", [], "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", [], "docker.io"),
    (
        "private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        [],
        "127.0.0.1:8000",
    ),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", [], "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", [], "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", [], "example.com"),
    (
        "private/moonbase",
        "example.com:8000/private/moonbase",
        "example.com:8000/private/moonbase",
        [],
        "example.com:8000",
    ),
    (
        "privatebasee",
        "example.com:8000/privatebasee",
        "example.com:8000/privatebasee",
        [],
        "example.com:8000",
    ),
    (
        "library/ubuntu-12.04-base",
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        ["index.docker.io/library/ubuntu-12.04-base"],
        "docker.io",
    ),
    ("library/foo", "foo", "docker.io/library/foo", ["docker.io/foo"], "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", [], "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", [], "docker.io"),
    ("x", "localhost/x", "localhost/x", [], "localhost"),
]


@pytest.mark.parametrize(("path", "familiar", "full", "others", "domain"), REPO_INFO)
def test_repository_info(path: str, familiar: str, full: str, others: list[str], domain: str) -> None:
    for text in [familiar, full, *others]:
        r = R.parse(text)
        assert (r.familiar_name, r.name, str(r), r.domain, r.path) == (familiar, full, full, domain, path)


def test_tag_and_digest() -> None:
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    r = R.parse(short)
    assert str(r) == "docker.io/library/" + short
    assert r.tag == "latest" and r.digest is not None
    assert r.familiar_string() == short
    assert r.favor_digest().familiar_string() == "busybox@" + r.digest
    assert str(R.parse_docker_ref(short)) == "docker.io/library/busybox@" + r.digest


def test_familiar_and_defaults() -> None:
    r = R.parse("busybox")
    assert r == Reference("docker.io", "library/busybox", None, None)
    assert r.is_name_only and r.familiar_string() == "busybox"
    assert R.tag_name_only(r).familiar_string() == "busybox:latest"
    assert str(r.with_default_tag()) == "docker.io/library/busybox:latest"
    d = R.parse(f"busybox@{D_F}")
    assert d.with_default_tag() is d  # a digest ref gets no default tag
    assert d.familiar_string() == f"busybox@{D_F}"
    assert R.parse("user/x:1").familiar_string() == "user/x:1"
    assert R.parse("127.0.0.1:5000/library/busybox").familiar_name == "127.0.0.1:5000/library/busybox"
    assert R.parse("localhost/x:y").familiar_string() == "localhost/x:y"
    assert R.parse("host:5000/ns/name:tag") == Reference("host:5000", "ns/name", "tag", None)
    assert R.parse_docker_ref("busybox").familiar_string() == "busybox:latest"


def test_with_tag_and_digest() -> None:
    named = R.parse_raw("test.com:8000/foo")
    assert str(named.with_tag("TAG5")) == "test.com:8000/foo:TAG5"
    short_digest = "sha256:1234567890098765432112345667890098765"
    assert str(named.with_digest(short_digest).with_tag("TAG5")) == f"test.com:8000/foo:TAG5@{short_digest}"
    assert (
        str(named.with_tag("latest").with_digest(short_digest)) == f"test.com:8000/foo:latest@{short_digest}"
    )
    assert R.parse("busybox:1").trim() == R.parse("busybox")
    with pytest.raises(InvalidInput, match="^invalid tag format$"):
        R.parse("busybox").with_tag("-foo")
    with pytest.raises(InvalidInput, match="^invalid digest format$"):
        R.parse("busybox").with_digest("foo")


def test_parse_any_reference_and_ids() -> None:
    hexid = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
    assert R.parse_any_reference(hexid) == "sha256:" + hexid
    assert R.parse_any_reference("sha256:" + hexid) == "sha256:" + hexid
    for text, full in [
        ("redis", "docker.io/library/redis"),
        ("redis:latest", "docker.io/library/redis:latest"),
        (f"redis@sha256:{hexid}", f"docker.io/library/redis@sha256:{hexid}"),
        ("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
        ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest"),
    ]:
        assert str(R.parse_any_reference(text)) == full
    assert R.looks_like_id(hexid) and not R.looks_like_id(hexid.upper()) and not R.looks_like_id(hexid[:12])
    assert R.looks_like_short_id(hexid[:12]) and not R.looks_like_short_id("abc")


def test_pathological_input_is_fast() -> None:
    # Python's backtracking re must not blow up where Go's RE2 is linear.
    for text in ["a" * 3000 + "!", "a-" * 2000 + "!", "a_" * 2000 + "!", "a." * 2000 + "/!"]:
        with pytest.raises(InvalidInput):
            R.parse_raw(text)


# --- the reference store --------------------------------------------------------------------------

EXAMPLE = (
    b'{"Repositories":{"127.0.0.1:5000/library/busybox":{"127.0.0.1:5000/library/busybox:latest":'
    b'"sha256:926dfed1783150446184bfc970a620a9b4a5b47c4c8438d41cb0595081390d5c",'
    b'"127.0.0.1:5000/library/busybox@sha256:9734b656a806420243decfce6cbce4553e65bf2a495e63b14a603d9453f98b41":'
    b'"sha256:926dfed1783150446184bfc970a620a9b4a5b47c4c8438d41cb0595081390d5c"},'
    b'"busybox":{"busybox:local":"sha256:926dfed1783150446184bfc970a620a9b4a5b47c4c8438d41cb0595081390d5c"}}}'
)
IMG = "sha256:926dfed1783150446184bfc970a620a9b4a5b47c4c8438d41cb0595081390d5c"
IMG2 = "sha256:" + "2" * 64
MANIFEST = "sha256:9734b656a806420243decfce6cbce4553e65bf2a495e63b14a603d9453f98b41"


def _store(tmp_path: os.PathLike[str]) -> ReferenceStore:
    root = os.fspath(tmp_path)
    return ReferenceStore(
        os.path.join(root, "image", "overlay2", "repositories.json"), fsutil.DataRootLock(root)
    )


def _bytes(store: ReferenceStore) -> bytes:
    with open(store.path, "rb") as f:
        return f.read()


def test_example_bytes(tmp_path: os.PathLike[str]) -> None:
    s = _store(tmp_path)
    # Insertion order differs from the file order on purpose: both levels must come out sorted.
    s.add_tag("busybox:local", IMG)
    s.add_digest(f"127.0.0.1:5000/library/busybox@{MANIFEST}", IMG)
    s.add_tag(R.parse("127.0.0.1:5000/library/busybox"), IMG)
    assert _bytes(s) == EXAMPLE
    assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(s.path)).st_mode) == 0o700
    assert not [n for n in os.listdir(os.path.dirname(s.path)) if n.startswith(".tmp-")]


def test_read_real_file_with_newline(tmp_path: os.PathLike[str]) -> None:
    s = _store(tmp_path)
    os.makedirs(os.path.dirname(s.path))
    with open(s.path, "wb") as f:
        f.write(EXAMPLE + b"\n")
    assert s.get("busybox:local") == IMG
    assert s.get(f"127.0.0.1:5000/library/busybox:whatever@{MANIFEST}") == IMG  # digest wins
    assert [r.familiar_string() for r in s.references(IMG)] == [
        "127.0.0.1:5000/library/busybox:latest",
        f"127.0.0.1:5000/library/busybox@{MANIFEST}",
        "busybox:local",
    ]
    assert [str(r) for r in s.references(IMG)][-1] == "docker.io/library/busybox:local"
    assert s.references(IMG2) == []
    assert list(s.all()) == ["127.0.0.1:5000/library/busybox", "busybox"]
    # A no-op add does not rewrite; a real change rewrites without the newline.
    s.add_tag("busybox:local", IMG)
    assert _bytes(s) == EXAMPLE + b"\n"
    s.add_tag("busybox:other", IMG)
    s.delete("busybox:other")
    assert _bytes(s) == EXAMPLE


def test_absent_and_initialize(tmp_path: os.PathLike[str]) -> None:
    s = _store(tmp_path)
    assert s.all() == {} and s.references(IMG) == []
    with pytest.raises(NotFound, match="^reference does not exist$"):
        s.get("busybox")
    assert s.delete("busybox") is False
    assert not os.path.exists(s.path)
    s.initialize()
    assert _bytes(s) == b'{"Repositories":{}}'
    s.add_tag("busybox", IMG)
    s.initialize()  # does not clobber
    assert s.get("busybox:latest") == IMG


def test_corrupt_file(tmp_path: os.PathLike[str]) -> None:
    s = _store(tmp_path)
    os.makedirs(os.path.dirname(s.path))
    with open(s.path, "wb") as f:
        f.write(b'{"Repositories":')
    with pytest.raises(CorruptStore):
        s.all()


def test_tag_rules(tmp_path: os.PathLike[str]) -> None:
    s = _store(tmp_path)
    s.add_tag("busybox", IMG)
    assert s.get("busybox") == IMG and s.get("docker.io/library/busybox:latest") == IMG
    with pytest.raises(Conflict) as ei:
        s.add_tag("busybox:latest", IMG2)
    assert str(ei.value) == (
        f"Conflict: Tag busybox:latest is already set to image {IMG}, "
        "if you want to replace it, please use the force option"
    )
    s.add_tag("busybox:latest", IMG2, force=True)
    assert s.get("busybox") == IMG2
    with pytest.raises(InvalidInput, match="^refusing to create a tag with a digest reference$"):
        s.add_tag(f"busybox@{MANIFEST}", IMG)
    with pytest.raises(
        InvalidInput, match="^refusing to create an ambiguous tag using digest algorithm as name$"
    ):
        s.add_tag("sha256:x", IMG)
    with pytest.raises(InvalidInput):
        s.add_tag("busybox:x", "926dfed1783150446184bfc970a620a9b4a5b47c4c8438d41cb0595081390d5c")
    with pytest.raises(InvalidInput):
        s.add_digest("busybox:x", IMG)


def test_digest_rules(tmp_path: os.PathLike[str]) -> None:
    s = _store(tmp_path)
    # Tag and digest together: stored as the digest only.
    s.add_digest(f"busybox:1.36@{MANIFEST}", IMG)
    assert s.all() == {"busybox": {f"busybox@{MANIFEST}": IMG}}
    s.add_digest(f"busybox@{MANIFEST}", IMG)  # same image: fine, nothing written
    for force in (False, True):
        with pytest.raises(Conflict, match=f"^Cannot overwrite digest {MANIFEST}$"):
            s.add_digest(f"busybox@{MANIFEST}", IMG2, force=force)
    assert s.get(f"busybox@{MANIFEST}") == IMG
    assert s.delete(f"busybox:anything@{MANIFEST}") is True
    assert s.all() == {}
    assert _bytes(s) == b'{"Repositories":{}}'


def test_delete_and_by_name(tmp_path: os.PathLike[str]) -> None:
    s = _store(tmp_path)
    s.add_tag("busybox:b", IMG)
    s.add_tag("busybox:a", IMG2)
    s.add_tag("user/x", IMG)
    assert [(r.familiar_string(), i) for r, i in s.references_by_name("docker.io/library/busybox:zzz")] == [
        ("busybox:a", IMG2),
        ("busybox:b", IMG),
    ]
    assert s.delete("busybox:a") is True
    assert s.delete("busybox:a") is False
    assert s.delete("user/x") is True  # bare name means :latest
    assert s.all() == {"busybox": {"busybox:b": IMG}}


def _add_many(root: str, prefix: str, n: int) -> None:
    store = ReferenceStore(os.path.join(root, "repositories.json"), fsutil.DataRootLock(root))
    for i in range(n):
        store.add_tag(f"{prefix}:{i}", "sha256:" + f"{i:064x}")


def test_concurrent_processes_do_not_lose_updates(tmp_path: os.PathLike[str]) -> None:
    root = os.fspath(tmp_path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(root, name, 40)) for name in ("alpha", "beta", "gamma/x")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = ReferenceStore(os.path.join(root, "repositories.json"), fsutil.DataRootLock(root))
    everything = store.all()
    assert sorted(everything) == ["alpha", "beta", "gamma/x"]
    assert all(len(v) == 40 for v in everything.values())
    # Sorted by full name, as moby does: docker.io/gamma/x before docker.io/library/alpha.
    assert [r.familiar_string() for r in store.references("sha256:" + f"{7:064x}")] == [
        "gamma/x:7",
        "alpha:7",
        "beta:7",
    ]


# --- the plain fast path agrees with the grammar ---------------------------------------------------

PLAIN_PROBES = [
    "docker.io/library/busybox",
    "docker.io/library/busybox:latest",
    "docker.io/library/busybox:1.36.1",
    "docker.io/library/busybox:_x",
    "docker.io/library/busybox:X-Y.z",
    "docker.io/library/busybox:" + "a" * 128,
    "docker.io/library/busybox:" + "a" * 129,  # tag too long
    "docker.io/library/busybox:.x",
    "docker.io/library/busybox:-x",
    "docker.io/library/busybox:",
    "docker.io/library/busy-box",  # separators: the grammar decides
    "docker.io/library/busy__box:1",
    "docker.io/library/Busybox",
    "docker.io/library/busybox@" + D_F,
    "docker.io/library/busybox:1@" + D_F,
    "docker.io/library//busybox",
    "docker.io/library/",
    "docker.io/" + "a" * 250,
    "docker.io/" + "a" * 246 + ":tag",
    "docker.io/a/b/c/d",
    "docker.io/a:b/c",
    "docker.io/é",
    "docker.io:5000/x",
    "localhost/x:1",
    "docker.io/library/busybox:ta g",
    "docker.io/library/busybox:tag\n",
]


@pytest.mark.parametrize("s", PLAIN_PROBES)
def test_the_plain_fast_path_agrees_with_the_grammar(s: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_parse_plain`` takes the common ``docker.io/<lowercase>/<lowercase>[:tag]`` without the
    grammar's regexes; whatever it accepts, the grammar accepts the same way, and whatever it
    declines still gets the grammar's answer."""

    def outcome() -> object:
        try:
            return R.parse_raw(s)
        except InvalidInput as e:
            return str(e)

    fast = outcome()
    monkeypatch.setattr(R, "_parse_plain", lambda s: None)
    assert outcome() == fast
    plain = R._parse_plain(s)
    if plain is not None:
        assert plain == fast


def test_the_plain_fast_path_takes_the_usual_names() -> None:
    for s in ("busybox", "busybox:latest", "library/alpine:3.19", "me/app1"):
        assert R._parse_plain(str(R.parse(s))) is not None, s
    assert R.looks_like_id("a" * 64) and not R.looks_like_id("a" * 63 + "g") and not R.looks_like_id("A" * 64)
    assert (
        R.looks_like_short_id("abcdef")
        and not R.looks_like_short_id("abcde")
        and not R.looks_like_short_id("a" * 65)
    )


def test_a_plain_name_compiles_no_regular_expression() -> None:
    """``run busybox`` parses its image without compiling the grammar (~0.6 ms of every run)."""
    import re

    re.purge()
    R.parse("busybox:latest").with_default_tag()
    R.looks_like_id("busybox")
    assert not re._cache  # type: ignore[attr-defined]
