"""How `make bench` reports a comparison measured over several rounds."""

import math

from bench.suite import _median_round


def rounds(*ratios: float | None) -> list[dict[str, object]]:
    return [{"round": number, "ratio_to_floor": {"jobs_per_s": ratio}} for number, ratio in enumerate(ratios)]


def test_the_round_with_the_median_ratio_is_reported_with_every_ratio_and_their_mean() -> None:
    chosen = _median_round(rounds(0.9, 0.7, 0.8, 0.75))
    assert chosen["round"] == 3  # the lower middle of 0.7, 0.75, 0.8, 0.9
    assert chosen["round_ratios"] == [0.9, 0.7, 0.8, 0.75]
    assert math.isclose(chosen["round_ratio_mean"], 0.7875)
    # Two standard errors of the mean: 2 * stdev / sqrt(n).
    assert math.isclose(chosen["round_ratio_spread"], 2 * 0.0853912 / 2, rel_tol=1e-4)


def test_rounds_without_a_ratio_leave_the_mean_out() -> None:
    chosen = _median_round(rounds(None, None))
    assert (chosen["round_ratio_mean"], chosen["round_ratio_spread"]) == (None, None)
