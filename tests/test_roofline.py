"""Roofline: per-precision peaks (timing loop, read-back, ISA gate), executed MACs, efficiency ≤ 1."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from mfsbench.device.macs import executed_macs, stage_macs
from mfsbench.device.roofline import (
    BuiltKernel,
    Kernel,
    PeakResult,
    Peaks,
    PhysicalLimitError,
    best_efficiency,
    best_of,
    default_kernels,
    efficiency,
    measure_peaks,
    no_peak_reason,
    peak_for,
    this_cpu_isa,
)
from mfsbench.errors import BadInputError

AVX2_ONLY = ("avx2", "fma", "f16c")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


class FakeClock:
    """A clock that only moves when a fake kernel runs."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fake_kernel(clock: FakeClock, name: str, precision: str, seconds_per_gmac: float, *,
                executed: str, built: list[int] | None = None) -> Kernel:
    """A kernel whose run advances ``clock`` in proportion to its n³ MACs."""

    def build(n: int, threads: int) -> BuiltKernel:
        if built is not None:
            built.append(n)

        def run() -> None:
            clock.now += n**3 / 1e9 * seconds_per_gmac

        return BuiltKernel(run, n**3, executed, f"fake {name}")

    return Kernel(name, precision, build)


# --- the timing loop ------------------------------------------------------------------------------


def test_best_of_keeps_going_for_min_seconds_when_runs_are_fast() -> None:
    clock = FakeClock()
    timing = best_of(lambda: setattr(clock, "now", clock.now + 0.001), repeats=5, min_seconds=2.0,
                     max_seconds=30.0, clock=clock)
    # 1 ms runs: 2 s need ~2000 runs (the old loop stopped at 100 runs, 0.1 s)
    assert timing.runs >= 1999 and timing.seconds >= 2.0 and not timing.capped
    assert timing.best_s == pytest.approx(0.001)


def test_best_of_keeps_going_for_repeats_when_runs_are_slow_and_caps_at_max_seconds() -> None:
    clock = FakeClock()
    step = lambda: setattr(clock, "now", clock.now + 1.0)  # noqa: E731
    timing = best_of(step, repeats=5, min_seconds=2.0, max_seconds=30.0, clock=clock)
    assert timing.runs == 5 and timing.seconds == pytest.approx(5.0) and not timing.capped
    capped = best_of(step, repeats=5, min_seconds=2.0, max_seconds=3.0, clock=clock)
    assert capped.runs == 3 and capped.capped
    with pytest.raises(BadInputError):
        best_of(step, min_seconds=3.0, max_seconds=2.0, clock=clock)


def test_measure_peaks_times_every_kernel_for_min_seconds_and_takes_the_fastest() -> None:
    clock = FakeClock()
    n = 128  # 2.1 M MACs: 2.1 ms a run for the fast kernel, 10.5 ms for the slow one
    kernels = [fake_kernel(clock, "slow", "fp32", 5.0, executed="f32"),
               fake_kernel(clock, "fast", "fp32", 1.0, executed="fp32")]
    peaks = measure_peaks(1, ("fp32",), 2.0, n=n, warmup=1, kernels=kernels, isa=AVX2_ONLY, clock=clock)
    peak = peaks["fp32"]
    assert peak.kernel == "fast" and peak.precision == "fp32" and peak.executed_precision == "fp32"
    assert peak.macs_per_s == pytest.approx(1e9)
    assert peak.runs >= 900 and peak.seconds >= 2.0 and peak.threads == 1 and not peak.capped
    assert {c.kernel for c in peak.candidates} == {"slow", "fast"}
    slow = next(c for c in peak.candidates if c.kernel == "slow")
    assert slow.macs_per_s == pytest.approx(2e8) and slow.seconds >= 2.0 and slow.runs >= 5
    assert "fake fast" in peak.method and f"best of {peak.runs} runs" in peak.method
    assert "slow 0.2" in peak.method  # the losing kernel's GMAC/s is named too


def test_a_kernel_too_slow_for_max_seconds_is_probed_not_timed() -> None:
    clock = FakeClock()
    sizes: list[int] = []
    # 100 s per GMAC: 2048³ would take ~860 s a run
    kernels = [fake_kernel(clock, "reference", "int8", 100.0, executed="int8", built=sizes)]
    peaks = measure_peaks(1, ("int8",), 2.0, n=2048, kernels=kernels, isa=AVX2_ONLY, clock=clock)
    assert sizes == [256]  # built at the probe size only
    assert "int8" not in peaks and "not timed at full size" in peaks.unavailable["int8"]
    assert peaks.candidates[0].macs_per_s is None


