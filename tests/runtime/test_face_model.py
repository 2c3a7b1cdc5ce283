import pytest
import torch

from emostream.runtime.controls import lookahead_from_ms
from emostream.runtime.models.face import (
    FaceConfig,
    FaceGenerator,
    FaceNetwork,
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
