"""The browser page that `emostream serve` serves at / (docs/web.md): static files in static/, three.js and
three-vrm vendored from npm, and the built-in avatar exported as VRM when the server starts."""

from __future__ import annotations

import os
from pathlib import Path

from emostream.runtime.web_files import WebFiles

STATIC = Path(__file__).resolve().parent / "static"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emostream"


def page_files(folder: Path | None = None) -> WebFiles:
    """The page's files, with the built-in avatar written (again) into `folder` as `avatar.vrm` (the
    page's default) and `avatar.glb` (the same as plain glTF)."""
    from emostream.clients.avatar.builtin import build_rigged_avatar
    from emostream.clients.avatar.gltf_export import export_avatar

    avatar = build_rigged_avatar()  # built once for both files: it is most of the server's added start-up
    names = ("avatar.vrm", "avatar.glb")
    return WebFiles(root=STATIC, extra={f"/{n}": export_avatar((folder or cache_dir()) / n, avatar) for n in names})
