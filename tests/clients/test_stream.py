import argparse
import asyncio
import json
from pathlib import Path

import numpy as np

from clients.stream import add_arguments, stream
from tests.fixtures import DATA, server_in_thread


def test_stream_a_file_to_a_real_server_and_save_frames_like_animate(tmp_path: Path) -> None:
    with server_in_thread() as (_, url):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([str(DATA / "speech_24000.wav"), "--url", url,
                                  "-o", str(tmp_path / "frames.npz"), "--emotion", "happy"])  # fmt: skip
        summary = asyncio.run(stream(args))
    assert summary["frames"] == 120
    assert summary["latency"]["p50_ms"] > 0 and summary["latency"]["dropped"] == 0
    saved = np.load(tmp_path / "frames.npz")
    assert saved["face"].shape == (120, 59) and int(saved["fps"]) == 60
    np.testing.assert_allclose(saved["time"][:2], [0, 1 / 60])
    assert json.loads(str(saved["meta"]))["controls"]["emotion"] == "happy"
