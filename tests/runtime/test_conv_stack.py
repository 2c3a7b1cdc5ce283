import pytest

from emostream.runtime.models.conv_stack import CausalConvStack, ConvStackConfig
from emostream.runtime.step import StreamingGenerator
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


@pytest.mark.parametrize("dilation", [1, 2, 8])
def test_one_frame_steps_match_the_convolution(dilation: int) -> None:
    """The single-frame fast path (a matrix product over the taps) equals conv1d over the same window."""
    import torch

    from emostream.runtime.layers import CausalConv1d

    torch.manual_seed(0)
    conv = CausalConv1d(6, 5, kernel_size=3, dilation=dilation)
    x = torch.randn(2, 6, 40)
    cache = conv.init_cache(2)
    steps = []
    for t in range(40):
        y, cache = conv.step(x[..., t : t + 1], cache)
        steps.append(y)
    torch.testing.assert_close(torch.cat(steps, dim=-1), conv(x), atol=1e-5, rtol=1e-5)
