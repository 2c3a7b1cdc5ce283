"""The live viewer window, opened for real on a virtual X display (Xvfb) against a real server."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures import DATA, server_in_thread


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian: xvfb) for a virtual display")
@pytest.mark.slow
def test_view_streams_a_file_and_draws_the_head_in_a_window(tmp_path: Path) -> None:
    shot = tmp_path / "window.png"
    with server_in_thread() as (server, url):
        command = ["xvfb-run", "-a", "-s", "-screen 0 800x800x24", sys.executable, "-m", "emostream",
                   "view", str(DATA / "speech_16000.wav"), "--url", url, "--mute", "--emotion", "auto",
                   "--width", "320", "--height", "320", "--screenshot", str(shot)]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        frames_sent = server.frames_sent
    assert result.returncode == 0, result.stdout + result.stderr
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape == (320, 320, 3)
    # The head is in view: skin and hair, the warm pixels (the background and the shirt are blue-grey).
    # Counting skin alone failed once in CI (4.8% skin against a 5% bar): the untrained test model can turn
    # the head until the view shows mostly hair. In three local runs skin was 8% to 15% and the warm
    # pixels 24% to 29%; the neck alone is a few percent.
    head = (image[..., 0] > 60) & (image[..., 0] > image[..., 2] + 30)
    assert head.mean() > 0.15
    assert frames_sent >= 120  # the whole 2 s take went through the session
    # The HUD's last lines, printed at the end, carry the server's estimate of the voice's emotion.
    assert "voice: " in result.stdout and "arousal" in result.stdout, result.stdout


@pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("xdotool") is None,
                    reason="needs xvfb-run and xdotool (Debian: xvfb, xdotool) to press a key in a virtual display")
@pytest.mark.slow
def test_key_0_hands_the_emotion_to_the_voice() -> None:
    with server_in_thread() as (_, url):
        view = [sys.executable, "-m", "emostream", "view", str(DATA / "speech_16000.wav"), "--url", url, "--mute",
                "--width", "320", "--height", "320"]  # fmt: skip
        # The key goes in as soon as the window exists, while the session may still be opening.
        script = f"{shlex.join(view)} & xdotool search --sync --name '^emostream$' key 0; wait $!"
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 800x800x24", "sh", "-c", script],
                                capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "emotion auto" in result.stdout and "voice: " in result.stdout, result.stdout


def test_the_hud_shows_the_top_of_the_voice_estimate() -> None:
    from emostream.clients.viewer.window import voice_line

    stats = {"frames_sent.face": 60.0, "voice.neutral": 0.3, "voice.angry": 0.5, "voice.sad": 0.2,
             "voice.arousal": 0.42, "voice.valence": -0.3}  # fmt: skip
    assert voice_line(stats) == "voice: angry 0.50, arousal +0.42"
    assert voice_line({"frames_sent.face": 60.0}) == ""  # a session on a chosen emotion
