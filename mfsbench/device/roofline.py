"""How close a model runs to this CPU's peak: executed MAC/s ÷ the measured peak of the same precision.

Peaks are *measured*, not taken from a datasheet, one per precision, each as the best MAC/s over every
kernel this machine has for that precision (:func:`measure_peaks`):

``fp32``
    ``torch.matmul`` (oneDNN/MKL GEMM) and an OpenVINO ``MatMul`` with constant weights compiled with
    ``INFERENCE_PRECISION_HINT=f32`` (the CPU plugin's oneDNN ``FullyConnected``);
``bf16``
    only on a CPU with native bf16 arithmetic (:data:`mfsbench.device.axis.BF16_NATIVE`): the same
    OpenVINO model with the ``bf16`` hint, and ``torch.matmul`` on bf16 tensors. Elsewhere there is
    no bf16 peak, and :attr:`Peaks.unavailable` says why;
``fp16``
    (on request) only on a CPU with fp16 arithmetic: OpenVINO with the ``f16`` hint;
``int8``
    integer GEMMs: OpenVINO's ``MatMul`` with ``FakeQuantize`` on both inputs (compiled by the
    low-precision transformations to oneDNN u8×i8 kernels), torch's quantized ``linear`` on each
    of its x86 engines (oneDNN, FBGEMM), and ``torch._int_mm``. On a CPU without int8
    dot-product instructions (VNNI, AMX, dotprod) the kernels are still integer kernels, and the
    peak says ``native: False``.

Every kernel reads back what it executed. For OpenVINO, this is the compiled runtime model's per-layer
``runtimePrecision`` of its matrix layers, because OpenVINO asked for bf16 on a CPU without bf16
runs f32 and a ``FakeQuantize`` it cannot fuse stays f32. For torch, it is the dtypes of the
tensors multiplied. A kernel whose matrix layers ran another precision never gives that
precision's peak: it is listed in :attr:`Peaks.candidates` with the reason.

Each kernel is timed as the best single run over at least ``repeats`` runs (default 5) *and*
``min_seconds`` (default 2 s), capped only by ``max_seconds``. There is no run-count cap, so a
fast kernel keeps going until the time is spent. On a shared machine, five runs in half a second
can all land in a neighbour's burst. A kernel too slow to give ``repeats`` runs within
``max_seconds`` (``torch._int_mm`` is a reference loop on most CPUs) is first timed at
``probe_n``³; it is listed with its probe rate and not timed at full size.

Efficiency (:func:`efficiency`, :func:`best_efficiency`) is the matrix MACs of the graph that
actually ran (:func:`mfsbench.device.macs.executed_macs`: conv/linear/matmul of ``export_ready``,
the exported graph), divided by latency × the peak of the precision that ran (:func:`peak_for`).
Above 1 it raises :class:`PhysicalLimitError`: the ratio has a physical ceiling, so exceeding it
means the MACs, the latency or the peak is wrong. The error is never explained away in a note.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfsbench.errors import BadInputError, MfsbenchError

#: precisions a peak can be measured for, in report order.
PEAK_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
#: what :func:`measure_peaks` measures unless asked otherwise.
DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")

#: the peak each executed precision is read against. ``fp16-weights`` (weights stored fp16,
#: arithmetic f32) is f32 arithmetic; runtime spellings (OpenVINO's ``f32``/``u8``…) are accepted.
PEAK_OF_PRECISION: dict[str, str] = {
    "fp32": "fp32", "f32": "fp32", "float32": "fp32", "fp16-weights": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "f16": "fp16", "float16": "fp16",
    "int8": "int8", "i8": "int8", "u8": "int8", "qint8": "int8", "quint8": "int8",
}

#: OpenVINO runtime-model layer types that do the matrix work whose precision is read back.
OPENVINO_MATRIX_LAYERS = ("FullyConnected", "MatMul", "Convolution", "GroupConvolution", "Deconvolution")

DEFAULT_N = 2048
DEFAULT_REPEATS = 5
DEFAULT_MIN_SECONDS = 2.0
#: per-kernel cap: a kernel stops here even with fewer than ``repeats`` runs (then ``capped``).
DEFAULT_MAX_SECONDS = 30.0
#: size a kernel is first tried at when the full size might not fit ``max_seconds``.
DEFAULT_PROBE_N = 256


class PhysicalLimitError(MfsbenchError):
    """An efficiency above 1: a cell ran more MACs per second than the measured peak allows.

    Carries the numbers: ``macs``, ``latency_ms``, ``statistic`` (p50 / min), ``peak`` and
    ``fraction``.
    """

    def __init__(self, message: str, *, macs: float, latency_ms: float, statistic: str,
                 peak: PeakResult, fraction: float) -> None:
        super().__init__(message)
        self.macs, self.latency_ms, self.statistic = macs, latency_ms, statistic
        self.peak, self.fraction = peak, fraction


@dataclass(frozen=True)
class KernelTiming:
    """One kernel tried for one precision's peak: its rate, or why it does not count."""

    kernel: str
    precision: str
    #: what the kernel's matrix work ran in, read back (``u8``, ``f32``, ``bf16``…); "" if never built
    executed_precision: str = ""
    #: best MAC/s at full size; None when it was not timed at full size (see ``note``)
    macs_per_s: float | None = None
    n: int = 0
    runs: int = 0
    seconds: float = 0.0
    capped: bool = False
    note: str = ""


