from pathlib import Path

import pytest

from emostream.cli import main


@pytest.mark.slow
def test_export_builds_what_the_server_runs_then_reuses_it(capsys: pytest.CaptureFixture[str]) -> None:
    # Into the session's engine cache (tests/conftest.py), where the servers of other tests find the same
    # graphs: whichever comes first builds them (tests/engines/test_cache.py tests building and reusing).
    args = ["export", "--backend", "onnx"]
    assert main(args) == 0
    first = capsys.readouterr().out
    # The server's CPU steps at its defaults (58 ms, two sampler steps): state in one tensor, compact
    # batches without masks; the face, the body and the voice-emotion estimator.
    assert "face-lookahead7-steps2-compact-flat-cpu: ONNX " in first
    assert "gesture-steps2-compact-flat-cpu: ONNX " in first
    assert "compact-flat-cpu: ONNX " in first.split("voiceemotion-")[1]
    assert first.count("operator types") == first.count("are supported") == 3  # TensorRT would parse each
    assert first.count("onnx vs eager over 300 steps") == 3
    assert main(args) == 0
    assert capsys.readouterr().out.count("ONNX cached") == 3
    assert main(["export", "--list"]) == 0
    listed = capsys.readouterr().out
    assert " entries in " in listed and int(listed.split()[0]) >= 3  # with what other tests built


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
