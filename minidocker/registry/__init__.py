"""Chapter 5: the registry client (Distribution v2 API): pull, push, login, logout.

Modules, top to bottom:

* :mod:`.manifest`      media types, manifest/index parsing (CVE-2021-41190 checks), platform choice
* :mod:`.auth`          ``WWW-Authenticate`` parsing, Basic and Bearer token flow, ``config.json``
* :mod:`.client`        HTTP on ``requests`` (imported only by these verbs): ping, manifests, blobs
* :mod:`.distribution`  ``image/overlay2/distribution/`` metadata, byte for byte like dockerd
* :mod:`.pull` / :mod:`.push`  the two transfers, writing what ``docker pull``/``push`` write
"""