@dataclass(frozen=True)
class PeakResult:
    """A measured peak in multiply-accumulates per second, and how it was measured.

    The first two fields are the historic ``PeakResult(macs_per_s, method)``. A record stores them,
    and a resumed sweep rebuilds the object from them. ``method`` is one line that names the
    kernel, its size, its threads, its runs and its seconds.
    """

    macs_per_s: float
    method: str
    precision: str = "fp32"
    #: read back from the kernel that won (OpenVINO ``runtimePrecision`` or torch dtypes)
    executed_precision: str = ""
    kernel: str = ""
    n: int = 0
    threads: int | None = None
    runs: int = 0
    seconds: float = 0.0
    warmup: int = 0
    #: True when ``max_seconds`` stopped the loop before ``repeats`` runs and ``min_seconds``
    capped: bool = False
    #: False when the CPU lacks the dedicated instructions (int8 without VNNI/AMX/dotprod)
    native: bool = True
    note: str = ""
    #: every kernel tried for this precision, the winner included
    candidates: tuple[KernelTiming, ...] = ()


class Peaks(dict[str, PeakResult]):
    """``{precision: PeakResult}`` for the precisions measured. For the rest, ``unavailable`` holds
    ``{precision: why}``, and ``candidates`` lists every kernel tried. ``seconds`` is the wall
    time of the whole measurement."""

    def __init__(self, peaks: Mapping[str, PeakResult] | None = None, *,
                 unavailable: Mapping[str, str] | None = None,
                 candidates: Iterable[KernelTiming] = (), seconds: float = 0.0) -> None:
        super().__init__(peaks or {})
        self.unavailable: dict[str, str] = dict(unavailable or {})
        self.candidates: list[KernelTiming] = list(candidates)
        self.seconds = seconds


@dataclass
class BuiltKernel:
    """A kernel ready to run: ``run()`` does ``macs`` multiply-accumulates in ``executed_precision``."""

    run: Callable[[], object]
    macs: int
    executed_precision: str
    detail: str
    close: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class Kernel:
    """A peak kernel: ``build(n, threads)`` returns it ready for an n×n by n×n product on ``threads``."""

    name: str
    precision: str
    build: Callable[[int, int], BuiltKernel]


@dataclass(frozen=True)
class LoopTiming:
    best_s: float
    runs: int
    seconds: float
    capped: bool


# --- the timing loop ------------------------------------------------------------------------------


