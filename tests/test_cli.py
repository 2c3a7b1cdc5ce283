import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emostream.cli import main
from tests.fixtures import DATA


def test_version_names_the_package_and_the_wire_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"emostream {version('emostream')} (wire protocol 1)"


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "demo" in out and "rigs" in out


@pytest.mark.slow
def test_the_parser_imports_neither_torch_nor_onnx() -> None:
    # Every command builds the parser first: a client (stream, view, a bridge) or --help should not wait
    # the seconds those imports take (`emostream bench startup`).
    probe = ("import sys; from emostream.cli import build_parser; build_parser(); "
             "print('torch' in sys.modules, 'onnx' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert found == ["False", "False"]


def test_demo_streams_through_a_real_server_and_renders_video_sheet_and_latency(tmp_path: Path) -> None:
    assert main(["demo", "--audio", str(DATA / "speech_44100.wav"), "--out", str(tmp_path), "--headless"]) == 0
    face = np.load(tmp_path / "face.npz")
    assert face["face"].shape == (120, 59)  # 2 s at 60 fps, over the WebSocket session
    assert list(face["face_channels"][:2]) == ["eyeBlinkLeft", "eyeLookDownLeft"]
    assert np.all(np.diff(face["time"]) > 0)
    summary = json.loads((tmp_path / "latency.json").read_text())
    latency = summary["capture_to_frame_received"]  # paced in real time, so latencies are real
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] < 1000
    assert summary["algorithmic_latency_ms"] == pytest.approx(59.3, abs=0.5)
    meta = json.loads(str(face["meta"]))
    assert [c[1].split()[0] for c in meta["captions"]] == ["neutral", "happy", "sad", "surprised"]
    assert (tmp_path / "face.png").stat().st_size > 10_000
    assert (tmp_path / "contact.png").stat().st_size > 10_000
    assert (tmp_path / "body.png").stat().st_size > 10_000  # the shipped gesture model's contact sheet
    assert np.load(tmp_path / "face.npz")["body_quat"].shape[1:] == (55, 4)
    assert (tmp_path / "demo.mp4").stat().st_size > 10_000
    assert (tmp_path / "face.csv").read_text().startswith("Timecode,BlendShapeCount,EyeBlinkLeft")


def test_animate_writes_npz_json_and_live_link_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = str(DATA / "speech_22050.wav")
    args = ["--emotion", "happy", "--intensity", "0.7", "--seed", "3", "--lookahead-ms", "60", "--steps", "2"]
    args += ["--no-body"]  # the body has its own test
    assert main(["animate", wav, "-o", str(tmp_path / "a.npz"), *args]) == 0
    out = np.load(tmp_path / "a.npz")
    assert out["face"].shape == (120, 59) and out["face"].dtype == np.float32 and int(out["fps"]) == 60
    np.testing.assert_allclose(out["time"][:3], [0, 1 / 60, 2 / 60])
    meta = json.loads(str(out["meta"]))
    assert meta["emotion"] == "happy" and meta["lookahead_ms"] == pytest.approx(58.33) and meta["seed"] == 3
    assert main(["animate", wav, "-o", str(tmp_path / "a.json"), *args]) == 0
    as_json = json.loads((tmp_path / "a.json").read_text())
    np.testing.assert_allclose(np.array(as_json["face"]), out["face"], atol=1e-4)  # same seed, same frames
    assert main(["animate", wav, "-o", str(tmp_path / "a.csv"), *args]) == 0
    rows = (tmp_path / "a.csv").read_text().splitlines()
    assert len(rows) == 121 and len(rows[0].split(",")) == 2 + 52 + 9
    assert main(["animate", wav, "-o", str(tmp_path / "a.txt")]) == 2
    assert "unknown output format" in capsys.readouterr().err


def test_animate_auto_takes_the_emotion_from_the_voice_chunk_by_chunk(tmp_path: Path) -> None:
    wav = str(DATA / "speech_16000.wav")
    assert main(["animate", wav, "-o", str(tmp_path / "a.npz"), "--emotion", "auto", "--no-body"]) == 0
    out = np.load(tmp_path / "a.npz")
    meta = json.loads(str(out["meta"]))
    assert meta["emotion"] == "auto" and meta["auto_weight"] == 1.0
    estimates = np.array(meta["voice_emotion"])  # per 20 ms chunk: 8 weights, arousal, valence
    assert estimates.shape == (round(out["face"].shape[0] / 60 / 0.02), 10)
    np.testing.assert_allclose(estimates[:, :8].sum(axis=1), 1.0, atol=1e-3)
    assert np.isfinite(out["face"]).all()


def test_animate_refuses_an_unknown_emotion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_code:
        main(["animate", str(DATA / "speech_16000.wav"), "-o", str(tmp_path / "a.npz"), "--emotion", "bored"])
    assert exit_code.value.code == 2
    assert "invalid choice: 'bored'" in capsys.readouterr().err


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


