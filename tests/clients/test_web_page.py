"""The browser page (clients/web): its files as the server serves them, its tables against the Python ones,
and the page itself in headless Chromium with a speech file as its microphone (benchmarks/headless_page.py)."""

import json
import os
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from websockets.datastructures import Headers
from websockets.http11 import Request

from emostream.benchmarks.headless_page import chromium, run
from emostream.clients.avatar.vrm import VRM_EXPRESSIONS, arkit_to_vrm
from emostream.clients.web import STATIC, page_files
from emostream.runtime.audio_files import read_audio
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, SMPLX_JOINTS
from emostream.runtime.web_files import WebFiles

ASSETS = Path(__file__).resolve().parents[2] / "runtime" / "assets"


def get(files: WebFiles, path: str):
    return files.respond(Request(path, Headers([("Host", "localhost")])))


def test_the_page_its_scripts_vendored_libraries_and_the_avatar_are_served(tmp_path: Path) -> None:
    files = page_files(tmp_path)
    page = get(files, "/?autostart=1")
    assert page.status_code == 200 and b"importmap" in page.body
    assert page.headers["Content-Type"].startswith("text/html")
    scripts = ["/app.js", "/protocol.js", "/avatar.js", "/presets.js", "/capture-worklet.js"]
    vendored = ["three/three.module.min.js", "three/three.core.min.js", "three/addons/loaders/GLTFLoader.js",
                "three-vrm/three-vrm.module.min.js"]  # fmt: skip
    for path in scripts + [f"/vendor/{v}" for v in vendored]:
        answer = get(files, path)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/javascript", path
    for licence in ("/vendor/three/LICENSE", "/vendor/three-vrm/LICENSE"):  # served beside the code, as MIT asks
        assert b"Permission is hereby granted" in get(files, licence).body
    assert get(files, "/avatar.vrm").body[:4] == b"glTF" and get(files, "/avatar.glb").body[:4] == b"glTF"
    assert get(files, "/../pyproject.toml").status_code == 404  # nothing outside the page's folder
    assert get(files, "/%2e%2e/__init__.py").status_code == 404
    assert get(files, "/missing.js").status_code == 404
    upgrade = Request("/", Headers([("Host", "localhost"), ("Upgrade", "websocket")]))
    assert files.respond(upgrade) is None  # the WebSocket handshake goes on to the session


def stand_in_avatar_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The avatar's build and export made instant: each file is the four bytes of a glTF's magic."""
    import emostream.clients.avatar.builtin as builtin
    import emostream.clients.avatar.gltf_export as gltf_export

    monkeypatch.setattr(gltf_export, "export_avatar", lambda path, avatar: path.write_bytes(b"glTF") and path)
    monkeypatch.setattr(builtin, "build_rigged_avatar", lambda: None)


def test_the_avatar_is_built_once_per_version_of_its_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import emostream.clients.avatar.builtin as builtin
    import emostream.clients.web as web

    (tmp_path / "avatar.vrm").write_bytes(b"glTF")  # as versions before the fingerprint named it, long ago
    os.utime(tmp_path / "avatar.vrm", (0, 0))
    first = page_files(tmp_path).extra
    monkeypatch.setattr(builtin, "build_rigged_avatar", lambda: pytest.fail("built again for the same code"))
    assert page_files(tmp_path).extra == first  # a server's next start reuses the build
    # Builds of other versions (stand-ins, written as fast as the cache fills): the newest few are kept.
    stand_in_avatar_builds(monkeypatch)
    for n in range(web.KEPT_BUILDS + 1):
        for path in tmp_path.glob("avatar-*.*"):  # each build older than the next (whatever the clock's grain)
            os.utime(path, (path.stat().st_mtime - 10,) * 2)
        monkeypatch.setattr(web, "avatar_fingerprint", lambda n=n: f"other{n}")
        assert page_files(tmp_path).extra["/avatar.vrm"].name == f"avatar-other{n}.vrm"
    kept = {p.stem.removeprefix("avatar-") for p in tmp_path.glob("avatar-*.*")}
    assert kept == {f"other{n}" for n in range(1, web.KEPT_BUILDS + 1)} and not (tmp_path / "avatar.vrm").exists()


def test_a_cache_that_cannot_be_written_costs_a_build_not_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in_avatar_builds(monkeypatch)
    (tmp_path / "home").write_text("a file where the cache's folder would be")
    files = page_files(tmp_path / "home" / "emostream")
    assert get(files, "/avatar.vrm").body == b"glTF" and get(files, "/avatar.glb").body == b"glTF"
    assert "cannot be kept in" in caplog.text


def js_list(source: str, name: str) -> list[str]:
    body = re.search(rf"export const {name} = \[(.*?)\];", source, re.S)
    assert body is not None, name
    return re.findall(r'"([^"]+)"', body.group(1))


def test_the_pages_tables_are_the_python_ones() -> None:
    source = (STATIC / "presets.js").read_text()
    assert js_list(source, "ARKIT") == list(ARKIT_BLENDSHAPES)
    assert js_list((STATIC / "avatar.js").read_text(), "SMPLX") == list(SMPLX_JOINTS)
    table = re.search(r"const PRESETS = \{(.*?)\n\};", source, re.S).group(1)
    presets = {name: dict((k, float(v)) for k, v in re.findall(r"(\w+): ([\d.]+)", body))
               for name, body in re.findall(r"(\w+): \{([^}]*)\}", table)}  # fmt: skip
    assert presets == {k: v for k, v in VRM_EXPRESSIONS.items() if k in presets}
    assert set(presets) == {"aa", "ih", "ou", "ee", "oh", "happy", "angry", "sad", "surprised", "relaxed"}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_preset_fit_gives_the_python_weights() -> None:
    rng = np.random.default_rng(3)
    frames = rng.random((6, len(FACE_CHANNELS))) * (rng.random((6, len(FACE_CHANNELS))) < 0.3)
    script = f"""
