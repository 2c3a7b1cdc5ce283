import json
from pathlib import Path

import numpy as np
import pytest

from runtime.cli import main
from tests.fixtures import DATA


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "demo" in out and "rigs" in out


def test_demo_streams_a_file_and_writes_features_plot_and_latency(tmp_path: Path) -> None:
    assert main(["demo", "--audio", str(DATA / "speech_44100.wav"), "--out", str(tmp_path), "--fast"]) == 0
    features = np.load(tmp_path / "features.npz")
    assert features["logmel"].shape == (240, 80)  # 2 s at 120 frames per second
    assert np.all(np.diff(features["time"]) > 0)
    summary = json.loads((tmp_path / "latency.json").read_text())
    assert summary["compute_per_chunk"]["count"] == 100  # 2 s in 20 ms chunks
    assert (tmp_path / "logmel.png").stat().st_size > 10_000


def test_demo_reports_a_bad_file_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    assert main(["demo", "--audio", str(bad), "--out", str(tmp_path), "--fast"]) == 2
    assert "cannot read audio file" in capsys.readouterr().err


def test_rigs_prints_named_channels_and_skeleton(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rigs", "--compact"]) == 0
    rigs = json.loads(capsys.readouterr().out)
    assert rigs["face"]["channels"][17] == "jawOpen" and rigs["face"]["fps"] == 60
    assert len(rigs["body"]["parents"]) == 55 and len(rigs["body"]["rest_offsets_m"]) == 55
