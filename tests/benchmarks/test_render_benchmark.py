import numpy as np
import pytest

from emostream.runtime.rigs import FACE_CHANNELS


@pytest.mark.slow
def test_render_timing_draws_both_blendings_and_reports_their_ratio() -> None:
    try:
        from emostream.clients.viewer.renderer import headless_context

        headless_context().release()
    except Exception as exc:  # no libEGL / Mesa on this machine
        pytest.skip(f"no headless OpenGL 3.3 through EGL here: {exc}")
    from emostream.benchmarks.render import time_blending
    from emostream.clients.viewer.video import Clip

    face = np.zeros((30, len(FACE_CHANNELS)), np.float32)
    face[:, FACE_CHANNELS.index("jawOpen")] = np.linspace(0, 1, 30)
    result = time_blending(Clip(face=face, fps=30.0), size=48, view="face", n_frames=2, rounds=1)
    assert set(result["ms_per_frame"]) == {"cpu", "shader"}
    assert all(len(v) == 1 and v[0] > 0 for v in result["ms_per_frame"].values())
    assert result["shader_over_cpu"] > 0 and result["gl_renderer"]
