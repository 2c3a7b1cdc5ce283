import torch

from emostream.benchmarks.closure_offset import margin, with_offset
from emostream.runtime.models.face import FaceConfig, FaceNetwork
from emostream.training.audio_closure import LOGIT_OFFSET, with_fresh_head


def test_an_offset_moves_only_the_closure_heads_logit_and_leaves_the_network_alone() -> None:
    torch.manual_seed(0)
    network = with_fresh_head(FaceNetwork(FaceConfig(channels=16, dilations=(1,), hidden=24)), "audio_closure")
    window = torch.randn(3, network.window, 16)
    assert network.audio_closure is not None
    before = network.audio_closure(window.flatten(1))
    moved = with_offset(network, LOGIT_OFFSET + 0.5)
    assert moved.audio_closure is not None
    assert torch.allclose(moved.audio_closure(window.flatten(1)), before + 0.5, atol=1e-6)
    assert torch.equal(network.audio_closure(window.flatten(1)), before)  # a copy was moved
    same = {k: v for k, v in moved.state_dict().items() if not k.startswith("audio_closure.2.bias")}
    assert all(torch.equal(v, network.state_dict()[k]) for k, v in same.items())


def test_the_margin_is_the_worst_distance_to_either_target() -> None:
    both_met = {"16k": {"closure_hit_rate": 0.95, "false_closure_rate": 0.04}}
    assert abs(margin(both_met) - 0.01) < 1e-9  # false closures are nearer their target
    one_missed = {
        "16k": {"closure_hit_rate": 0.95, "false_closure_rate": 0.04},
        "8k": {"closure_hit_rate": 0.90, "false_closure_rate": 0.03},
    }
    assert abs(margin(one_missed) + 0.02) < 1e-9  # the 8 kHz hit misses by 0.02


def test_the_report_gives_each_emotion_s_drop_beside_neutral() -> None:
    from emostream.benchmarks.closure_offset import markdown

    def figures(hit: float) -> dict:
        return {"closure_hit_rate": hit, "false_closure_rate": 0.04, "bilabials": 10, "open_vowels": 20}

    neutral = {"16k": figures(0.9), "8k": figures(0.88)}
    disgusted = {"16k": figures(0.85), "8k": figures(0.86), "drop": {"16k": 0.05, "8k": 0.02}}
    result = {"machine": {"cpu": "cpu", "date": "today"}, "checkpoint": "face.pt", "recordings": 3, "unaligned": {},
              "validation": ["fr"], "trained_offset": 1.0, "largest_margin_offset": 1.0,
              "rows": [{"offset": 1.0, "margin": -0.04, **neutral, "emotions": {"disgusted": disgusted}}]}  # fmt: skip
    report = markdown(result)
    assert "| +1.00 (trained) **largest margin** | 0.900 / 0.040 | 0.880 / 0.040 | -0.040 |" in report
    assert "| +1.00 | disgusted | 0.850 / 0.040 (+0.050) | 0.860 / 0.040 (+0.020) |" in report
