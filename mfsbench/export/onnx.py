"""torch → ONNX with the dynamo exporter, as one self-contained file.

torch 2.13's exporter writes weights to a separate ``.onnx.data`` unless ``external_data=False``;
a single file is what phones and ``onnxruntime_perf_test`` are given, and every zoo stage is under
the 2 GB protobuf limit. The opset actually written is checked after export, because the dynamo
exporter can silently keep a higher one (research notes §3).

Two exporter traps are worked around here, each with a regression test: its graph optimizer drops
tiny epsilons (see :func:`optimize_exactly`, which runs it without the rules that do), and it writes a
bias-free convolution's zero bias as a computed subgraph that ONNX Runtime never folds (see
:func:`explicit_biases`).

The written graph is optimised only when the optimised graph agrees with the unoptimised one
(:data:`OPTIMIZER_EXACTNESS`) and with torch (:data:`OPTIMIZER_TOLERANCE`) in ONNX Runtime; otherwise
the unoptimised graph is written. :func:`export_onnx` returns what was done, which
:class:`OnnxExporter` stores in ``ExportedArtifact.details``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.errors import MfsbenchError
from mfsbench.export.base import ExportedArtifact, Exporter, ExportJob
from mfsbench.optional import require

OPSET = 20
#: the optimised graph is written only when, on the export's example inputs in ONNX Runtime, its
#: outputs are within OPTIMIZER_TOLERANCE of torch's (the fp32 tolerance of the parity check every
#: export goes through afterwards) *and* within OPTIMIZER_EXACTNESS of the unoptimised graph's. Errors
#: are max abs errors, outputs outside [0, 1] divided by the reference's peak |y| (as
#: :mod:`mfsbench.export.parity` does).
OPTIMIZER_TOLERANCE = 1e-4
#: The optimiser's rewrites are exact, and both graphs run in the same runtime, which makes the same
#: fusions itself: :func:`optimize_exactly` gave bit-identical outputs (0.0) on the student and SimSwap
#: frame stages. The fp32 tolerance alone is too loose to see a dropped epsilon on random inputs:
#: onnxscript's stock optimiser moved SimSwap's frame stage by only 8.2e-6 on the example inputs (and
#: by 1.2e-4 on real face crops, where the sweep's parity fails). 2e-6 is 16 float32 ulps of 1.0; a
#: graph above it is not used (the unoptimised one is, so a false alarm costs only the optimisation).
OPTIMIZER_EXACTNESS = 2e-6


def output_count(module: nn.Module, example_inputs: Sequence[Tensor]) -> int:
    with torch.no_grad():
        out = module(*example_inputs)
    return len(out) if isinstance(out, (tuple, list)) else 1


def _bias_free_convs(module: nn.Module) -> list[nn.modules.conv._ConvNd]:
    return [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd) and m.bias is None]


@contextlib.contextmanager
def explicit_biases(module: nn.Module) -> Iterator[nn.Module]:
    """While open, every bias-free convolution of ``module`` has an all-zero bias (exact: ``x + 0 = x``).

    Why: for ``Conv2d(bias=False)`` torch 2.13's dynamo exporter emits the zero bias as
    ``Shape(W) → Expand → CastLike → Expand`` instead of leaving the input empty. ONNX Runtime does
    not constant-fold that ``Expand``, so the convolution has a *computed* bias and its NCHWc layout
    transformer (blocked convs with fused activations, vectorised upsampling) skips it. On the
    MobileFaceSwap frame stage, where every IDN conv is bias-free, this kept 23 of 32 convs and 4 of
    9 upsamples in plain NCHW with reorders around them: ONNX Runtime took 14.9–24.8 ms per frame
    against 10.6–10.8 ms with explicit zero biases (2 threads, same session options).

    The biases are removed again on exit, error or not, so the caller's module is left as it was
    without a copy of its weights (SimSwap's are hundreds of MB).
    """
    added = _bias_free_convs(module)
    for conv in added:
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype), requires_grad=False)
    try:
        yield module
    finally:
        for conv in added:
            conv.bias = None



def _tolerant_no_op_rules() -> list[Any]:
    """onnxscript's ``x + 0``, ``0 + x``, ``x - 0``, ``x · 1``, ``1 · x`` and ``x / 1`` rules.

    The cause of the dropped epsilon: these rules (``onnxscript.rewriter.rules.common._no_op``, in
    ``rewriter._DEFAULT_REWRITE_RULES``, run by ``optimize_ir``, which ``torch.onnx.export`` calls when
    ``optimize=True``) match their 0 or 1 as a pattern ``Constant`` compared with
    ``math.isclose(value, 0, rel_tol=1e-5, abs_tol=1e-8)``. A float32 ``1e-8`` (9.99999994e-09) is
    within ``abs_tol`` of 0, so ``Add(x, 1e-8)`` is rewritten to ``Identity(x)``; likewise any
    multiplier or divisor within 1e-5 of 1 would be removed.
    """
    from onnxscript.rewriter.rules.common import _no_op, dropout_inference_rule, dropout_zero_rule

    keep = {id(dropout_zero_rule), id(dropout_inference_rule)}  # exact in inference whatever the ratio
    tolerant = [rule for rule in _no_op.rules.rules if id(rule) not in keep]
    if len(tolerant) != 6:
        raise MfsbenchError(
            f"onnxscript's no-op rule set changed ({len(tolerant)} arithmetic rules, expected 6); "
            "the exact optimiser must be reviewed for this onnxscript version"
        )
    return tolerant


def _scalar_exactly(value: Any, number: float) -> bool:
    """``value`` is a rank-0 constant equal to ``number`` bit for bit in value (not approximately)."""
    from onnxscript.optimizer import basic_constant_propagation

    if value.const_value is None and value.producer() is not None:
        basic_constant_propagation([value.producer()])
    const = value.const_value
    if const is None:
        return False
    array = const.numpy()
    return bool(array.ndim == 0 and array.item() == number)


def _exact_no_op_rules() -> list[Any]:
    """``x + 0``, ``x - 0``, ``x · 1``, ``x / 1`` → ``x`` only for a scalar constant exactly 0 or 1."""
    from onnxscript.rewriter.pattern import RewriteRule

    def add(op: Any, x: Any, c: Any) -> Any:
        return op.Add(x, c)

    def sub(op: Any, x: Any, c: Any) -> Any:
        return op.Sub(x, c)

    def mul(op: Any, x: Any, c: Any) -> Any:
        return op.Mul(x, c)

    def div(op: Any, x: Any, c: Any) -> Any:
        return op.Div(x, c)

    def identity(op: Any, x: Any, **_: Any) -> Any:
        return op.Identity(x)

    def is_zero(context: Any, c: Any, **_: Any) -> bool:
        return _scalar_exactly(c, 0)

    def is_one(context: Any, c: Any, **_: Any) -> bool:
        return _scalar_exactly(c, 1)

    return [
        *RewriteRule(add, identity, is_zero, name="ExactAddZero").commute(),
        RewriteRule(sub, identity, is_zero, name="ExactSubZero"),
        *RewriteRule(mul, identity, is_one, name="ExactMulOne").commute(),
        RewriteRule(div, identity, is_one, name="ExactDivOne"),
    ]


def exact_rewrite_rules() -> list[Any]:
    """onnxscript's default rewrite rules with the tolerant no-op rules replaced by exact ones."""
    from onnxscript import rewriter

    tolerant = {id(rule) for rule in _tolerant_no_op_rules()}
    defaults = list(rewriter._DEFAULT_REWRITE_RULES)
    if not tolerant <= {id(rule) for rule in defaults}:
        raise MfsbenchError(
            "onnxscript's default rewrite rules no longer hold its no-op rules; review the optimiser"
        )
    return [*_exact_no_op_rules(), *(rule for rule in defaults if id(rule) not in tolerant)]


#: what :func:`optimize_exactly` runs, for the record
OPTIMIZER_PASSES = (
    "inline; 2 rounds of (constant folding, onnxscript default rewrite rules with exact no-op rules "
    "instead of its tolerant ones, unused node/function/opset removal); constants lifted to "
    "initializers, initializers deduplicated, common subexpressions eliminated"
)


def optimize_exactly(model: Any) -> None:
    """onnxscript's ``optimize_ir`` (what ``torch.onnx.export(optimize=True)`` runs), in place, minus
    the rules that treat a constant *near* 0 or 1 as 0 or 1 (see :func:`_tolerant_no_op_rules`).

    The pass list is the one ``onnxscript.optimizer.optimize_ir`` 0.7.2 builds, with default limits;
    only the rewrite rules differ (:func:`exact_rewrite_rules`).
    """
    from onnx_ir.passes import PassManager, Sequential, common
    from onnxscript.optimizer import _constant_folding as folding
    from onnxscript.rewriter import RewritePass

    rounds = PassManager(
        [
            folding.FoldConstantsPass(
                shape_inference=True,
                input_size_limit=folding.DEFAULT_CONSTANT_FOLD_INPUT_SIZE_LIMIT,
                output_size_limit=folding.DEFAULT_CONSTANT_FOLD_OUTPUT_SIZE_LIMIT,
                should_fold=lambda node: None,
            ),
            RewritePass(exact_rewrite_rules()),
            common.RemoveUnusedNodesPass(),
            common.RemoveUnusedFunctionsPass(),
            common.RemoveUnusedOpsetsPass(),
        ],
        steps=2,
        early_stop=True,
    )
    Sequential(
        common.InlinePass(),
        rounds,
        common.RemoveUnusedNodesPass(),
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common.LiftSubgraphInitializersToMainGraphPass(),
        common.DeduplicateInitializersPass(),
        common.CommonSubexpressionEliminationPass(),
        common.OutputFixPass(),
        common.NameFixPass(),
    )(model)


def _flat_numpy(out: Any) -> list[np.ndarray]:
    values = out if isinstance(out, (tuple, list)) else (out,)
    return [np.asarray(v.detach().cpu().numpy() if isinstance(v, Tensor) else v, dtype=np.float32)
            for v in values]


def _scaled_max_err(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> float:
    """Worst max |got − want| over outputs, scaled as every parity check scales it
    (:func:`mfsbench.export.compare.compare_outputs`: outputs outside [0, 1] by ``want``'s peak |y|)."""
    from mfsbench.export.compare import compare_outputs

    names = [f"output_{i}" for i in range(len(want))]
    parity = compare_outputs([want], [got], names, fmt="onnx", precision="fp32", runtime="onnxruntime")
    return parity.max_abs_err


def _run_onnx(path: Path, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``path`` in the same ONNX Runtime adapter that parity and timing use (outputs only: no
    precision read-back, which would write the optimised graph once more)."""
    from mfsbench.device.runtimes.onnxruntime import OnnxRuntime

    prepared = OnnxRuntime().prepare(path, max(1, torch.get_num_threads()), read_back=False)
    names = [info.name for info in prepared.inputs]
    return [np.asarray(o, dtype=np.float32) for o in prepared.run(dict(zip(names, arrays, strict=True)))]


def _count_nodes(model: Any) -> int:
    return sum(1 for _ in model.graph)


def _save(program: Any, path: Path) -> None:
    program.save(str(path), external_data=False)
    stray = path.with_name(path.name + ".data")
    if stray.exists():
        raise MfsbenchError(f"ONNX export wrote external data {stray} although asked for one file")


def export_onnx(
    module: nn.Module,
    example_inputs: Sequence[Tensor],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    *,
    optimize: bool = True,
    optimizer: Callable[[Any], object] = optimize_exactly,
) -> dict[str, Any]:
    """Write ``path`` as one ONNX file (opset :data:`OPSET`, no external data), check it, and return
    what was done (for ``ExportedArtifact.details``).

    torch's exporter runs with ``optimize=False`` (its optimizer deletes ``Add(x, 1e-8)``, see
    :func:`_tolerant_no_op_rules`). With ``optimize``, ``optimizer`` (default
    :func:`optimize_exactly`) then rewrites the graph in place, and the result replaces the
    unoptimised file only if, on ``example_inputs`` in ONNX Runtime, it is within
    :data:`OPTIMIZER_EXACTNESS` of the unoptimised graph and :data:`OPTIMIZER_TOLERANCE` of torch;
    otherwise the unoptimised graph stays and the returned details say why. Without ONNX Runtime
    nothing can be checked, so nothing is optimised.
    """
    require("onnxscript", "onnxscript", "ONNX export (torch's dynamo exporter)")
    onnx = require("onnx", "onnx", "ONNX export")
    path.parent.mkdir(parents=True, exist_ok=True)
    with explicit_biases(module), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            tuple(example_inputs),
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=OPSET,
            dynamo=True,
            # onnxscript's graph optimizer (optimize=True, the default) removes ``Add(x, 1e-8)`` as if
            # it added zero: SimSwap's instance norm ``rsqrt(mean(x²) + 1e-8)`` lost its epsilon and
            # drifted 1.0–1.8e-4 from torch on real faces. The exact optimiser runs below instead.
            optimize=False,
            verbose=False,
        )
    _save(program, path)
    details: dict[str, Any] = {"optimized": False}
    if optimize:
        details = _optimize_checked(module, example_inputs, program, path, optimizer)
    onnx.checker.check_model(onnx.load(str(path)))
    return details


def _describe(optimizer: Callable[[Any], object]) -> str:
    version = metadata.version("onnxscript")
    if optimizer is optimize_exactly:
        return f"onnxscript {version}: {OPTIMIZER_PASSES}"
    name = f"{getattr(optimizer, '__module__', '?')}.{getattr(optimizer, '__qualname__', repr(optimizer))}"
    return f"{name} (onnxscript {version})"


def _optimize_checked(
    module: nn.Module,
    example_inputs: Sequence[Tensor],
    program: Any,
    path: Path,
    optimizer: Callable[[Any], object],
) -> dict[str, Any]:
    """Optimise ``program.model`` in place; replace ``path`` (the unoptimised file) only when parity holds."""
    details: dict[str, Any] = {"onnx_optimizer": _describe(optimizer), "optimized": False,
                               "nodes_before": _count_nodes(program.model)}
    if importlib.util.find_spec("onnxruntime") is None:
        details["optimizer_skipped"] = "onnxruntime is not installed: an optimised graph could not be checked"
        return details
    arrays = [np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32) for t in example_inputs]
    candidate = path.with_name(f"{path.stem}.optimized{path.suffix}")
    try:
        try:
            optimizer(program.model)
            _save(program, candidate)
        except Exception as exc:  # an optimiser crash leaves the checked unoptimised file in place
            details["optimizer_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return details
        details["nodes_after"] = _count_nodes(program.model)
        with torch.no_grad():
            want = _flat_numpy(module.eval()(*example_inputs))
        raw = _run_onnx(path, arrays)
        got = _run_onnx(candidate, arrays)
        vs_raw, vs_torch = _scaled_max_err(got, raw), _scaled_max_err(got, want)
        details.update({
            "optimizer_parity_max_abs_err": vs_raw,  # optimised vs unoptimised graph
            "optimizer_parity_vs_torch_max_abs_err": vs_torch,
            "unoptimized_vs_torch_max_abs_err": _scaled_max_err(raw, want),
            "optimizer_parity_runtime": "onnxruntime",
            "optimizer_parity_inputs": "the export's example inputs",
            "optimizer_tolerance": {"vs_unoptimized": OPTIMIZER_EXACTNESS, "vs_torch": OPTIMIZER_TOLERANCE},
        })
        if not (vs_raw <= OPTIMIZER_EXACTNESS and vs_torch <= OPTIMIZER_TOLERANCE):
            details["optimizer_rejected"] = (
                f"the optimised graph is {vs_raw:.3g} off the unoptimised one (allowed "
                f"{OPTIMIZER_EXACTNESS:g}) and {vs_torch:.3g} off torch (allowed {OPTIMIZER_TOLERANCE:g}); "
                "the unoptimised graph was written"
            )
            return details
        os.replace(candidate, path)
        details["optimized"] = True
        return details
    finally:
        candidate.unlink(missing_ok=True)


class OnnxExporter(Exporter):
    name = "onnx"
    precisions = ("fp32", "int8")

    def write(self, job: ExportJob) -> ExportedArtifact:
        outputs = tuple(f"output_{i}" for i in range(output_count(job.module, job.example_inputs)))
        path = job.out_dir / f"{job.stem}.onnx"
        details = export_onnx(job.module, job.example_inputs, path, job.input_names, outputs)
        if job.precision == "int8":  # static QDQ int8 of the fp32 file (mfsbench.export.onnx_int8)
            from mfsbench.export.onnx_int8 import write_int8

            details = {**details, "quantization": write_int8(path, job.calibration, job.input_names)}
        return ExportedArtifact(path, self.name, job.precision, sha256_file(path), job.input_names, outputs,
                                details=details)
