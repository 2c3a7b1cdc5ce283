"""The browser page that `emostream serve` serves at / (docs/web.md): static files in static/, three.js and
three-vrm vendored from npm, and the built-in avatar exported as VRM, built once per version of the code
that makes it and kept in the user's cache."""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

from emostream.runtime.web_files import WebFiles

log = logging.getLogger("emostream.web")
STATIC = Path(__file__).resolve().parent / "static"
PACKAGE = Path(__file__).resolve().parents[2]
# The code the built-in avatar is made from (clients/avatar/builtin.py imports the viewer's meshes, the rig
# and its rotations); a change to any of it builds the avatar again.
AVATAR_SOURCES = ("clients/avatar", "clients/viewer", "runtime/rigs.py", "runtime/rotations.py")
AVATAR_FILES = ("avatar.vrm", "avatar.glb")
KEPT_BUILDS = 3  # builds kept, the newest: servers of other versions may still be running on theirs


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emostream"


def avatar_fingerprint() -> str:
    """A hash of the avatar's source files and of the libraries that write it."""
    digest = hashlib.sha256(f"numpy {version('numpy')} pygltflib {version('pygltflib')}".encode())
    for source in AVATAR_SOURCES:
        root = PACKAGE / source
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def page_files(folder: Path | None = None) -> WebFiles:
    """The page's files, with the built-in avatar as `avatar.vrm` (the page's default) and `avatar.glb` (the
    same as plain glTF): built into `folder` (the cache by default) when no build of this code is there,
    which adds about 4 s to a server's start (`emostream bench startup`). A cache that cannot be written
    (a read-only home in a container) costs the build at every start, into a folder of this process's."""
    folder = folder or cache_dir()
    try:
        return _page_files(folder)
    except OSError as exc:
        scratch = Path(tempfile.mkdtemp(prefix="emostream-page-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        log.warning("the avatar cannot be kept in %s (%s): built into %s for this run", folder, exc, scratch)
        return _page_files(scratch)


def _page_files(folder: Path) -> WebFiles:
    key = avatar_fingerprint()
    paths = {name: folder / f"{Path(name).stem}-{key}{Path(name).suffix}" for name in AVATAR_FILES}
    if not all(path.is_file() for path in paths.values()):
        from emostream.clients.avatar.builtin import build_rigged_avatar
        from emostream.clients.avatar.gltf_export import export_avatar

        avatar = build_rigged_avatar()  # once for both files
        for path in paths.values():
            export_avatar(path, avatar)  # written whole or not at all: a server starting beside us reads either
        _forget_old_builds(folder)
    return WebFiles(root=STATIC, extra={f"/{name}": path for name, path in paths.items()})


def _forget_old_builds(folder: Path) -> None:
    """Deletes all but the newest few builds of the avatar in `folder` (and the one file pair that versions
    before the fingerprint wrote, `avatar.vrm` and `avatar.glb`, as one build)."""
    builds: dict[str, list[Path]] = {}
    for path in [*folder.glob("avatar-*.*"), *(folder / name for name in AVATAR_FILES)]:
        if path.is_file():
            builds.setdefault(path.stem, []).append(path)
    newest = sorted(builds, key=lambda key: max(map(_modified, builds[key])), reverse=True)
    for key in newest[KEPT_BUILDS:]:
        for path in builds[key]:
            path.unlink(missing_ok=True)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # pruned by a server starting beside us
        return 0.0
