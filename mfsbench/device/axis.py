"""The device axis: runtime × precision, where a precision is what the kernels *compute*.

A desktop cell is one runtime running one precision. The precision names the arithmetic, not the
file: ``fp32``, ``bf16``, ``fp16`` (half-precision arithmetic), ``int8`` (integer convolutions and
matrix products); weights stored in fp16 but computed in f32 are ``fp16-weights``, never ``fp16``.

Each (runtime, precision) pair has a :class:`CellPlan`: the artefact it needs (format and what the
exporter writes), what the runtime is asked to compute, and the CPU features that make that
arithmetic native. What happens when the CPU lacks them is part of the plan, because runtimes differ:

* ``skip`` — the runtime would silently compute something else (OpenVINO asked for bf16 on a CPU
  without bf16 runs f32 and still answers "bf16" to the request): the cell is a ``skipped`` record
  that says why, never a silent fallback;
* ``label`` — the kernels do compute that precision, only without the dedicated instructions (int8
  convolutions on AVX2 without VNNI multiply-add bytes in two steps): the cell runs and its record
  says ``native: false`` and why.

Whatever the plan, the runtime reads back what it executed (:data:`READBACK_KEYS`), and a cell
whose matrix operations ran another precision than the plan's is an error record naming both.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

#: every value of the precision axis, in report order.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp16-weights", "int8")

#: what ``Prepared.info`` must hold after ``prepare`` so a record can say what ran (read from the
#: compiled/optimised graph, never copied from the request):
#: ``executed_precision`` — the precision most matrix ops (conv, matmul, gemm) ran in;
#: ``op_precisions`` — ``{precision: number of matrix ops}``;
#: ``precision_source`` — how it was read (e.g. "runtime model rt_info runtimePrecision").
READBACK_KEYS: tuple[str, ...] = ("executed_precision", "op_precisions", "precision_source")

#: int8 dot-product instructions: without one of them int8 MACs take as many cycles as fp32 FMAs.
INT8_NATIVE = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
#: bf16 arithmetic (AVX-512 BF16, AMX, Arm's bf16 extension).
BF16_NATIVE = ("avx512_bf16", "amx_bf16", "bf16")
#: half-precision arithmetic (AVX-512 FP16, AMX-FP16, Arm's fp16 vector arithmetic).
FP16_NATIVE = ("avx512_fp16", "amx_fp16", "asimdhp")

Fallback = Literal["skip", "label"]


@dataclass(frozen=True)
class CellPlan:
    """How one (runtime, precision) cell is built and run."""

    runtime: str
    precision: str
    #: export format the runtime runs (None: the torch module itself)
    export_format: str | None
    #: what the exporter writes (``fp32``, ``fp16`` weights, ``int8`` static); with the format, the
    #: key of the artefact cache (one export serves every runtime that runs that file)
    export_precision: str
    #: what the runtime is asked to compute and must read back: fp32, bf16, fp16 or int8
    compute: str
    #: any of these CPU features makes the arithmetic native; empty: native everywhere
    native_isa: tuple[str, ...] = ()
    #: what a CPU without them gets (see the module docstring)
    fallback: Fallback = "skip"

    def native_reason(self, isa: Collection[str] | None) -> str | None:
        """``None`` when this CPU runs the plan natively, else one sentence saying what it lacks.

        ``isa`` None (features unknown, not Linux) is taken as native: the read-back still checks
        what ran.
        """
        if not self.native_isa or isa is None or any(f in isa for f in self.native_isa):
            return None
        return (f"this CPU has none of {', '.join(self.native_isa)}: no native {self.compute} "
                f"arithmetic for {self.runtime}")


#: every cell a runtime can run, by (runtime, precision).
PLANS: dict[tuple[str, str], CellPlan] = {
    (plan.runtime, plan.precision): plan
    for plan in (
        CellPlan("torch-eager", "fp32", None, "fp32", "fp32"),
        CellPlan("onnxruntime", "fp32", "onnx", "fp32", "fp32"),
        CellPlan("onnxruntime", "int8", "onnx", "int8", "int8", INT8_NATIVE, "label"),
        CellPlan("openvino", "fp32", "openvino", "fp32", "fp32"),
        CellPlan("openvino", "bf16", "openvino", "fp32", "bf16", BF16_NATIVE),
        CellPlan("openvino", "fp16", "openvino", "fp32", "fp16", FP16_NATIVE),
        CellPlan("openvino", "fp16-weights", "openvino", "fp16", "fp32"),
        CellPlan("openvino", "int8", "openvino", "int8", "int8", INT8_NATIVE, "label"),
        CellPlan("litert", "fp32", "tflite", "fp32", "fp32"),
        CellPlan("litert", "fp16-weights", "tflite", "fp16", "fp32"),
        CellPlan("litert", "int8", "tflite", "int8", "int8", INT8_NATIVE, "label"),
        CellPlan("benchmark_app", "fp32", "openvino", "fp32", "fp32"),
        CellPlan("benchmark_app", "bf16", "openvino", "fp32", "bf16", BF16_NATIVE),
    )
}

#: why a pair that has no plan cannot run, where there is more to say than "not supported".
NOT_SUPPORTED: dict[tuple[str, str], str] = {
    ("onnxruntime", "bf16"): "ONNX Runtime's CPU provider has no bf16 convolution kernels on this "
                             "platform (only an Arm fast-math GEMM option)",
    ("onnxruntime", "fp16"): "ONNX Runtime's CPU provider runs fp16 graphs through f32 casts, not fp16 "
                             "arithmetic",
    ("litert", "fp16"): "the LiteRT CPU interpreter (XNNPACK) computes f32 for fp16 files on x86; "
                        "the fp16 file is the fp16-weights cell",
    ("litert", "bf16"): "LiteRT has no bf16 CPU kernels",
    ("torch-eager", "int8"): "torch-eager times the fp32 module only (its quantised paths are not "
                             "what any deployment runs)",
}

#: runtimes a sweep knows, in report order (benchmark_app is OpenVINO's own tool, opt-in).
RUNTIMES: tuple[str, ...] = ("torch-eager", "onnxruntime", "openvino", "litert", "benchmark_app")

#: precisions a sweep times when none are asked for: fp32 everywhere; bf16 and int8 wherever a
#: runtime has a plan for them (a CPU without native bf16 gets a skipped record saying so, an
#: AVX2-only CPU runs int8 labelled not native).
DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")


def plan_for(runtime: str, precision: str) -> CellPlan | str:
    """The plan of a cell, or one sentence saying why the runtime cannot run that precision."""
    found = PLANS.get((runtime, precision))
    if found is not None:
        return found
    reason = NOT_SUPPORTED.get((runtime, precision))
    runs = ", ".join(p for (r, p) in PLANS if r == runtime)
    return reason or f"{runtime} has no {precision} path (it runs {runs})"


def sweep_cells(runtimes: Sequence[str], precisions: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(runtime, precision) cells of a sweep.

    With ``precisions`` given, every runtime × precision (a pair without a plan becomes a
    ``skipped`` record, so an explicit request is never dropped silently). Without, each runtime
    gets the :data:`DEFAULT_PRECISIONS` it has a plan for.
    """
    if precisions:
        return [(r, p) for r in runtimes for p in precisions]
    return [(r, p) for r in runtimes for p in DEFAULT_PRECISIONS if (r, p) in PLANS]


def majority_precision(op_precisions: dict[str, int]) -> str:
    """The precision most matrix ops ran in (ties: the wider one), for ``executed_precision``."""
    if not op_precisions:
        return "unknown"
    order = {p: i for i, p in enumerate(("fp32", "fp16", "bf16", "int8"))}
    return max(op_precisions, key=lambda p: (op_precisions[p], -order.get(p, 99)))


#: runtime type names → axis precision names, for the read-back helpers of every runtime.
TYPE_NAMES: dict[str, str] = {
    "f32": "fp32", "float32": "fp32", "float": "fp32", "fp32": "fp32", "tensor(float)": "fp32",
    "bf16": "bf16", "bfloat16": "bf16", "tensor(bfloat16)": "bf16",
    "f16": "fp16", "float16": "fp16", "fp16": "fp16", "tensor(float16)": "fp16",
    "i8": "int8", "u8": "int8", "int8": "int8", "uint8": "int8", "tensor(int8)": "int8",
    "tensor(uint8)": "int8",
}


def axis_precision(type_name: str) -> str:
    """``f32``/``bfloat16``/``u8``… → ``fp32``/``bf16``/``int8``… (unknown names pass through)."""
    return TYPE_NAMES.get(str(type_name).lower(), str(type_name).lower())