def test_a_kernel_slow_only_at_small_sizes_is_still_timed_at_full_size() -> None:
    """A 2-thread GEMM on a busy machine: dreadful at 256³ (thread sync per call), fine at 512³ and up."""
    clock = FakeClock()
    sizes: list[int] = []

    def build(n: int, threads: int) -> BuiltKernel:
        sizes.append(n)
        seconds_per_gmac = 3.0 if n <= 256 else 0.05

        def run() -> None:
            clock.now += n**3 / 1e9 * seconds_per_gmac

        return BuiltKernel(run, n**3, "f32", "fake busy gemm")

    peaks = measure_peaks(1, ("fp32",), 2.0, n=2048, kernels=[Kernel("busy", "fp32", build)],
                          isa=AVX2_ONLY, clock=clock)
    # 256³ takes 50 ms: ≈26 s a run at 2048³ misses the budget, but 512³ (≈0.4 s) is cheap to try
    # and says ≈0.43 s a run at full size
    assert sizes == [256, 512, 2048]
    assert peaks["fp32"].macs_per_s == pytest.approx(2e10) and peaks["fp32"].n == 2048


def test_int8_peak_is_only_labelled_int8_when_the_kernel_read_back_integers() -> None:
    clock = FakeClock()
    liar = fake_kernel(clock, "asked int8, ran f32", "int8", 0.1, executed="f32")
    peaks = measure_peaks(1, ("int8",), 0.01, n=64, kernels=[liar], isa=AVX2_ONLY, clock=clock)
    assert "int8" not in peaks
    assert "ran f32" in peaks.unavailable["int8"] and "not a int8 peak" in peaks.unavailable["int8"]
    honest = fake_kernel(clock, "u8 gemm", "int8", 0.5, executed="u8")
    peaks = measure_peaks(1, ("int8",), 0.01, n=64, kernels=[liar, honest], isa=AVX2_ONLY, clock=clock)
    assert peaks["int8"].kernel == "u8 gemm" and peaks["int8"].executed_precision == "u8"
    assert peaks["int8"].native is False and "avx512_vnni" in peaks["int8"].note
    vnni = measure_peaks(1, ("int8",), 0.01, n=64, kernels=[honest], isa=(*AVX2_ONLY, "avx_vnni"),
                         clock=clock)
    assert vnni["int8"].native is True


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_int8_kernel_reads_back_integer_runtime_precision() -> None:
    by_name = {k.name: k for k in default_kernels(("fp32", "int8"))}
    quantized = by_name["openvino matmul FakeQuantize u8×i8"].build(64, 1)
    assert quantized.executed_precision in ("u8", "i8") and "runtimePrecision" in quantized.detail
    plain = by_name["openvino matmul f32"].build(64, 1)
    assert plain.executed_precision == "f32"
    quantized.run()
    plain.run()


def test_bf16_peak_absent_with_a_reason_on_a_cpu_without_bf16() -> None:
    clock = FakeClock()
    sizes: list[int] = []
    would_work = fake_kernel(clock, "bf16 gemm", "bf16", 0.5, executed="bf16", built=sizes)
    peaks = measure_peaks(1, ("fp32", "bf16"), 0.01, n=64, isa=AVX2_ONLY, clock=clock,
                          kernels=[fake_kernel(clock, "f32 gemm", "fp32", 1.0, executed="f32"), would_work])
    assert "bf16" not in peaks and sizes == []  # never even built
    assert "avx512_bf16" in peaks.unavailable["bf16"] and "fp32" in peaks
    assert peak_for("bf16", peaks) is None and "avx512_bf16" in (no_peak_reason("bf16", peaks) or "")
    with_bf16 = measure_peaks(1, ("bf16",), 0.01, n=64, isa=(*AVX2_ONLY, "avx512_bf16"), clock=clock,
                              kernels=[would_work])
    assert with_bf16["bf16"].kernel == "bf16 gemm"


def test_bf16_peak_absent_on_this_cpu_when_it_lacks_bf16() -> None:
    isa = this_cpu_isa()
    if isa is None or any(f in isa for f in ("avx512_bf16", "amx_bf16", "bf16")):
        pytest.skip(f"this CPU's bf16 support is not absent (ISA {isa})")
    peaks = measure_peaks(1, ("bf16",))  # the real default kernels: gated before any is built
    assert peaks == {} and "no native bf16" in peaks.unavailable["bf16"]
    assert peaks.candidates == []  # gated before any kernel was built or timed


def test_real_kernels_small_fp32_and_int8_peaks() -> None:
    import torch

    torch.set_num_threads(2)  # whatever an earlier test left: the peak must put this back
    peaks = measure_peaks(1, ("fp32", "int8"), 0.05, n=128, warmup=1)
    fp32 = peaks["fp32"]
    assert fp32.macs_per_s > 0 and fp32.executed_precision in ("fp32", "f32") and fp32.threads == 1
    assert "matmul" in fp32.method and fp32.runs >= 5
    for candidate in peaks.candidates:
        if candidate.macs_per_s is not None:
            assert candidate.runs >= 5 and candidate.seconds >= 0.05
    if "int8" in peaks:  # an integer kernel exists here: its read-back says so
        assert peaks["int8"].executed_precision in ("int8", "u8", "i8")
    assert torch.get_num_threads() == 2  # restored


# --- which peak, and efficiency -------------------------------------------------------------------


