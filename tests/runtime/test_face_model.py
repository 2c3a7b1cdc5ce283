from pathlib import Path

import pytest
import torch

from emostream.runtime.controls import lookahead_from_ms
from emostream.runtime.models.face import (
    FaceConfig,
    FaceGenerator,
    FaceNetwork,
    VisemeTemplates,
    load_checkpoint,
    lookahead_timing,
    save_checkpoint,
)
from emostream.runtime.step import StreamingGenerator
from tests.harness.step_contract import StepContractSuite

SMALL = FaceConfig(channels=32, dilations=(1, 2), hidden=48)


def small_network() -> FaceNetwork:
    torch.manual_seed(0)
    return FaceNetwork(SMALL).eval()


class TestFaceGeneratorAt58ms(StepContractSuite):
    onnx_parity_covered_by = "TestFaceGeneratorAt100ms"  # the same graph with a longer ring and more steps

    def make_model(self) -> StreamingGenerator:
        return FaceGenerator(small_network(), lookahead=7, n_steps=2)


class TestFaceGeneratorAtZeroLookahead(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return FaceGenerator(small_network(), lookahead=0, n_steps=1)


class TestFaceGeneratorAt100ms(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return FaceGenerator(small_network(), lookahead=12, n_steps=4)


@pytest.mark.parametrize(("lookahead", "delay", "prefix"), [(0, 0, 2), (1, 0, 1), (2, 1, 2), (7, 3, 1), (12, 6, 2)])
def test_lookahead_maps_to_delay_and_prefix(lookahead: int, delay: int, prefix: int) -> None:
    assert lookahead_timing(lookahead) == (delay, prefix)
    # The newest audio of frame k's step ends exactly `lookahead` feature frames after frame k's time.
    assert 2 * delay + 2 - prefix == lookahead


def test_lookahead_requests_round_to_supported_values() -> None:
    assert lookahead_from_ms(0) == 0
    assert lookahead_from_ms(60) == 7  # 58.3 ms
    assert lookahead_from_ms(1000) == 12
    with pytest.raises(ValueError, match="lookahead"):
        lookahead_timing(13)


def test_checkpoint_round_trip_rebuilds_the_same_network(tmp_path) -> None:  # type: ignore[no-untyped-def]
    network = small_network()
    save_checkpoint(tmp_path / "face.pt", network, {"note": "test"})
    loaded, metadata = load_checkpoint(tmp_path / "face.pt")
    assert metadata == {"note": "test"} and loaded.config == SMALL
    for (name, a), (_, b) in zip(network.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def one_step_network(lip_visemes: int = 15) -> FaceNetwork:
    """The small network with a one-step sampler, nudged away from its start (one Euler step), an
    audio-only closure head that hears the telephone band, a lip-opening head and a lip-shape head that
    names visemes (its templates drawn at random; `lip_visemes=0`: the regression head of earlier
    checkpoints): what the stages after training add (training/face_stages.py)."""
    from emostream.runtime.models.face import LIP_SHAPES
    from emostream.training.audio_closure import with_fresh_head
    from emostream.training.distil_face import with_one_step

    torch.manual_seed(2)
    network = with_one_step(small_network())
    network = with_fresh_head(network, "audio_closure", audio_closure=True, closure_telephone_band=True)
    network = with_fresh_head(network, "audio_opening")
    network = with_fresh_head(network, "lip_shape", lip_shapes=LIP_SHAPES, lip_visemes=lip_visemes)
    assert network.one_step is not None
    with torch.no_grad():
        network.one_step.time.add_(0.5)
        if isinstance(network.lip_shape, VisemeTemplates):  # fresh templates are zero: every shape alike
            for template in (network.lip_shape.templates, network.lip_shape.emotion_offset):
                template.uniform_(0.0, 0.6)
            network.lip_shape.emotion_gain.uniform_(-0.5, 0.5)
    return network.eval()


class TestFaceGeneratorWithTheStagesAfterTraining(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return FaceGenerator(one_step_network(), lookahead=7, n_steps=1)


def test_the_viseme_head_makes_the_likeliest_viseme_s_shapes_and_a_regression_checkpoint_still_loads(
    tmp_path: Path,
) -> None:
    network = one_step_network()
    head = network.lip_shape
    assert isinstance(head, VisemeTemplates) and head.templates.shape == (15, len(network.config.lip_shapes))
    emotion = torch.eye(8)[[0, 6]] * torch.tensor([[1.0], [0.7]])
    logits = torch.zeros(2, 15)
    logits[:, 4] = 3.0  # one viseme clearly likelier than the other fourteen
    with torch.no_grad():
        own = head.templates[4] * (1 + emotion @ head.emotion_gain) + emotion @ head.emotion_offset
        # Sharpened, the mix leans further to the likeliest viseme's template than the posterior itself.
        as_likely, sharpened = head.shapes(logits, emotion, sharpness=1.0), head.shapes(logits, emotion)
        assert (sharpened - own).abs().max() < 0.5 * (as_likely - own).abs().max()
        assert torch.allclose(head.shapes(logits * 100, emotion), own, atol=1e-5)
    # A checkpoint of the regression head (no `lip_visemes` in its config) loads as one.
    regression = one_step_network(lip_visemes=0)
    save_checkpoint(tmp_path / "old.pt", regression, {})
    blob = torch.load(tmp_path / "old.pt", weights_only=True)
    del blob["config"]["lip_visemes"]
    torch.save(blob, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert isinstance(loaded.lip_shape, torch.nn.Sequential) and loaded.config.lip_visemes == 0
    window = torch.randn(2, network.window, SMALL.channels)
    with torch.no_grad():
        assert torch.equal(loaded.lip_shapes(window, emotion), regression.lip_shapes(window, emotion))


def test_the_audio_closure_head_hears_neither_the_emotion_nor_the_history() -> None:
    network = one_step_network()
    torch.manual_seed(3)
    window = torch.randn(4, network.window, SMALL.channels)
    conditions = [torch.randn(4, SMALL.hidden) for _ in range(2)]
    with torch.no_grad():
        first, second = (network.closure_probability(cond, window) for cond in conditions)
        assert torch.equal(first, second)
        plain = small_network()
        assert not torch.equal(plain.closure_probability(conditions[0], window),
                               plain.closure_probability(conditions[1], window))  # fmt: skip


def test_the_closure_head_hears_only_the_telephone_band() -> None:
    from emostream.runtime.audio import SILENT_LOG_MEL, telephone_band_gain

    gain = telephone_band_gain()
    low, high = gain > 0.999, gain < 1e-8
    assert low.sum() >= 50 and high.sum() >= 15 and (gain[1:] <= gain[:-1] + 1e-3).all()  # a low-pass
    generator = FaceGenerator(one_step_network(), lookahead=7, n_steps=1)
    assert {"closure_conv0", "closure_encoded"} <= {t.name for t in generator.spec.state}
    torch.manual_seed(5)
    features = (torch.randn(1, 2, SMALL.n_mels) - 6.0).repeat(2, 1, 1)
    features[1, :, torch.from_numpy(high)] += 3.0  # the same sound but for a louder band above 4 kHz
    heard = generator.network.telephone_band(features)
    assert torch.allclose(heard[..., torch.from_numpy(low)], features[..., torch.from_numpy(low)], atol=1e-3)
    assert (heard[..., torch.from_numpy(high)] < SILENT_LOG_MEL + 1.0).all()  # next to silence, loud or not
    inputs = {"features": features, "emotion": torch.zeros(2, 1, 8)}
    yes = torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        _, state = generator.step(inputs, generator.init_state(2), torch.zeros(2, SMALL.n_channels), ~yes, yes)
    assert not torch.equal(state["encoded"][0], state["encoded"][1])  # the rest of the face hears the difference
    assert torch.allclose(state["closure_encoded"][0], state["closure_encoded"][1], atol=1e-3)  # the closure not


def test_the_opening_head_opens_closed_lips_and_leaves_open_ones() -> None:
    from emostream.runtime.models.face import FACE_CHANNELS, apply_opening, lip_gap

    ch = {name: i for i, name in enumerate(FACE_CHANNELS)}
    face = torch.zeros(3, len(FACE_CHANNELS))
    face[0, ch["jawOpen"]], face[0, ch["mouthClose"]] = 0.3, 0.3  # jaw down, lips sealed: gap 0
    face[1, ch["jawOpen"]] = 0.5  # open wider than asked
    face[2, ch["mouthClose"]] = 0.2  # a closed mouth with the jaw up
    least = torch.tensor([0.25, 0.25, 0.25])
    opened = apply_opening(face, least)
    assert torch.allclose(lip_gap(opened), torch.tensor([0.25, 0.5, 0.25]))
    assert torch.equal(opened[1], face[1])
    others = [i for i in range(len(FACE_CHANNELS)) if i not in (ch["jawOpen"], ch["mouthClose"])]
    assert torch.equal(opened[:, others], face[:, others])


def test_the_opening_yields_to_a_closure_in_proportion() -> None:
    from emostream.runtime.models.face import apply_closure, apply_opening, lip_gap

    network = one_step_network()
    assert network.audio_opening is not None and network.audio_closure is not None
    torch.manual_seed(6)
    window, cond = torch.randn(1, network.window, SMALL.channels), torch.randn(1, 48)
    x = torch.zeros(1, SMALL.n_channels)  # the mean face: the jaw has room to open
    emotion = torch.zeros(1, 8)
    with torch.no_grad():
        network.audio_opening[-1].bias.fill_(-1.0)  # asks for a gap of about 0.31
        network.audio_closure[-1].weight.zero_()
        least = network.least_gap(window)
        shaped = network.denormalize(x) * network.lip_unplaced + network.lip_shapes(window, emotion) @ (
            network.lip_placement
        )
        for logit in (-20.0, 0.0, 20.0):  # no closure, half, sealed
            network.audio_closure[-1].bias.fill_(logit)
            closure = network.closure_probability(cond, window)
            face = network.finish(x, cond, window, emotion, window)
            # Opened by what the closure leaves of the least gap, then closed: a likely bilabial is not
            # first opened wide, which a closure short of 1 would leave short of sealed.
            assert torch.allclose(face, apply_closure(apply_opening(shaped, least * (1 - closure)), closure))
            if logit < 0:
                assert lip_gap(face) >= least - 1e-4
            if logit > 0:
                assert lip_gap(face) < 1e-4


def test_the_lip_shape_head_sets_its_channels_from_audio_and_emotion_alone() -> None:
    from emostream.runtime.models.face import FACE_CHANNELS, LIP_OPENERS

    network = one_step_network()
    # The shapes a closure leaves alone (a closure fades the lip openers, funnel and upper lip among them).
    kept = [name for name in network.config.lip_shapes if name not in LIP_OPENERS]
    assert "mouthPucker" in kept and "mouthRollLower" in kept
    kept_channels = [FACE_CHANNELS.index(name) for name in kept]
    torch.manual_seed(4)
    window, x = torch.randn(4, network.window, SMALL.channels), torch.randn(4, SMALL.n_channels)
    emotions = torch.eye(8)[:4]
    with torch.no_grad():
        placed = [network.config.lip_shapes.index(name) for name in kept]
        # Whatever the sampler drew and the history said, those channels are the head's (given the closure).
        for cond, drawn in ((torch.randn(4, SMALL.hidden), x), (torch.randn(4, SMALL.hidden), x + 1.0)):
            heard = network.lip_shapes(window, emotions, network.closure_probability(cond, window))[:, placed]
            assert torch.allclose(network.finish(drawn, cond, window, emotions, window)[:, kept_channels], heard)
        assert not torch.allclose(network.lip_shapes(window, emotions.roll(1, 0)), network.lip_shapes(window, emotions))
    plain = small_network()  # without the head, the sampler's own values pass
    with torch.no_grad():
        sampled = plain.finish(x, torch.randn(4, SMALL.hidden), window, emotions, window)[:, kept_channels]
        assert torch.equal(sampled, plain.denormalize(x)[:, kept_channels])


@pytest.mark.parametrize("lip_visemes", [15, 0], ids=["viseme head", "regression head"])
def test_a_likely_closure_leans_the_lip_shapes_toward_neutral_s_and_leaves_neutral_alone(lip_visemes: int) -> None:
    network = one_step_network(lip_visemes)
    torch.manual_seed(5)
    window = torch.randn(3, network.window, SMALL.channels)
    disgusted, half = torch.eye(8)[[5, 5, 5]] * torch.tensor([[1.0], [1.0], [0.5]]), torch.eye(8)[[0, 0, 0]]
    half[2] *= 0.5  # at half intensity, its neutral reading is neutral at half intensity
    with torch.no_grad():
        own, in_neutral = network.lip_shapes(window, disgusted), network.lip_shapes(window, half)
        assert not torch.allclose(own, in_neutral)
        closure = torch.tensor([0.0, 1.0, 0.25])
        leaned = network.lip_shapes(window, disgusted, closure)
        assert torch.equal(leaned[0], own[0])
        assert torch.allclose(leaned[1], in_neutral[1], atol=1e-6)
        assert torch.allclose(leaned[2], (own + 0.25 * (in_neutral - own))[2].clamp(0, 1), atol=1e-6)
        # In neutral (or with no emotion at all) the closure changes nothing, bit for bit.
        for emotion in (half, torch.zeros(3, 8)):
            assert torch.equal(network.lip_shapes(window, emotion, torch.ones(3)), network.lip_shapes(window, emotion))


def test_the_one_step_sampler_starts_as_one_euler_step_and_serves_only_one_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from emostream.training.distil_face import with_one_step

    plain, fresh, nudged = small_network(), with_one_step(small_network()), one_step_network()
    torch.manual_seed(1)
    noise, cond = torch.randn(5, SMALL.n_channels), torch.randn(5, SMALL.hidden)

    def sample(network: FaceNetwork, steps: int) -> torch.Tensor:
        return network.sample(noise, cond, network.sampler_time_terms(steps))

    with torch.no_grad():
        assert torch.equal(sample(fresh, 1), sample(plain, 1))  # before distillation: one Euler step
        assert not torch.allclose(sample(nudged, 1), sample(plain, 1))  # after: its own map
        assert torch.equal(sample(nudged, 2), sample(plain, 2)) and torch.equal(sample(nudged, 4), sample(plain, 4))
    save_checkpoint(tmp_path / "face.pt", nudged, {})
    loaded, _ = load_checkpoint(tmp_path / "face.pt")
    assert loaded.config.one_step and loaded.one_step is not None
    with torch.no_grad():
        assert torch.equal(sample(loaded, 1), sample(nudged, 1))
