"""A small feed server on loopback, for the demo and for tests.

Serves in-memory documents with an ETag, answers ``If-None-Match`` with 304, counts
requests per path, and lets callers change a document while it runs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Document = bytes | Callable[[], bytes]


class FeedServer:
    def __init__(self, documents: dict[str, Document] | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, content_type: str = "application/rss+xml; charset=utf-8",
                 etag: bool = True) -> None:
        self.documents: dict[str, Document] = dict(documents or {})
        self.content_type = content_type
        self.etag = etag
        self.requests: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests[path] += 1
                    document = server.documents.get(path)
                if document is None:
                    self._reply(404, b"not found", "text/plain")
                    return
                body = document() if callable(document) else document
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if server.etag and self.headers.get("If-None-Match") == etag:
                    with server._lock:
                        server.not_modified[path] += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._reply(200, body, server.content_type, {"ETag": etag} if server.etag else {})

            def _reply(self, status: int, body: bytes, content_type: str,
                       headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="feed-server")

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, document: Document) -> None:
        with self._lock:
            self.documents[path] = document

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
