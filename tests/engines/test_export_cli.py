from pathlib import Path

import pytest

from emostream.cli import main


@pytest.mark.slow
def test_export_builds_what_the_server_runs_once_then_reuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", "--backend", "onnx", "--engine-cache", str(tmp_path), "--steps", "1", "--lookahead-ms", "30"]
    assert main(args) == 0
    first = capsys.readouterr().out
    # The server's CPU steps: state in one tensor, compact batches without masks; the face, the body and
    # the voice-emotion estimator.
    assert "face-lookahead4-steps1-compact-flat-cpu: ONNX exported" in first
    assert "gesture-steps1-compact-flat-cpu: ONNX exported" in first
    assert "compact-flat-cpu: ONNX exported" in first.split("voiceemotion-")[1]
    assert first.count("operator types") == first.count("are supported") == 3  # TensorRT would parse each
    assert first.count("onnx vs eager over 300 steps") == 3
    assert main(args) == 0
    assert capsys.readouterr().out.count("ONNX cached") == 3
    assert main(["export", "--list", "--engine-cache", str(tmp_path)]) == 0
    assert "3 entries" in capsys.readouterr().out


@pytest.mark.slow
def test_a_tensorrt_export_without_tensorrt_checks_operators_then_stops_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emostream.engines.tensorrt_backend import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    assert main(["export", "--backend", "tensorrt", "--engine-cache", str(tmp_path), "--steps", "1", "--no-body"]) == 2
    out = capsys.readouterr().out
    assert "operator types" in out and "engine not built" in out
