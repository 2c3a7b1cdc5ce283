"""The engine cache reuses an entry only when everything that shaped it is unchanged."""

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from emostream.engines import onnx_backend
from emostream.engines.cache import EngineCache, model_hash
from emostream.engines.factory import cache_name
from emostream.engines.onnx_backend import cached_onnx
from emostream.runtime.models.face import FaceConfig, FaceGenerator, FaceNetwork


def small_face(seed: int, lookahead: int = 7, steps: int = 2) -> FaceGenerator:
    torch.manual_seed(seed)
    network = FaceNetwork(FaceConfig(channels=16, dilations=(1,), hidden=24)).eval()
    return FaceGenerator(network, lookahead=lookahead, n_steps=steps).eval()


def test_an_unchanged_model_reuses_its_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick_export(monkeypatch)
    cache = EngineCache(tmp_path)
    face = small_face(0)
    first = cached_onnx(face, cache_name(face, "cpu"), cache)
    again = cached_onnx(small_face(0), cache_name(face, "cpu"), cache)  # same weights, rebuilt object
    assert first.built and not again.built
    assert again.path == first.path
    assert again.meta["fields"]["model"] == model_hash(face)
    keyed_by = {"model", "backend", "onnxruntime", "exporter", "device", "compute_capability", "precision", "profile"}
    assert keyed_by <= set(again.meta["fields"])


def quick_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached builds write the model's hash instead of exporting: a test of what the cache keys on and
    keeps needs no real graph (tests/engines/test_backends.py and test_export_cli.py cache real ones), and
    an export takes seconds."""

    def export(generator: FaceGenerator, path: Path) -> Path:
        path.write_text(model_hash(generator))
        return path

    monkeypatch.setattr(onnx_backend, "export_step_onnx", export)


def test_new_weights_rebuild_and_the_stale_entry_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick_export(monkeypatch)
    cache = EngineCache(tmp_path)
    old = cached_onnx(small_face(0), "face", cache)
    new = cached_onnx(small_face(1), "face", cache)
    assert new.built and new.path != old.path
    assert not old.path.exists(), "a stale entry must not stay behind to be reused"
    assert [e["key"] for e in cache.entries()] == [new.meta["key"]]


def test_lookahead_and_step_count_are_part_of_the_model(tmp_path: Path) -> None:
    assert len({model_hash(small_face(0, lookahead=la, steps=s)) for la, s in ((7, 2), (7, 1), (4, 2))}) == 3
    assert cache_name(small_face(0, 4, 1), "cpu") == "face-lookahead4-steps1-cpu"


def test_a_new_runtime_version_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick_export(monkeypatch)
    cache = EngineCache(tmp_path)
    cached_onnx(small_face(0), "face", cache)
    monkeypatch.setattr(onnx_backend, "onnxruntime_version", lambda: "99.0.0")
    rebuilt = cached_onnx(small_face(0), "face", cache)
    assert rebuilt.built and rebuilt.meta["fields"]["onnxruntime"] == "99.0.0"


def test_an_artifact_changed_on_disk_is_rebuilt_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick_export(monkeypatch)
    cache = EngineCache(tmp_path)
    entry = cached_onnx(small_face(0), "face", cache)
    entry.path.write_bytes(entry.path.read_bytes()[:-10])  # truncated, as by a full disk
    rebuilt = cached_onnx(small_face(0), "face", cache)
    assert rebuilt.built and rebuilt.meta["sha256"] == entry.meta["sha256"]


def test_an_interrupted_build_leaves_no_entry(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)

    def failing_build(path: Path) -> dict[str, str]:
        path.write_bytes(b"half an engine")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("onnx", "face", {"model": "x"}, "step.onnx", failing_build)
    assert cache.entries() == []
    entry = cache.get_or_build("onnx", "face", {"model": "x"}, "step.onnx", lambda p: p.write_bytes(b"ok") and {})
    assert entry.built


def slow_build(path: Path) -> dict[str, Any]:
    """A build that outlasts the other process's arrival; it leaves a line in builds.log beside the cache
    for every build that started."""
    with (path.parents[3] / "builds.log").open("a") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    path.write_text("graph")
    return {}


def build_when_told(root: Path) -> str:
    """Says it is ready, waits for the go, then asks the cache: both processes ask at the same moment."""
    (root / f"ready-{os.getpid()}").touch()
    while not (root / "go").exists():
        time.sleep(0.01)
    entry = EngineCache(root / "cache").get_or_build("onnx", "face", {"model": "m"}, "step.onnx", slow_build)
    return entry.path.read_text()


def test_two_processes_asking_at_once_build_once_and_both_get_the_entry(tmp_path: Path) -> None:
    # Two servers started together on one machine: one builds, the other waits for it and reuses it.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map_async(build_when_told, [tmp_path, tmp_path])
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        (tmp_path / "go").touch()
        assert results.get(timeout=60) == ["graph", "graph"]
    assert len((tmp_path / "cache" / "builds.log").read_text().split()) == 1
