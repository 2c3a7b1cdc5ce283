import argparse
import asyncio
import json
from pathlib import Path

import numpy as np

from emostream.clients.stream import add_arguments, stream
from tests.fixtures import DATA, server_in_thread


def test_stream_a_file_to_a_real_server_and_save_frames_like_animate(tmp_path: Path) -> None:
    with server_in_thread() as (_, url):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([str(DATA / "speech_24000.wav"), "--url", url,
                                  "-o", str(tmp_path / "frames.npz"), "--emotion", "happy"])  # fmt: skip
        summary = asyncio.run(stream(args))
    assert summary["frames"] == {"face": 120}
    assert summary["latency"]["p50_ms"] > 0 and summary["latency"]["dropped"] == 0
    saved = np.load(tmp_path / "frames.npz")
    assert saved["face"].shape == (120, 59) and int(saved["fps"]) == 60
    np.testing.assert_allclose(saved["time"][:2], [0, 1 / 60])
    assert json.loads(str(saved["meta"]))["controls"]["emotion"] == "happy"


def test_stream_with_the_body_saves_the_animate_body_keys_and_exports_to_bvh(tmp_path: Path) -> None:
    from emostream.cli import main
    from emostream.runtime.bvh import read_bvh

    with server_in_thread(body=True, max_sessions=2) as (_, url):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([str(DATA / "speech_16000.wav"), "--url", url, "-o", str(tmp_path / "frames.npz"),
                                  "--body", "--style", "ben"])  # fmt: skip
        asyncio.run(stream(args))
    saved = np.load(tmp_path / "frames.npz")
    T = saved["body_quat"].shape[0]
    assert T == 60 and saved["body_quat"].shape == (T, 55, 4) and saved["body_axis_angle"].shape == (T, 55, 3)
    assert saved["body_trans"].shape == (T, 3) and int(saved["body_fps"]) == 30 and len(saved["body_joints"]) == 55
    np.testing.assert_allclose(saved["body_time"][:2], [0, 1 / 30], atol=1e-4)  # whole samples at 16 kHz
    assert main(["export-bvh", str(tmp_path / "frames.npz"), "-o", str(tmp_path / "body.bvh")]) == 0
    names, _, rotations, _, fps = read_bvh(tmp_path / "body.bvh")
    assert rotations.shape == (T, 55, 3, 3) and names[0] == "pelvis" and abs(fps - 30) < 1e-3
    assert main(["export-beat2", str(tmp_path / "frames.npz"), "-o", str(tmp_path / "take.npz")]) == 0
    take = np.load(tmp_path / "take.npz")
    assert take["poses"].shape == (T, 165) and float(take["mocap_frame_rate"]) == 30
    np.testing.assert_allclose(take["poses"].reshape(T, 55, 3), saved["body_axis_angle"], atol=1e-6)
