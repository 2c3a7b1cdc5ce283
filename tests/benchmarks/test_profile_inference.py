from pathlib import Path

import pytest

from emostream.benchmarks.profile_inference import inclusive_shares


def test_inclusive_shares_count_a_function_once_per_stack_and_shorten_paths(tmp_path: Path) -> None:
    here = Path.cwd()
    folded = tmp_path / "p.folded"
    run, step = f"run ({here}/runtime/inference.py:284)", "step (/x/site-packages/torch/a.py:9)"
    folded.write_text(f"{run};{step};{step} 3\n{run};feed ({here}/runtime/audio.py:236) 1\n")
    shares = dict((name, share) for share, name in inclusive_shares(folded))
    assert shares["run (runtime/inference.py:284)"] == pytest.approx(1.0)
    assert shares["step (torch/a.py:9)"] == pytest.approx(0.75)  # a recursion counts once per sample
    assert shares["feed (runtime/audio.py:236)"] == pytest.approx(0.25)