def _peak(precision: str, macs_per_s: float) -> PeakResult:
    return PeakResult(macs_per_s, f"{precision} test peak", precision)


def test_peak_for_maps_executed_precision_to_its_peak() -> None:
    peaks = Peaks({"fp32": _peak("fp32", 1e11), "int8": _peak("int8", 2e11)},
                  unavailable={"bf16": "no bf16 here"})
    assert peak_for("fp32", peaks) is peaks["fp32"] and peak_for("f32", peaks) is peaks["fp32"]
    assert peak_for("fp16-weights", peaks) is peaks["fp32"]  # f32 arithmetic on fp16-stored weights
    assert peak_for("int8", peaks) is peaks["int8"] and peak_for("u8", peaks) is peaks["int8"]
    assert peak_for("bf16", peaks) is None and no_peak_reason("bf16", peaks) == "no bf16 here"
    assert peak_for("fp16", peaks) is None and "no fp16 peak" in (no_peak_reason("fp16", peaks) or "")
    assert no_peak_reason("int8", peaks) is None
    with pytest.raises(BadInputError):
        peak_for("fp8", peaks)


def test_efficiency_is_a_fraction_and_above_one_raises() -> None:
    peak = _peak("fp32", 1e11)
    # 296.1 M MACs in 7.4 ms = 40 GMAC/s = 0.4 of 100 GMAC/s
    assert efficiency(296_088_576, 7.4, peak) == pytest.approx(296_088_576 / 7.4e-3 / 1e11)
    assert best_efficiency(296_088_576, 5.0, peak) == pytest.approx(296_088_576 / 5e-3 / 1e11)
    assert efficiency(1e9, 10.0, peak) == pytest.approx(1.0)  # exactly at the limit is allowed
    with pytest.raises(PhysicalLimitError) as err:
        efficiency(1e9, 8.0, peak, label="student openvino fp32")
    message = str(err.value)
    assert "student openvino fp32" in message and "1,000,000,000 MACs" in message and "8 ms" in message
    assert "125.00 GMAC/s" in message and "100.00 GMAC/s" in message and "1.250" in message
    assert err.value.fraction == pytest.approx(1.25) and err.value.statistic == "p50"
    with pytest.raises(PhysicalLimitError) as err:
        best_efficiency(1e9, 9.0, peak)
    assert err.value.statistic == "min"
    with pytest.raises(BadInputError):
        efficiency(1e9, 0.0, peak)
    assert efficiency(1e9, 10.0, _peak("fp32", 2e11)) == pytest.approx(0.5)


# --- executed MACs --------------------------------------------------------------------------------


class TinyNet(nn.Module):
    """conv3×3 3→8 @16², BN, bilinear ×2, then a 1×1 conv at 32² (narrowing 8→4 or widening 8→16)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(8, out_channels, 1), nn.BatchNorm2d(out_channels),
        )
        self.head = nn.Linear(out_channels, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.head(y.mean((2, 3)))


def test_executed_macs_counts_matrix_work_only_by_hand() -> None:
    net = TinyNet(16).eval()  # widening 1×1: nothing to rewrite
    x = torch.rand(1, 3, 16, 16)
    conv3 = 16 * 16 * 8 * 3 * 9
    conv1 = 32 * 32 * 16 * 8
    linear = 16 * 5
    assert executed_macs(net, (x,)) == conv3 + conv1 + linear
    counts = stage_macs(net, (x,))
    assert counts.macs == counts.executed_macs == conv3 + conv1 + linear
    # the paper convention adds BN (5/element) and the bilinear resize on top: executed MACs leave them out
    assert counts.paper_flops > counts.macs + 5 * (8 * 16 * 16 + 16 * 32 * 32) - 1


def test_executed_macs_counts_the_export_rewrite() -> None:
    net = TinyNet(4).eval()  # narrowing 1×1 + BN after the upsample: export_ready moves them before it
    x = torch.rand(1, 3, 16, 16)
    conv3 = 16 * 16 * 8 * 3 * 9
    linear = 4 * 5
    as_written = conv3 + 32 * 32 * 4 * 8 + linear
    as_run = conv3 + 16 * 16 * 4 * 8 + linear
    counts = stage_macs(net, (x,))
    assert counts.macs == as_written and counts.executed_macs == as_run
    assert executed_macs(net, (x,)) == as_run
    assert isinstance(net.body[3], nn.Upsample)  # the module itself is not rewritten


@pytest.mark.slow
def test_student_frame_stage_counts_match_the_audit() -> None:
    from mfsbench.export.stages import stage_module
    from mfsbench.registry import create_model, get_spec

    spec = get_spec("mobilefaceswap_224")
    module, example = stage_module(spec, create_model(spec.name), "frame", 224)
    counts = stage_macs(module, example)
    # measurement audit A2: paper 333.2 M, macs 305.7 M, rewritten macs 296.1 M
    assert round(counts.paper_flops / 1e6, 1) == 333.2
    assert round(counts.macs / 1e6, 1) == 305.7
    assert round(counts.executed_macs / 1e6, 1) == 296.1
