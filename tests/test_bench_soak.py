"""The soak stage's memory verdict: the slope over the second half of the run, in MB per minute."""
from __future__ import annotations

from bench.stages.soak import _slope_mb_per_min, _summary


def test_a_flat_curve_has_no_slope_and_a_steady_climb_is_measured_per_minute():
    assert _slope_mb_per_min([(t, 150.0) for t in range(0, 600, 10)]) == 0.0
    assert _slope_mb_per_min([(t, 100 + t / 10) for t in range(0, 600, 10)]) == 6.0  # 1 MB per 10 s
    assert _slope_mb_per_min([(0, 1.0), (10, 2.0)]) is None  # too few samples to say


def test_the_summary_judges_growth_on_the_second_half_only():
    # The dedup table fills for the first minutes, then the memory levels off.
    curve = [(t, min(100 + t / 2, 190.0)) for t in range(10, 610, 10)]
    summary = _summary(curve)
    assert summary["first_mb"] == 105.0 and summary["last_mb"] == 190.0 and summary["peak_mb"] == 190.0
    assert summary["second_half_slope_mb_per_min"] == 0.0


def test_the_broker_figures_are_read_at_5_15_and_30_minutes(tmp_path):
    from bench.stages.soak import _at_minute, _folder_mb

    broker = [(t, 300.0 + t / 60) for t in range(10, 1210, 10)]  # a 20-minute run
    disk = [(t, float(t)) for t in range(10, 1210, 10)]
    assert _at_minute(5, broker, disk) == {"broker_rss_mb": 305.0, "broker_disk_mb": 300.0}
    assert _at_minute(15, broker, disk) == {"broker_rss_mb": 315.0, "broker_disk_mb": 900.0}
    assert _at_minute(30, broker, disk) is None  # the run was shorter
    (tmp_path / "segment.log").write_bytes(b"x" * 3 * 2**20)
    assert 3.0 <= _folder_mb(tmp_path) <= 3.1
