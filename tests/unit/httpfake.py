"""Fake HTTP servers for unit tests: an ``http.server`` handler class served on a free 127.0.0.1
port by a thread of the test process, for as long as a ``with`` lasts::

    from httpfake import serving   # tests/unit is on sys.path under pytest

    with serving(_Fake) as address:   # "127.0.0.1:<port>"
        client.Registry(address, None).ping()
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free loopback port: yields ``127.0.0.1:<port>``; shut down after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
