#!/usr/bin/env python3
"""A WebDAV server standing in for a dCache door, for the crawler's tests.

wsgidav serves ROOT over WebDAV with basic auth (user `crawler`, password
from WEBDAV_PASSWORD). A small middleware answers `Want-Digest: adler32, md5`
on GET and HEAD with an RFC 3230 `Digest:` header, as dCache doors do.

    webdav_digest.py ROOT PORT
"""
import base64
import hashlib
import os
import sys
import zlib
from pathlib import Path

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp


def digest_middleware(app, root):
    root = Path(root).resolve()

    def wrapped(environ, start_response):
        want = environ.get("HTTP_WANT_DIGEST", "").lower()
        path = (root / environ.get("PATH_INFO", "/").lstrip("/")).resolve()
        if not want or environ["REQUEST_METHOD"] not in ("GET", "HEAD") or not path.is_file() or root not in path.parents:
            return app(environ, start_response)
        data = path.read_bytes()
        parts = []
        if "adler32" in want:
            parts.append("adler32=%08x" % (zlib.adler32(data) & 0xFFFFFFFF))
        if "md5" in want:
            parts.append("md5=" + base64.b64encode(hashlib.md5(data).digest()).decode())

        def start(status, headers, exc_info=None):
            if parts:
                headers = list(headers) + [("Digest", ",".join(parts))]
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped


def main():
    root, port = sys.argv[1], int(sys.argv[2])
    password = os.environ.get("WEBDAV_PASSWORD", "crawler-secret")
    config = {
        "host": "127.0.0.1",
        "port": port,
        "provider_mapping": {"/": root},
        "http_authenticator": {"domain_controller": None, "accept_basic": True, "accept_digest": False,
                               "default_to_digest": False},
        "simple_dc": {"user_mapping": {"*": {"crawler": {"password": password}}}},
        "verbose": 1,
        "logging": {"enable_loggers": []},
        "property_manager": True,
        "lock_storage": True,
    }
    app = digest_middleware(WsgiDAVApp(config), root)
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=8)
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
