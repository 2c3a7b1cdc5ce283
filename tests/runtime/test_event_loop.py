import asyncio

import pytest

from emostream.runtime.event_loop import default_event_loop, run


async def loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_both_event_loops_run_a_coroutine() -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed (it is a dependency except on Windows)")
    assert default_event_loop() == "uvloop"
    assert run(loop_module()).startswith("uvloop")
    assert run(loop_module(), "asyncio").startswith("asyncio")


def test_an_unknown_event_loop_is_refused() -> None:
    coroutine = loop_module()
    with pytest.raises(ValueError, match="unknown event loop"):
        run(coroutine, "trio")
    coroutine.close()
