"""minidocker: a container runtime in Python whose data root is laid out exactly like Docker's.

One package per chapter (see docs/chapters/README.md):
``kernel`` (the only libc caller), ``storage`` (overlay2), ``image`` (layer/image/reference stores),
``archive`` (safe tar extraction, docker-archive save/load), ``cli`` (thin click commands).
"""

__version__ = "0.1.0"
# What we write where Docker writes its own version (image configs' docker_version).
DOCKER_VERSION = "20.10.24+dfsg1"