import {{ ARKIT, fitPresets }} from "{(STATIC / "presets.js").as_uri()}";
const channels = {json.dumps(list(FACE_CHANNELS))};
const index = Object.fromEntries(channels.map((name, i) => [name, i]));
console.log(JSON.stringify({json.dumps(frames.tolist())}.map((frame) => fitPresets(frame, index))));
"""
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for frame, weights in zip(frames, json.loads(done.stdout), strict=True):
        python = arkit_to_vrm(frame.astype(np.float32))
        for name, value in weights.items():
            assert value == pytest.approx(python[name], abs=1e-4), name


def speech_with_pauses(path: Path) -> Path:
    """The bundled speech cut to 2.5 s, with 1.5 s of silence before and after: the page's microphone."""
    audio, rate = read_audio(ASSETS / "speech_sample.wav")
    silence = np.zeros(int(1.5 * rate), np.float32)
    take = np.concatenate([silence, audio[int(1.0 * rate) : int(3.5 * rate)], silence])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(take, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (scripts/setup --tests installs it)")
def test_headless_chromium_streams_its_microphone_and_the_mouth_moves_with_the_speech(tmp_path: Path) -> None:
    result = run(speech_with_pauses(tmp_path / "speech.wav"), 9.0, tmp_path / "page.png")
    summary, trace = result["summary"], np.array(result["mouth_trace"])
    assert summary["state"] == "streaming" and summary["error"] is None, json.dumps(summary)
    assert summary["avatar"] == "built-in" and summary["perfectSync"] is True
    assert summary["faceFrames"] >= 300 and summary["bodyFrames"] >= 150  # 60 and 30 fps for 9 s, less start-up
    # the jaw follows the speech: shut in the pauses, open in the words (the file loops: both several times;
    # words are 45% of the file, and the jaw is over 0.15 in about half of a word's frames)
    assert np.mean(trace < 0.05) > 0.25 and np.mean(trace > 0.15) > 0.15, np.round(trace[::20], 2)
    assert 0 < summary["received"]["p50"] < 500 and summary["shown"]["n"] > 0
    picture = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    centre = picture[picture.shape[0] // 4 : picture.shape[0] // 2, picture.shape[1] // 3 : 2 * picture.shape[1] // 3]
    assert centre.std() > 20  # the avatar's face is drawn there, not an empty background


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (scripts/setup --tests installs it)")
def test_a_plain_gltf_avatar_is_driven_by_its_joint_and_morph_names(tmp_path: Path) -> None:
    result = run(speech_with_pauses(tmp_path / "speech.wav"), 4.0, tmp_path / "page.png",
                 query="autostart=1&avatar=/avatar.glb&emotion=auto")  # fmt: skip
    summary = result["summary"]
    assert summary["state"] == "streaming" and summary["error"] is None, json.dumps(summary)
    assert summary["avatar"] == "/avatar.glb" and summary["perfectSync"] is True
    assert summary["faceFrames"] >= 100 and summary["bodyFrames"] >= 50
    # emotion=auto: the server estimates the voice's emotion and reports it in the session's stats
    blend = [summary["serverStats"][f"voice.{emotion}"] for emotion in EMOTIONS]
    assert abs(sum(blend) - 1) < 1e-2 and -1 <= summary["serverStats"]["voice.arousal"] <= 1

