import pytest

from runtime.models.conv_stack import CausalConvStack, ConvStackConfig
from runtime.step import StreamingGenerator
from tests.harness.step_contract import StepContractSuite


class TestCausalConvStackWithLookahead(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return CausalConvStack(ConvStackConfig(lookahead_frames=2))


class TestCausalConvStackWithoutLookahead(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return CausalConvStack(ConvStackConfig(lookahead_frames=0, dilations=(1, 3), inputs_per_step=4))


def test_spec_declares_timing() -> None:
    spec = CausalConvStack(ConvStackConfig(lookahead_frames=2)).spec
    assert spec.delay_frames == 2 and spec.lookahead_inputs == 4
    assert spec.last_input_for(0) == 1 + 4  # its own two inputs, then two frames of look-ahead


@pytest.mark.parametrize("bad", [dict(channels=0), dict(lookahead_frames=-1), dict(dilations=())])
def test_config_rejects_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError, match="ConvStackConfig"):
        ConvStackConfig(**bad)