def best_of(run: Callable[[], object], *, repeats: int = DEFAULT_REPEATS,
            min_seconds: float = DEFAULT_MIN_SECONDS, max_seconds: float = DEFAULT_MAX_SECONDS,
            warmup: int = 0, max_runs: int | None = None,
            clock: Callable[[], float] = time.perf_counter) -> LoopTiming:
    """Fastest single ``run()`` after ``warmup`` runs. Runs until *both* ``repeats`` runs and
    ``min_seconds`` are reached, or until ``max_seconds`` (or ``max_runs``, when given) stops it.
    At least one run is always made. ``capped`` says that a cap stopped it first."""
    if repeats < 1 or warmup < 0 or min_seconds < 0 or max_seconds < min_seconds:
        raise BadInputError(
            f"need repeats >= 1, warmup >= 0 and 0 <= min_seconds <= max_seconds; got {repeats}, "
            f"{warmup}, {min_seconds}, {max_seconds}."
        )
    if max_runs is not None and max_runs < 1:
        raise BadInputError(f"max_runs must be >= 1 when given, got {max_runs}.")
    for _ in range(warmup):
        run()
    best, runs, capped, started = math.inf, 0, False, clock()
    while True:
        elapsed = clock() - started
        if runs >= repeats and elapsed >= min_seconds:
            break
        if runs and (elapsed >= max_seconds or (max_runs is not None and runs >= max_runs)):
            capped = True
            break
        t0 = clock()
        run()
        best = min(best, clock() - t0)
        runs += 1
    return LoopTiming(best, runs, clock() - started, capped)


# --- kernels --------------------------------------------------------------------------------------


def precision_family(name: str) -> str:
    """``fp32``/``bf16``/``fp16``/``int8`` for any spelling in :data:`PEAK_OF_PRECISION`, else ``name``."""
    return PEAK_OF_PRECISION.get(name.lower(), name.lower()) if name else ""


def _torch_dtype_precision(*tensors: Any) -> str:
    """The precision family of tensors multiplied together, or ``a×b`` when they differ."""
    names = sorted({precision_family(str(t.dtype).removeprefix("torch.")) for t in tensors})
    return names[0] if len(names) == 1 else "×".join(names)


def _torch_matmul(dtype_name: str) -> Callable[[int, int], BuiltKernel]:
    def build(n: int, threads: int) -> BuiltKernel:
        import torch

        dtype = getattr(torch, dtype_name)
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen).to(dtype)
        b = torch.randn(n, n, generator=gen).to(dtype)
        out = torch.empty(n, n, dtype=dtype)

        def run() -> None:
            with torch.inference_mode():
                torch.matmul(a, b, out=out)

        return BuiltKernel(run, n**3, _torch_dtype_precision(a, b),
                           f"torch {torch.__version__} matmul {dtype_name}")

    return build


def _torch_qlinear(engine: str) -> Callable[[int, int], BuiltKernel]:
    """torch's quantized ``linear`` (quint8 activations × qint8 weights, requantized output)."""

    def build(n: int, threads: int) -> BuiltKernel:
        import torch

        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = engine
        gen = torch.Generator().manual_seed(0)
        with warnings.catch_warnings():  # quantized tensor creation is deprecated in torch 2.13
            warnings.simplefilter("ignore")
            weight = torch.quantize_per_tensor(torch.randn(n, n, generator=gen), 0.05, 0, torch.qint8)
            x = torch.quantize_per_tensor(torch.rand(n, n, generator=gen) * 4, 4 / 255, 0, torch.quint8)
            packed = torch.ops.quantized.linear_prepack(weight, None)
        linear = torch.ops.quantized.linear

        def run() -> None:
            linear(x, packed, 0.5, 0)

        def close() -> None:
            torch.backends.quantized.engine = previous

        return BuiltKernel(run, n**3, _torch_dtype_precision(x, weight),
                           f"torch {torch.__version__} quantized.linear engine {engine}", close)

    return build


def _torch_int_mm(n: int, threads: int) -> BuiltKernel:
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
    b = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
    out = torch._int_mm(a, b)
    executed = _torch_dtype_precision(a, b) if out.dtype == torch.int32 else f"output {out.dtype}"

    def run() -> None:
        torch._int_mm(a, b)

    return BuiltKernel(run, n**3, executed, f"torch {torch.__version__} _int_mm")


