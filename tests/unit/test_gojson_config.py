"""Go-exact JSON, image configs and chain IDs against the bytes dockerd wrote (docker-layout.md)."""

from __future__ import annotations

import hashlib

from minidocker import gojson
from minidocker.image import config as imgconfig
from minidocker.image import digest
from minidocker.image.changes import apply_changes

# docker-layout.md 1.1: `docker import` of busybox, written by dockerd 20.10.24 (962 bytes).
DOCKER_IMPORT_CONFIG = (
    '{"architecture":"amd64","comment":"Imported from -","config":{"Hostname":"","Domainname":"","User":"",'
    '"AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,'
    '"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],'
    '"Cmd":["sh"],"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},'
    '"container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,'
    '"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"",'
    '"Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},'
    '"created":"2026-11-23T09:25:03.849961816Z","docker_version":"20.10.24+dfsg1","history":[{"created":'
    '"2026-11-23T09:25:03.849961816Z","comment":"Imported from -"}],"os":"linux","rootfs":{"type":"layers",'
    '"diff_ids":["sha256:51cd85c54caf8fb37cd4b6b08f17ef58a91c0d83c855bffbd62850f81dd390b1"]}}'
)


def test_import_config_bytes_match_dockerd() -> None:
    created = "2026-11-23T09:25:03.849961816Z"
    cfg = apply_changes(
        imgconfig.container_config(),
        ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["sh"]'],
    )
    data = imgconfig.image_config(
        config=cfg,
        diff_ids=["sha256:51cd85c54caf8fb37cd4b6b08f17ef58a91c0d83c855bffbd62850f81dd390b1"],
        history=[imgconfig.history_entry(created, comment="Imported from -")],
        created=created,
        comment="Imported from -",
    )
    assert data.decode() == DOCKER_IMPORT_CONFIG
    assert len(data) == 962
    assert hashlib.sha256(data).hexdigest().startswith("926dfed1")


def test_go_escaping() -> None:
    assert (
        gojson.marshal("sh -c 'echo a > b' & <x>") == b"\"sh -c 'echo a \\u003e b' \\u0026 \\u003cx\\u003e\""
    )
    assert gojson.marshal("\t\n\r\x01\b\u2028é") == '"\\t\\n\\r\\u0001\\u0008\\u2028é"'.encode()
    assert gojson.marshal({"b": [1, None], "a": True}) == b'{"b":[1,null],"a":true}'
    assert gojson.marshal(gojson.sorted_map({"b": 1, "a": 2})) == b'{"a":2,"b":1}'


def test_rfc3339nano_trims_trailing_zeros() -> None:
    assert gojson.rfc3339nano(ns=0) == "1970-01-01T00:00:00Z"
    ns = gojson.parse_rfc3339("2026-11-23T09:30:25.63411626Z")
    assert gojson.rfc3339nano(ns=ns) == "2026-11-23T09:30:25.63411626Z"
    assert gojson.rfc3339nano(ns=ns - ns % 1_000_000_000) == "2026-11-23T09:30:25Z"


def test_chain_id_rule() -> None:
    a = "sha256:" + "a" * 64
    b = "sha256:" + "b" * 64
    c = "sha256:" + "c" * 64
    assert digest.chain_id([a]) == a
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert digest.chain_id([a, b]) == ab
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert digest.chain_ids([a, b, c]) == [a, ab, abc]


def test_digest_validation_rejects_paths() -> None:
    import pytest

    from minidocker.errors import InvalidInput

    for bad in ["sha256:../../etc", "sha512:" + "a" * 64, "sha256:" + "A" * 64, "a" * 64]:
        with pytest.raises(InvalidInput):
            digest.validate(bad)


def test_changes_shell_form_and_entrypoint() -> None:
    cfg = apply_changes(imgconfig.container_config(), ["CMD echo hi", "EXPOSE 80 53/udp", "LABEL a=b c=d"])
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert list(cfg["ExposedPorts"]) == ["53/udp", "80/tcp"]
    assert cfg["Labels"] == {"a": "b", "c": "d"}
    assert list(cfg).index("ExposedPorts") == list(cfg).index("AttachStderr") + 1
