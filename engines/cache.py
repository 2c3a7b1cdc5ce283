"""The engine cache: built artifacts (ONNX graphs, TensorRT plans) keyed by everything that shapes them.

An entry lives at `<root>/<backend>/<name>/<key>/` with the artifact and a `meta.json`. The key hashes the
model (weights, buffers, architecture, lookahead, sampler steps), the backend and its version, the
exporter's version, the device and its compute capability, the precision and the batch profile. Reuse
checks that meta.json carries exactly the expected fields and that the artifact's SHA-256 still matches;
anything else is rebuilt. When a name gets a new key (new weights, new library, new profile) the old keys
under that name are stale and are deleted, so the cache never serves or accumulates them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from emostream.runtime.step import StreamingGenerator

log = logging.getLogger("emostream.engines")


def default_cache_root() -> Path:
    """$EMOSTREAM_CACHE, else $XDG_CACHE_HOME/emostream/engines, else ~/.cache/emostream/engines."""
    explicit = os.environ.get("EMOSTREAM_CACHE")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emostream" / "engines"


def model_hash(generator: StreamingGenerator) -> str:
    """SHA-256 over every tensor the step reads (persistent or not), the class, the step spec and the
    constants the module names in its extra_repr (sampling settings baked into the graph)."""
    h = hashlib.sha256()
    h.update(type(generator).__qualname__.encode())
    h.update(repr(generator.spec).encode())
    h.update(generator.extra_repr().encode())
    tensors = dict(generator.named_parameters()) | dict(generator.named_buffers())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def device_description(device: str) -> dict[str, str]:
    """The device an artifact was built for: its name and, on CUDA, its compute capability."""
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        return {"device": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}
    import platform

    return {"device": f"cpu-{platform.machine()}", "compute_capability": "none"}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    path: Path  # the artifact
    meta: dict[str, Any]
    built: bool  # False when an existing entry was reused


class EngineCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_root()

    def get_or_build(
        self, backend: str, name: str, fields: dict[str, Any], artifact: str, build: Callable[[Path], dict[str, Any]]
    ) -> CacheEntry:
        """The artifact for `fields`, built by `build(path)` unless a valid entry exists.

        fields: everything the artifact depends on (JSON-serialisable); the key is their hash.
        build: writes the artifact at `path`; returns extra metadata to record (build time, precision...).
        """
        fields = json.loads(json.dumps(fields, sort_keys=True))  # normalised, as it will be stored
        key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
        folder = self.root / backend / name / key
        path = folder / artifact
        if self._invalid_reason(folder, path, fields) is None:
            return CacheEntry(path, json.loads((folder / "meta.json").read_text()), built=False)
        with self._building(backend, name):
            # Another process (a second server, `emostream export`) may have built it while this one waited.
            reason = self._invalid_reason(folder, path, fields)
            if reason is None:
                return CacheEntry(path, json.loads((folder / "meta.json").read_text()), built=False)
            log.info("engine cache: building %s/%s (%s)", backend, name, reason)
            return self._build(folder, path, key, fields, artifact, build)

    @contextlib.contextmanager
    def _building(self, backend: str, name: str) -> Iterator[None]:
        """Holds `<root>/<backend>/<name>/.lock` (an advisory lock): one process builds a name at a time, so
        workers started together on one machine neither build it twice nor delete each other's folders."""
        lock_path = self.root / backend / name / ".lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("engine cache: waiting for another process building %s/%s", backend, name)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _build(self, folder: Path, path: Path, key: str, fields: dict[str, Any], artifact: str,
               build: Callable[[Path], dict[str, Any]]) -> CacheEntry:  # fmt: skip
        self._drop_stale(folder.parent, keep=key)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        extra = build(path)
        meta = {"key": key, "fields": fields, "artifact": artifact, "sha256": file_sha256(path), **extra}
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(folder / "meta.json")  # written last: an interrupted build leaves no valid entry
        return CacheEntry(path, meta, built=True)

    def entries(self) -> list[dict[str, Any]]:
        """Every valid entry's metadata, for `emostream export --list`."""
        return [json.loads(p.read_text()) for p in sorted(self.root.glob("*/*/*/meta.json"))]

    @staticmethod
    def _invalid_reason(folder: Path, path: Path, fields: dict[str, Any]) -> str | None:
        meta_path = folder / "meta.json"
        if not meta_path.exists() or not path.exists():
            return "not cached"
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            return "unreadable metadata"
        if meta.get("fields") != fields:
            return "metadata does not match"
        if meta.get("sha256") != file_sha256(path):
            return "artifact changed on disk"
        return None

    @staticmethod
    def _drop_stale(name_folder: Path, keep: str) -> None:
        if not name_folder.exists():
            return
        for old in name_folder.iterdir():
            if old.is_dir() and old.name != keep:
                log.info("engine cache: removing stale entry %s", old)
                shutil.rmtree(old, ignore_errors=True)