def openvino_matrix_precisions(compiled: Any) -> dict[str, int]:
    """``{runtimePrecision: number of layers}`` over the matrix layers (:data:`OPENVINO_MATRIX_LAYERS`)
    of an OpenVINO ``CompiledModel``'s runtime model: what its kernels actually executed."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) not in OPENVINO_MATRIX_LAYERS:
            continue
        precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "unknown"
        counts[precision] += 1
    return dict(counts)


def _openvino_matmul(hint: str, quantized: bool) -> Callable[[int, int], BuiltKernel]:
    """An OpenVINO model ``a @ W`` (W constant, so the CPU plugin runs it as oneDNN FullyConnected);
    ``quantized`` puts a FakeQuantize on both inputs (u8 activations, i8 weights)."""

    def build(n: int, threads: int) -> BuiltKernel:
        import numpy as np

        from mfsbench.optional import require

        ov = require("openvino", "openvino", "the OpenVINO peak kernel")
        ops = require("openvino.opset13", "openvino", "the OpenVINO peak kernel")
        rng = np.random.default_rng(0)
        a = ops.parameter([n, n], ov.Type.f32, name="a")
        w = ops.constant(rng.standard_normal((n, n)).astype(np.float32))
        lhs, rhs = a, w
        if quantized:
            def fake_quantize(x: Any, low: float, high: float) -> Any:
                lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
                return ops.fake_quantize(x, lo, hi, lo, hi, 256)

            lhs, rhs = fake_quantize(a, 0.0, 4.0), fake_quantize(w, -4.0, 4.0 * 127 / 128)
        model = ov.Model([ops.matmul(lhs, rhs, False, False).output(0)], [a], "peak_matmul")
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                  "INFERENCE_PRECISION_HINT": hint}
        compiled = ov.Core().compile_model(model, "CPU", config)
        found = openvino_matrix_precisions(compiled)
        executed = max(found, key=found.__getitem__) if found else "no matrix layer"
        request = compiled.create_infer_request()
        request.set_tensor(compiled.inputs[0], ov.Tensor((rng.random((n, n)) * 4).astype(np.float32)))
        layers = ", ".join(f"{k}×{v}" for k, v in sorted(found.items()))
        return BuiltKernel(request.infer, n**3, executed,
                           f"openvino {ov.__version__.split('-')[0]} matmul hint {hint}"
                           f"{' + FakeQuantize' if quantized else ''} (runtimePrecision {layers})")

    return build


def default_kernels(precisions: Sequence[str]) -> list[Kernel]:
    """Every kernel this installation offers for ``precisions`` (installed packages only; the ISA
    gate and the read-back are applied by :func:`measure_peaks`)."""
    import importlib.util

    has_ov = importlib.util.find_spec("openvino") is not None
    kernels: list[Kernel] = []
    for precision in precisions:
        if precision == "fp32":
            kernels.append(Kernel("torch.matmul fp32", "fp32", _torch_matmul("float32")))
            if has_ov:
                kernels.append(Kernel("openvino matmul f32", "fp32", _openvino_matmul("f32", False)))
        elif precision == "bf16":
            if has_ov:
                kernels.append(Kernel("openvino matmul bf16", "bf16", _openvino_matmul("bf16", False)))
            kernels.append(Kernel("torch.matmul bf16", "bf16", _torch_matmul("bfloat16")))
        elif precision == "fp16":
            if has_ov:
                kernels.append(Kernel("openvino matmul f16", "fp16", _openvino_matmul("f16", False)))
        elif precision == "int8":
            if has_ov:
                kernels.append(Kernel("openvino matmul FakeQuantize u8×i8", "int8",
                                      _openvino_matmul("f32", True)))
            import torch

            # "x86" dispatches to these two; qnnpack is the Arm mobile engine.
            for engine in ("onednn", "fbgemm"):
                if engine in torch.backends.quantized.supported_engines:
                    kernels.append(Kernel(f"torch quantized.linear {engine}", "int8", _torch_qlinear(engine)))
            if hasattr(torch, "_int_mm"):
                kernels.append(Kernel("torch._int_mm", "int8", _torch_int_mm))
    return kernels


# --- measuring ------------------------------------------------------------------------------------


def this_cpu_isa() -> list[str] | None:
    """This CPU's :data:`mfsbench.records.ISA_FEATURES`, or None when unknown (no /proc/cpuinfo)."""
    from mfsbench.records import describe_cpu

    try:
        return describe_cpu(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))["isa"]
    except OSError:
        return None


