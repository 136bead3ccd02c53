"""Parsers of the phone benchmark tools, on every recorded output (spec §10) and the older format."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_runners.android.parse import ParseError, parse_benchmark_model, parse_ort_perf_test

pytestmark = pytest.mark.adb
DATA = Path(__file__).parent / "data" / "adb"
RECORDED = Path(__file__).parent / "data" / "bench_app_tiny.txt"


def test_public_log_warmup_and_measured_runs() -> None:
    m = parse_benchmark_model((DATA / "sample_benchmark_model_public_log.txt").read_text())
    assert m["runs"] == 1000 and m["warmup_runs"] == 9
    assert m["init_ms"] == pytest.approx(119.515)
    assert m["first_run_ms"] == pytest.approx(87.112)
    assert m["warmup_mean_ms"] == pytest.approx(58.1474)
    assert m["mean_ms"] == pytest.approx(63.7432)
    assert m["p50_ms"] == pytest.approx(51.891) and m["p95_ms"] == pytest.approx(68.628)
    assert m["max_ms"] == pytest.approx(686.105) and m["std_ms"] == pytest.approx(60.716)
    assert m["fps_p50"] == pytest.approx(1000 / 51.891)
    assert m["overall_mem_mb"] == pytest.approx(55.4961) and m["model_size_mb"] == pytest.approx(24.6229)


def test_sample_with_verbose_lines() -> None:
    m = parse_benchmark_model((DATA / "sample_benchmark_model.txt").read_text())
    assert (m["runs"], m["warmup_runs"]) == (124, 61)
    assert m["p50_ms"] == pytest.approx(8.002) and m["init_ms"] == pytest.approx(31.482)


def test_legacy_format_has_no_percentiles() -> None:
    m = parse_benchmark_model((DATA / "benchmark_model_legacy.txt").read_text())
    assert m["mean_ms"] == pytest.approx(80.6601) and m["init_ms"] == pytest.approx(4.108)
    assert m["warmup_mean_ms"] == pytest.approx(91.471)
    assert "p50_ms" not in m and "fps_p50" not in m and m["fps_mean"] == pytest.approx(1000 / 80.6601)


def test_exponent_averages() -> None:
    m = parse_benchmark_model("INFO: count=3 first=1.5e+06 curr=1e+06 min=1e+06 max=1.5e+06 "
                              "avg=1.23457e+06 std=2e+05\n")
    assert m["mean_ms"] == pytest.approx(1234.57) and "p50_ms" not in m


def test_ort_perf_test_units() -> None:
    m = parse_ort_perf_test((DATA / "onnxruntime_perf_test.txt").read_text())
    assert m["init_ms"] == pytest.approx(217.932) and m["first_run_ms"] == 196
    assert m["mean_ms"] == pytest.approx(98.961997) and m["runs"] == 5
    assert m["p50_ms"] == pytest.approx(99.5086) and m["min_ms"] == pytest.approx(95.8204)
    older = parse_ort_perf_test("Average inference time cost: 12.5 ms\nTotal CPU usage: 382 %\n")
    assert older["mean_ms"] == 12.5 and older["cpu_usage_pct"] == 382


def test_unrelated_output_is_an_error() -> None:
    # OpenVINO benchmark_app output (another recorded tool) has none of these tools' lines
    with pytest.raises(ParseError, match="no timing lines"):
        parse_benchmark_model(RECORDED.read_text())
    with pytest.raises(ParseError, match="Average inference time cost"):
        parse_ort_perf_test("ERROR: model not found\n")