def test_animate_with_the_body_writes_the_body_keys_and_takes_a_style_clip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emostream.runtime.models.gesture import save_gesture_checkpoint
    from tests.fixtures import SMALL_STYLES, small_gesture_network

    checkpoint = tmp_path / "gesture.pt"
    save_gesture_checkpoint(checkpoint, small_gesture_network(), SMALL_STYLES, {})
    wav = str(DATA / "speech_16000.wav")
    common = ["--gesture-checkpoint", str(checkpoint)]
    assert main(["animate", wav, "-o", str(tmp_path / "a.npz"), "--style", "ben", *common]) == 0
    out = np.load(tmp_path / "a.npz")
    assert out["body_quat"].shape == (60, 55, 4) and out["body_trans"].shape == (60, 3)
    assert list(out["body_joints"][:3]) == ["pelvis", "left_hip", "right_hip"] and int(out["body_fps"]) == 30
    np.testing.assert_allclose(np.linalg.norm(out["body_quat"], axis=-1), 1.0, atol=1e-5)
    assert json.loads(str(out["meta"]))["style"] == "ben"
    # A 2 s clip is too short to carry a style; a 5 s one works.
    assert main(["animate", wav, "-o", str(tmp_path / "b.npz"), "--style", str(tmp_path / "a.npz"), *common]) == 2
    assert "at least 4 s" in capsys.readouterr().err
    clip = tmp_path / "clip.npz"
    rng = np.random.default_rng(0)
    np.savez(clip, body_axis_angle=rng.normal(0, 0.2, (150, 55, 3)), body_trans=np.zeros((150, 3)), body_fps=30)
    assert main(["animate", wav, "-o", str(tmp_path / "c.npz"), "--style", str(clip), *common]) == 0
    assert main(["animate", wav, "-o", str(tmp_path / "d.npz"), "--style", "nobody", *common]) == 2
    assert "unknown style" in capsys.readouterr().err
    assert main(["animate", wav, "-o", str(tmp_path / "e.npz"), "--no-body"]) == 0
    assert "body_quat" not in np.load(tmp_path / "e.npz")


def test_a_server_that_is_not_there_is_one_line_and_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.runtime.test_serve_process import free_port

    wav = str(DATA / "speech_16000.wav")
    result = subprocess.run([sys.executable, "-m", "emostream", "stream", wav, "--url", f"ws://127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "connection refused" in result.stderr and "Traceback" not in result.stderr


def test_user_errors_are_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = str(DATA / "speech_16000.wav")
    face_only = tmp_path / "face.npz"
    assert main(["animate", wav, "-o", str(face_only), "--no-body"]) == 0
    capsys.readouterr()
    cases = [
        (["export-bvh", str(face_only), "-o", str(tmp_path / "x.bvh")], "holds a face animation and no body"),
        (["export-beat2", str(face_only), "-o", str(tmp_path / "x.npz")], "emostream animate"),
        (["render", str(face_only), "-o", str(tmp_path / "x.mp4"), "--view", "body"], "no body frames"),
        (["render", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.mp4")], "not a readable npz"),
        (["render", str(face_only), "-o", str(tmp_path / "x.mp4"), "--avatar", wav], "not a readable glTF or VRM"),
        (["animate", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "a.npz")], "no such audio file"),
        (["stream", wav, "--url", "http://example.org"], "not a WebSocket URL"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, (argv, err)


def test_help_lists_choices_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from emostream.runtime.assets import SHIPPED_STYLES

    for command, expected in (("serve", ["127.0.0.1", "8765", "(default: 32)", "(default: auto)"]),
                              ("animate", ["surprised", "contempt", *SHIPPED_STYLES[:3], "(default: 2)"]),
                              ("stream", ["ws://127.0.0.1:8765", "angry", "--mic-device"])):  # fmt: skip
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(word in text for word in expected), (command, [w for w in expected if w not in text])


def test_the_style_names_in_help_are_the_shipped_models() -> None:
    from emostream.runtime.assets import SHIPPED_STYLES, default_gesture_checkpoint
    from emostream.runtime.models.gesture import load_gesture_checkpoint

    _, names, _ = load_gesture_checkpoint(default_gesture_checkpoint())
    assert tuple(names) == SHIPPED_STYLES


@pytest.mark.slow
def test_render_draws_the_body_when_asked_for_the_body_view(tmp_path: Path) -> None:
    from PIL import Image

    animation = tmp_path / "a.npz"
    assert main(["animate", str(DATA / "speech_16000.wav"), "-o", str(animation)]) == 0
    sheets = {}
    for view in ("face", "body"):
        assert main(["render", str(animation), "-o", str(tmp_path / f"{view}.mp4"), "--view", view,
                     "--size", "128", "--fps", "10"]) == 0  # fmt: skip (the sheets are checked, not the video)
        sheets[view] = np.asarray(Image.open(tmp_path / f"{view}.png").convert("RGB")).astype(int)

    def skin(sheet: np.ndarray) -> float:
        r, g, b = sheet[..., 0], sheet[..., 1], sheet[..., 2]
        return float(((r > 170) & (g > 130) & (b > 100) & (r > b + 25)).mean())

    # The face view is mostly face; the body view shows a whole standing figure, its head a small part.
    assert skin(sheets["face"]) > 0.1 and skin(sheets["body"]) < 0.02


def test_export_avatar_writes_vrm_and_refuses_other_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-avatar", "-o", str(tmp_path / "me.vrm")]) == 0
    assert (tmp_path / "me.vrm").read_bytes()[:4] == b"glTF" and "VRM 1.0" in capsys.readouterr().out
    assert main(["export-avatar", "-o", str(tmp_path / "me.fbx")]) == 2
    err = capsys.readouterr().err
    assert "me.fbx" in err and ".glb" in err and "Traceback" not in err and not (tmp_path / "me.fbx").exists()
