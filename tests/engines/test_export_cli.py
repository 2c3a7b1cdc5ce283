from pathlib import Path

import pytest

from emostream.cli import main


def test_export_builds_once_then_reuses_and_reports_parity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["export", "--backend", "onnx", "--engine-cache", str(tmp_path), "--steps", "1", "--lookahead-ms", "30"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "face-lookahead4-steps1-cpu: ONNX exported" in first
    assert "all 25 operator types" in first or ("operator types" in first and "supported" in first)
    assert "onnx vs eager over 300 steps" in first
    assert main(args) == 0
    assert "ONNX cached" in capsys.readouterr().out
    assert main(["export", "--list", "--engine-cache", str(tmp_path)]) == 0
    assert "1 entries" in capsys.readouterr().out


def test_a_tensorrt_export_without_tensorrt_checks_operators_then_stops_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emostream.engines.tensorrt_backend import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    assert main(["export", "--backend", "tensorrt", "--engine-cache", str(tmp_path), "--steps", "1"]) == 2
    out = capsys.readouterr().out
    assert "operator types" in out and "engine not built" in out