def _isa_gate(precision: str, isa: Collection[str] | None) -> tuple[str | None, bool, str]:
    """``(why not measured or None, native, note)`` for ``precision`` on a CPU with ``isa``."""
    from mfsbench.device.axis import BF16_NATIVE, FP16_NATIVE, INT8_NATIVE

    needs = {"bf16": BF16_NATIVE, "fp16": FP16_NATIVE}.get(precision)
    if needs is not None:
        if isa is not None and not any(f in isa for f in needs):
            return (f"this CPU has none of {', '.join(needs)}: it has no native {precision} arithmetic, "
                    f"so there is no {precision} peak (a runtime asked for {precision} here computes "
                    "f32 or emulates)"), False, ""
        return None, True, "" if isa is not None else "CPU features unknown; the read-back decided"
    if precision == "int8" and isa is not None and not any(f in isa for f in INT8_NATIVE):
        return None, False, (f"no int8 dot-product instructions ({', '.join(INT8_NATIVE)}): integer "
                             "kernels multiply-add bytes in two steps")
    return None, True, ""


def _time_kernel(kernel: Kernel, *, n: int, threads: int, repeats: int, warmup: int,
                 min_seconds: float, max_seconds: float, max_runs: int | None, probe_n: int,
                 clock: Callable[[], float]) -> tuple[KernelTiming, str]:
    """Time one kernel; returns its timing and the build's detail line.

    A kernel is first tried at ``probe_n``, doubling while the full-size estimate misses the
    budget and the next try is cheap (≤ a quarter of one run's share of ``max_seconds``). A
    small product says little about a large one on a busy machine: a 2-thread GEMM at 256³ pays
    its thread synchronisation on every call. It is timed at full size once
    ``warmup + repeats`` runs are estimated to fit ``max_seconds``; otherwise it is listed as
    not timed, with the rate measured at the largest size tried.
    """
    per_run = max_seconds / (warmup + repeats)
    size = min(probe_n, n)
    while size < n:
        small = kernel.build(size, threads)
        try:
            small.run()  # warm-up: first-call costs are not the kernel's rate
            t0 = clock()
            small.run()
            probe_s = max(clock() - t0, 1e-9)
        finally:
            small.close()
        estimate = probe_s * (n / size) ** 3
        if estimate * (warmup + repeats) <= max_seconds:
            break
        following = min(2 * size, n)
        if probe_s * (following / size) ** 3 > per_run / 4:
            rate = small.macs / probe_s
            return KernelTiming(
                kernel.name, kernel.precision, small.executed_precision, None, size, 1, probe_s,
                note=(f"{rate / 1e9:.3g} GMAC/s at {size}³: about {estimate:.1f} s a run at {n}³, so "
                      f"{warmup} warm-up + {repeats} runs do not fit max_seconds={max_seconds:g}; "
                      "not timed at full size"),
            ), small.detail
        size = following
    built = kernel.build(n, threads)
    try:
        if precision_family(built.executed_precision) != kernel.precision:
            return KernelTiming(
                kernel.name, kernel.precision, built.executed_precision, None, n,
                note=(f"asked for {kernel.precision}, the kernel's matrix work ran "
                      f"{built.executed_precision or 'an unknown precision'}: not a {kernel.precision} peak"),
            ), built.detail
        timing = best_of(built.run, repeats=repeats, min_seconds=min_seconds, max_seconds=max_seconds,
                         warmup=warmup, max_runs=max_runs, clock=clock)
    finally:
        built.close()
    return KernelTiming(kernel.name, kernel.precision, built.executed_precision,
                        built.macs / max(timing.best_s, 1e-12), n, timing.runs, timing.seconds,
                        timing.capped), built.detail


