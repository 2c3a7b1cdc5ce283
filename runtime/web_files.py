"""Static files over the server's HTTP side (the browser page, clients/web): GET of a path under a web
root, or of a named extra file (the built-in avatar, exported at start). Nothing outside them is served:
a path that leaves the root is refused as not found."""

from __future__ import annotations

import http
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

TYPES = {
    ".js": "text/javascript",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".json": "application/json",
    ".vrm": "model/gltf-binary",
    ".glb": "model/gltf-binary",
    ".md": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class WebFiles:
    root: Path | None = None  # "/" is root/index.html; "/a/b.js" is root/a/b.js
    extra: dict[str, Path] = field(default_factory=dict)  # URL path -> file

    def find(self, url_path: str) -> Path | None:
        path = url_path.split("?", 1)[0]
        if path in self.extra:
            return self.extra[path]
        if self.root is None:
            return None
        root = self.root.resolve()
        wanted = (root / (path.lstrip("/") or "index.html")).resolve()
        if not wanted.is_relative_to(root) or not wanted.is_file():
            return None
        return wanted

    def respond(self, request: Request) -> Response | None:
        """The file for a plain GET (not a WebSocket upgrade); 404 for a GET of nothing served; None for a
        WebSocket handshake, which the server handles."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        found = self.find(request.path)
        if found is None:
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        kind = TYPES.get(found.suffix.lower()) or mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return _response(http.HTTPStatus.OK, found.read_bytes(), kind)


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")]
    )
    return Response(status.value, status.phrase, headers, body)
