"""What the stand-in servers of the registry tests (``staticregistry.py``, ``tokenserver.py``)
share: serving on a free loopback port that the test reads from a file (standard library only;
they run as scripts on the target host, where this module sits next to them)::

    from loopbackhttp import serve_on_free_port
    serve_on_free_port(Handler, args.dir)   # port in <dir>/port, then serves forever
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_on_free_port(handler: type[BaseHTTPRequestHandler], state_dir: str) -> None:
    """Serve ``handler`` on a free 127.0.0.1 port, forever. The port number goes into
    ``<state_dir>/port`` by rename, so a test polling for that file never reads half of it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tmp = os.path.join(state_dir, "port.tmp")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, os.path.join(state_dir, "port"))
    server.serve_forever()