def measure_peaks(
    threads: int | None = None,
    precisions: Sequence[str] = DEFAULT_PRECISIONS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    *,
    n: int = DEFAULT_N,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = 2,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_runs: int | None = None,
    probe_n: int = DEFAULT_PROBE_N,
    isa: Collection[str] | str | None = "this-cpu",
    kernels: Sequence[Kernel] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Peaks:
    """Each precision's peak MAC/s on ``threads`` threads (None: torch's current count), as the best
    over every kernel for it (:func:`default_kernels`, or ``kernels``). Each kernel is timed with
    :func:`best_of` (≥ ``repeats`` runs and ≥ ``min_seconds``, ≤ ``max_seconds``) on an n×n by n×n
    product after ``warmup`` runs.

    ``isa`` defaults to this CPU's features (:func:`this_cpu_isa`); None means unknown. bf16 and
    fp16 are measured only where the CPU has the arithmetic (else ``unavailable`` says why). A
    precision none of whose kernels read back that precision is also ``unavailable``.

    Raises:
        BadInputError: an unknown precision or a bad size, count or time.
    """
    import torch

    unknown = [p for p in precisions if p not in PEAK_PRECISIONS]
    if unknown:
        raise BadInputError(f"no peak for {', '.join(unknown)}: choose among {', '.join(PEAK_PRECISIONS)}")
    if n < 1 or probe_n < 1 or repeats < 1 or warmup < 0 or min_seconds < 0 or max_seconds < min_seconds:
        raise BadInputError(
            f"need n, probe_n, repeats >= 1, warmup >= 0 and 0 <= min_seconds <= max_seconds; got n={n}, "
            f"probe_n={probe_n}, repeats={repeats}, warmup={warmup}, min_seconds={min_seconds}, "
            f"max_seconds={max_seconds}."
        )
    if threads is not None and threads < 1:
        raise BadInputError(f"threads must be >= 1, got {threads}.")
    cpu_isa = this_cpu_isa() if isa == "this-cpu" else isa
    started = time.perf_counter()
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    used = torch.get_num_threads()
    peaks, unavailable, tried = {}, {}, []
    try:
        all_kernels = list(kernels) if kernels is not None else default_kernels(precisions)
        for precision in precisions:
            why, native, note = _isa_gate(precision, cpu_isa)
            if why:
                unavailable[precision] = why
                continue
            timings: list[tuple[KernelTiming, str]] = []
            for kernel in (k for k in all_kernels if k.precision == precision):
                try:
                    timings.append(_time_kernel(
                        kernel, n=n, threads=used, repeats=repeats, warmup=warmup,
                        min_seconds=min_seconds, max_seconds=max_seconds, max_runs=max_runs,
                        probe_n=probe_n, clock=clock))
                except (RuntimeError, MfsbenchError) as exc:  # a kernel this build lacks: a RuntimeError
                    timings.append((KernelTiming(kernel.name, precision,
                                                 note=f"failed: {type(exc).__name__}: {exc}"[:300]), ""))
            tried += [t for t, _ in timings]
            timed = [(t, d) for t, d in timings if t.macs_per_s is not None]
            if not timed:
                reasons = "; ".join(f"{t.kernel}: {t.note}" for t, _ in timings) or "no kernel installed"
                unavailable[precision] = f"no kernel ran {precision}: {reasons}"
                continue
            best, detail = max(timed, key=lambda item: item[0].macs_per_s or 0.0)
            assert best.macs_per_s is not None
            others = ", ".join(
                f"{t.kernel} {t.macs_per_s / 1e9:.1f}" if t.macs_per_s else f"{t.kernel} not timed"
                for t, _ in timings if t is not best)
            method = (
                f"{precision} matmul peak: {detail}, {best.n}x{best.n}x{best.n} ({best.n**3:.3g} MACs), "
                f"executed {best.executed_precision}, {used} threads, best of {best.runs} runs "
                f"({best.seconds:.1f} s) after {warmup} warm-up"
                + (" (capped by max_seconds)" if best.capped else "")
                + (f"; other kernels (GMAC/s): {others}" if others else "")
            )
            peaks[precision] = PeakResult(
                best.macs_per_s, method, precision, best.executed_precision, best.kernel, best.n, used,
                best.runs, best.seconds, warmup, best.capped, native, note,
                tuple(t for t, _ in timings),
            )
    finally:
        torch.set_num_threads(previous)
    return Peaks(peaks, unavailable=unavailable, candidates=tried, seconds=time.perf_counter() - started)


def measure_peak_macs(
    threads: int | None = None, n: int = DEFAULT_N, repeats: int = DEFAULT_REPEATS, warmup: int = 2, *,
    min_seconds: float = DEFAULT_MIN_SECONDS, max_repeats: int | None = None,
    max_seconds: float | None = None,
) -> PeakResult:
    """The fp32 peak alone: ``measure_peaks(..., precisions=("fp32",))``.
    ``max_repeats`` caps the runs per kernel only when given (no cap by default)."""
    peaks = measure_peaks(threads, ("fp32",), min_seconds, n=n, repeats=repeats, warmup=warmup,
                          max_seconds=max(max_seconds or DEFAULT_MAX_SECONDS, min_seconds),
                          max_runs=max_repeats)
    if "fp32" not in peaks:
        raise MfsbenchError(f"no fp32 peak could be measured: {peaks.unavailable.get('fp32')}")
    return peaks["fp32"]


# --- which peak, and efficiency -------------------------------------------------------------------


def _peak_family(executed_precision: str) -> str:
    family = PEAK_OF_PRECISION.get(executed_precision.lower())
    if family is None:
        raise BadInputError(
            f"no peak applies to precision {executed_precision!r}: known are {', '.join(PEAK_OF_PRECISION)}"
        )
    return family


def peak_for(executed_precision: str, peaks: Mapping[str, PeakResult]) -> PeakResult | None:
    """The peak a cell that executed ``executed_precision`` is read against: fp32 and fp16-weights →
    fp32; bf16 → bf16; int8 → int8; fp16 arithmetic → fp16. None when that peak was not measured
    (:func:`no_peak_reason` says why). Raises BadInputError for an unknown precision."""
    return peaks.get(_peak_family(executed_precision))


def no_peak_reason(executed_precision: str, peaks: Mapping[str, PeakResult]) -> str | None:
    """Why :func:`peak_for` has no peak for ``executed_precision`` (None when it has one)."""
    family = _peak_family(executed_precision)
    if family in peaks:
        return None
    reason = getattr(peaks, "unavailable", {}).get(family)
    return reason or f"no {family} peak was measured (not among the precisions asked of measure_peaks)"


def achieved_macs_per_s(gmacs: float, latency_ms: float) -> float:
    """MAC/s a model achieves: its GMACs per inference over its latency."""
    if latency_ms <= 0 or gmacs < 0:
        raise BadInputError(f"need latency_ms > 0 and gmacs >= 0; got {latency_ms}, {gmacs}.")
    return gmacs * 1e9 / (latency_ms / 1000.0)


def _fraction(macs: float, latency_ms: float, peak: PeakResult, statistic: str, label: str | None) -> float:
    if peak.macs_per_s <= 0:
        raise BadInputError(f"peak MAC/s must be positive, got {peak.macs_per_s}.")
    if latency_ms <= 0 or macs < 0:
        raise BadInputError(f"need latency_ms > 0 and macs >= 0; got {latency_ms}, {macs}.")
    achieved = macs / (latency_ms / 1000.0)
    fraction = achieved / peak.macs_per_s
    if fraction > 1.0:
        raise PhysicalLimitError(
            f"{label or 'cell'}: {macs:,.0f} MACs in {latency_ms:.4g} ms ({statistic}) is "
            f"{achieved / 1e9:.2f} GMAC/s, above the measured {peak.precision} peak of "
            f"{peak.macs_per_s / 1e9:.2f} GMAC/s (efficiency {fraction:.3f} > 1). An efficiency above "
            "1 is physically impossible, so the MAC count (is it the executed graph's?), the latency or "
            f"the peak is wrong. Peak: {peak.method}",
            macs=macs, latency_ms=latency_ms, statistic=statistic, peak=peak, fraction=fraction,
        )
    return fraction


def efficiency(macs: float, latency_ms: float, peak: PeakResult, *, label: str | None = None) -> float:
    """Fraction of ``peak`` a cell reaches: ``macs`` (the executed graph's matrix MACs, a plain count)
    per run, over its p50 ``latency_ms``. ``label`` names the cell in the error.

    Raises:
        PhysicalLimitError: above 1.
        BadInputError: a non-positive latency or peak, negative MACs.
    """
    return _fraction(macs, latency_ms, peak, "p50", label)


def best_efficiency(macs: float, min_ms: float, peak: PeakResult, *, label: str | None = None) -> float:
    """:func:`efficiency` from the fastest run (``min_ms``), which compares like with like with a
    best-of peak. Same check: above 1 raises :class:`PhysicalLimitError`."""
    return _fraction(macs, min_ms, peak, "min", label)
