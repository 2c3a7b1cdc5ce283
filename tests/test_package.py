"""The installed distribution: one top-level package, `emostream`, with its data files."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_a_wheel_built_from_a_clean_tree_holds_only_the_emostream_package(tmp_path: Path) -> None:
    # Build from a copy of the tracked files, as a fresh clone would: a build/ folder left in the working
    # tree by an earlier build would otherwise leak stale modules into the wheel.
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    source = tmp_path / "source"
    for name in tracked.decode().split("\0"):
        if name and not name.startswith(("tests/", "benchmarks/results/", "docs/")):
            target = source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target, follow_symlinks=False)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "wheel")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("emostream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"emostream", "-".join(wheel.name.split("-")[:2]) + ".dist-info"}
    for package in ("runtime", "engines", "clients", "training", "benchmarks", "runtime/models", "clients/viewer"):
        assert f"emostream/{package}/__init__.py" in names
    assert "emostream/runtime/assets/face.pt" in names and "emostream/runtime/assets/gesture.pt" in names
    assert any(n.startswith("emostream/engines/data/") for n in names)
    # the browser page and its vendored libraries, with their licences: `emostream serve` needs no network
    for page_file in ("index.html", "app.js", "vendor/three/three.core.min.js", "vendor/three-vrm/LICENSE"):
        assert f"emostream/clients/web/static/{page_file}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "emostream = emostream.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
