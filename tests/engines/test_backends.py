"""Every CPU backend against eager over long streamed sequences with mixed masks, on the real face model.

The TensorRT runtime cannot be tested here (tests/engines/test_tensorrt.py says why); the compiled
backend's CUDA graph path needs a GPU and is marked so.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from emostream.engines.backend import EagerBackend
from emostream.engines.buckets import bucket_for, parse_buckets
from emostream.engines.cache import EngineCache, default_cache_root
from emostream.engines.compiled import CompiledBackend
from emostream.engines.factory import BackendFactory, make_backend, resolve_backend
from emostream.engines.parity import ParityReport, streamed_parity
from emostream.runtime.animate import animate
from emostream.runtime.assets import default_face_checkpoint
from emostream.runtime.audio import LogMelFrontEnd
from emostream.runtime.errors import BackendError
from emostream.runtime.models.conv_stack import CausalConvStack
from emostream.runtime.models.face import FaceGenerator, load_checkpoint
from tests.fixtures import DATA, speech_sample

# The face model feeds its samples back, which amplifies float rounding now and then (engines/parity.py):
# bounds for its outputs (face units) and for the state it feeds back; everything else stays near 1e-6.
OUTPUT_TOLERANCE = 2e-3
HISTORY_TOLERANCE = 2e-2
STATE_TOLERANCE = 1e-4


def assert_bounded(report: ParityReport) -> None:
    print(report.summary())
    assert report.worst_output < OUTPUT_TOLERANCE, report.summary()
    for name, error in report.errors.items():
        if name.startswith("state."):
            bound = HISTORY_TOLERANCE if name == "state.history" else STATE_TOLERANCE
            assert error < bound, f"{name}: {error:.2e}"


@pytest.fixture(scope="module")
def face() -> FaceGenerator:
    network, _ = load_checkpoint(default_face_checkpoint())
    return FaceGenerator(network, lookahead=7, n_steps=2).eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> EngineCache:
    return EngineCache(tmp_path_factory.mktemp("engines"))


def speech_inputs(n_steps: int, batch: int) -> dict[str, torch.Tensor]:
    """Real log-mel features of recorded speech (each slot starting elsewhere) and changing emotions."""
    front_end = LogMelFrontEnd(16_000)
    features, _ = front_end.push(front_end.init_state(), speech_sample(16_000).astype(np.float32) / 32768)
    features = np.concatenate([features] * (1 + 2 * n_steps * batch // len(features)))
    per_slot = [features[300 * b : 300 * b + 2 * n_steps] for b in range(batch)]
    emotion = torch.zeros(batch, n_steps, 8)
    for b in range(batch):
        emotion[b, :, b % 8] = torch.linspace(0, 1, n_steps)
    return {"features": torch.from_numpy(np.stack(per_slot)), "emotion": emotion}


@pytest.mark.slow
def test_onnx_matches_eager_on_random_inputs_over_300_steps(face: FaceGenerator, cache: EngineCache) -> None:
    assert_bounded(streamed_parity(make_backend("onnx", face, cache=cache), n_steps=300, batch=5, seed=1))


@pytest.mark.slow
def test_onnx_matches_eager_on_real_speech_over_400_steps(face: FaceGenerator, cache: EngineCache) -> None:
    backend = make_backend("onnx", face, cache=cache)
    report = streamed_parity(backend, n_steps=400, batch=4, seed=2, inputs=speech_inputs(400, 4))
    assert_bounded(report)
    assert set(report.errors) == {"face"} | {f"state.{t.name}" for t in face.spec.state}


@pytest.mark.slow
def test_compiled_matches_eager_with_padding_to_a_bucket() -> None:
    torch.manual_seed(0)
    model = CausalConvStack().eval()
    backend = CompiledBackend(model, buckets=(4,))  # batch 3 runs padded to 4 with an inactive slot
    report = streamed_parity(backend, n_steps=200, batch=3, seed=3)
    print(report.summary())
    assert report.worst < 1e-5, report.summary()


@pytest.mark.slow
def test_compiled_matches_eager_on_the_face_model(face: FaceGenerator) -> None:
    assert_bounded(streamed_parity(CompiledBackend(face, buckets=(8,)), n_steps=300, batch=5, seed=4))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for CUDA graph capture")
def test_compiled_cuda_graphs_replay_with_state_copied_out(face: FaceGenerator) -> None:
    backend = CompiledBackend(face, device="cuda", buckets=(1, 8))
    assert_bounded(streamed_parity(backend, n_steps=300, batch=5, seed=5))


@pytest.mark.slow
def test_animate_on_onnx_gives_the_frames_of_eager_within_1e_3(cache: EngineCache) -> None:
    speech = DATA / "speech_16000.wav"
    eager = animate(speech, seed=3)
    onnx = animate(speech, seed=3, backend="onnx", engine_cache=cache.root)  # the face's export is reused
    assert onnx.face.shape == eager.face.shape and onnx.meta["backend"] == "onnx"
    difference = float(np.abs(onnx.face - eager.face).max())
    print(f"animate --backend onnx vs eager: max abs difference {difference:.2e} over {eager.face.shape[0]} frames")
    assert difference < 1e-3
    assert onnx.body is not None and eager.body is not None  # the gesture generator ran on onnx too
    body_difference = float(np.abs(onnx.body - eager.body).max())
    print(f"  body (quaternions, translation): {body_difference:.2e} over {eager.body.shape[0]} frames")
    assert body_difference < 1e-3


def test_buckets_pick_the_smallest_that_fits_and_refuse_beyond_the_largest() -> None:
    buckets = parse_buckets("32, 1,8,128")
    assert buckets == (1, 8, 32, 128)
    assert [bucket_for(n, buckets) for n in (1, 2, 8, 9, 128)] == [1, 8, 8, 32, 128]
    with pytest.raises(BackendError, match="largest batch bucket"):
        bucket_for(129, buckets)
    with pytest.raises(ValueError):
        parse_buckets("0,8")


def test_unknown_backend_and_missing_cuda_are_clear_errors(face: FaceGenerator) -> None:
    with pytest.raises(BackendError, match="unknown backend"):
        make_backend("tflite", face)
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA device"):
            make_backend("compiled", face, device="cuda")
    assert isinstance(make_backend("eager", face), EagerBackend)


def serve_speech(
    backend: str, cache: Path, device: str = "cpu", body: bool = False
) -> tuple[dict[str, np.ndarray], str]:
    """Frames a real server on `backend` and `device` streams for the test speech, by stream ("face",
    and "body" with `body`), and its /metrics text."""
    from emostream.clients.client import BlockingClient
    from tests.fixtures import server_in_thread

    pcm = speech_sample(16_000)
    with server_in_thread(backend=backend, device=device, body=body, engine_cache=cache) as (server, url):
        streams = ("face", "body") if body else ("face",)
        client = BlockingClient(url, 16_000, streams=streams)
        for start in range(0, pcm.size, 320):
            client.send_audio(pcm[start : start + 320])
        client.end()
        frames = client.frames()
        client.close()
        return {name: np.stack([f.values for f in frames if f.stream == name]) for name in streams}, server.metrics()


def test_auto_is_onnx_on_the_cpu_and_a_graph_it_cannot_build_runs_eager(face: FaceGenerator, tmp_path: Path) -> None:
    assert resolve_backend("auto", "cpu") == "onnx" and resolve_backend("auto", "cuda:1") == "eager"
    assert resolve_backend("compiled", "cpu") == "compiled"
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # the engine cache cannot be made here, so the export fails
    with pytest.raises(OSError):
        BackendFactory("onnx", cache_root=blocked)(face)
    assert isinstance(BackendFactory("onnx", cache_root=blocked, eager_if_unbuilt=True)(face), EagerBackend)


@pytest.mark.slow
def test_a_server_on_the_default_backend_streams_the_frames_eager_makes() -> None:
    # The session's engine cache (tests/conftest.py): a server of another test may have built these graphs
    # already; tests/runtime/test_inference_process.py watches a build at start.
    cache = default_cache_root()
    served, metrics = serve_speech("auto", cache)  # `emostream serve`'s default: onnx on the CPU
    assert "emostream_eager_fallbacks_total 0.0" in metrics
    # The face at two sampler steps and the voice-emotion estimator, as the server steps them.
    names = [p.name for p in (cache / "onnx").iterdir()]
    assert "face-lookahead7-steps2-compact-flat-cpu" in names, names
    assert any(n.startswith("voiceemotion-") and n.endswith("-compact-flat-cpu") for n in names), names
    expected, _ = serve_speech("eager", cache)
    assert served["face"].shape == expected["face"].shape == (120, 59)
    assert float(np.abs(served["face"] - expected["face"]).max()) < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_a_server_on_cuda_streams_the_face_and_body_frames_the_cpu_makes(backend: str, tmp_path: Path) -> None:
    # The server moves its networks to the GPU, then builds generators for each sampler step count from
    # them: a start on an H100 once failed there, with tensors left on the CPU.
    served, metrics = serve_speech(backend, tmp_path, device="cuda", body=True)
    assert "emostream_eager_fallbacks_total 0.0" in metrics
    expected, _ = serve_speech("eager", tmp_path, body=True)
    for stream in ("face", "body"):
        assert served[stream].shape == expected[stream].shape
        difference = float(np.abs(served[stream] - expected[stream]).max())
        print(f"{stream} on {backend}/cuda vs eager/cpu: max abs difference {difference:.2e}")
        assert difference < 1e-3
