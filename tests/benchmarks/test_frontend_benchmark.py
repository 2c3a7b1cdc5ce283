import pytest

from emostream.benchmarks import frontend


def test_frontend_benchmark_runs_and_reports_every_rate(capsys: pytest.CaptureFixture[str]) -> None:
    result = frontend.run(repeats=1)
    assert {r["rate_hz"] for r in result["rows"]} == {8_000, 16_000, 22_050, 24_000, 44_100, 48_000}
    for row in result["rows"]:
        assert 0 < row["compute_ms"]["p50"] <= row["compute_ms"]["p99"]
        assert 0 < row["real_time_factor"] < 1  # faster than real time, or the front-end is useless
    frontend.print_table(result)
    assert "| 48000 Hz | 20 ms |" in capsys.readouterr().out
