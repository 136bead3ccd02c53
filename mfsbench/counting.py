"""Parameters and FLOPs of a stage, under a named convention, cross-checked by a second counter.

Why conventions matter: the paper's FLOPs are fvcore "flops" (one per multiply-accumulate) counted
with the fvcore rules of March–May 2021, when every ``aten::batch_norm`` cost 5 per element even in
eval mode. Today's fvcore charges 2, which moves the Id network from 7.52G to 7.50G. A number without
its convention is therefore not a number; every count here carries one:

``paper``
    fvcore with its spring-2021 rules: batch norm 5 per element (4 without affine), and the
    transposed-conv formula of that era (``B·Cout·out_HW·Cin_w·k²``, replaced in October 2021).
    This is what reproduces Table 1.
``fvcore``
    fvcore as installed today (eval batch norm 2 per element).
``macs``
    multiply-accumulates of conv, linear and matmul only; norms, resizes and pools cost 0.

Ops that fvcore does not know are never dropped silently: they are returned in
``unsupported_ops`` and stored in the record. Independently of the convention, the conv/linear/
matmul work is tallied with the correct formulas and compared with PyTorch's own
``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 per MAC); a disagreement above 1 %
raises :class:`CountMismatchError`.

Params are distinct tensors: a module used twice (ArcFace's shared PReLU) or a weight shared between
stages is counted once. BatchNorm running statistics are buffers, not parameters, and are excluded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
from torch import Tensor, nn

from mfsbench.conventions import CONVENTIONS, Convention
from mfsbench.errors import BadInputError, CountMismatchError

#: Relative disagreement allowed between fvcore's conv/linear work and torch's FlopCounterMode.
CROSS_CHECK_TOLERANCE = 0.01

#: fvcore ops that are matrix work: tallied for the cross-check under every convention.
_MATRIX_OPS = ("aten::addmm", "aten::bmm", "aten::einsum", "aten::matmul", "aten::mm", "aten::linear")
#: fvcore default handles that are not matrix work; the ``macs`` convention zeroes them.
_NON_MATRIX_OPS = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)

IDENTITY_DERIVED = "_mfsbench_identity_derived"


@dataclass
class FlopCount:
    """The result of counting one module on one set of inputs."""

    convention: str
    flops: int
    by_operator: dict[str, int]
    unsupported_ops: dict[str, int]
    matrix_macs: int
    torch_matrix_macs: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cross_check_rel_diff(self) -> float | None:
        if self.torch_matrix_macs is None:
            return None
        reference = max(self.torch_matrix_macs, 1)
        return abs(self.matrix_macs - self.torch_matrix_macs) / reference


def mark_identity_derived(param: nn.Parameter) -> nn.Parameter:
    """Tag a frame-stage weight as produced by the identity stage (not stored in any checkpoint)."""
    setattr(param, IDENTITY_DERIVED, True)
    return param


def is_identity_derived(param: Tensor) -> bool:
    return bool(getattr(param, IDENTITY_DERIVED, False))


def count_params(modules: Iterable[nn.Module], *, learned_only: bool = False) -> int:
    """Distinct parameter tensors over ``modules``, each counted once.

    ``learned_only`` skips identity-derived weights (the predicted and modulated kernels injected
    into a frame stage), which is what "stored in a checkpoint" means.
    """
    seen: set[int] = set()
    total = 0
    for module in modules:
        for param in module.parameters():
            if id(param) in seen or (learned_only and is_identity_derived(param)):
                continue
            seen.add(id(param))
            total += param.numel()
    return total


# --- fvcore handles -------------------------------------------------------------------------------


def _shape(value: Any) -> list[int] | None:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(value)


def _conv_macs_correct(inputs: list[Any], outputs: list[Any]) -> int:
    """Conv MACs with today's formula: transposed convs are counted over the *input* map."""
    x, w, y = _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0])
    transposed = bool(inputs[6].toIValue())
    if transposed:
        # weight is (Cin, Cout/groups, k...): every input pixel scatters Cout/groups·k² products.
        return x[0] * prod(x[2:]) * w[0] * prod(w[1:])
    return x[0] * prod(y[2:]) * prod(w)


def _conv_macs_2021(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore's conv formula before October 2021: ``B·out_HW·Cout·w[1]·k²`` for every conv.

    Identical to the correct count for ordinary convs; for a transposed conv ``w[1]`` is
    Cout/groups, so it charged Cout·Cout per output pixel (a bug the paper-era numbers contain).
    """
    x, w, y = _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0])
    return x[0] * prod(y[2:]) * y[1] * prod(w[1:])


def _batch_norm_2021(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore's batch-norm rule of March–May 2021: 5 per element with affine, 4 without."""
    has_affine = _shape(inputs[1]) is not None
    return prod(_shape(inputs[0])) * (5 if has_affine else 4)


def _zero(inputs: list[Any], outputs: list[Any]) -> int:
    # ``set_op_handle(name, None)`` does not remove a default handle in fvcore; a zero handle does.
    return 0


class _MatrixTally:
    """Wraps the matrix handles so the correct conv/linear MACs are tallied beside the total."""

    def __init__(self) -> None:
        self.macs = 0

    def wrap(self, handle: Callable[[list[Any], list[Any]], Any], conv: bool) -> Callable[..., Any]:
        def counted(inputs: list[Any], outputs: list[Any]) -> Any:
            self.macs += (
                _conv_macs_correct(inputs, outputs) if conv else _counter_value(handle(inputs, outputs))
            )
            return handle(inputs, outputs)

        return counted


def _counter_value(value: Any) -> int:
    if isinstance(value, Counter):
        return int(sum(value.values()))
    return int(value)


def _fvcore_analysis(
    module: nn.Module, inputs: tuple[Tensor, ...], convention: Convention, tally: _MatrixTally
) -> Any:
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import addmm_flop_jit, bmm_flop_jit, einsum_flop_jit, matmul_flop_jit

    analysis = FlopCountAnalysis(module, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    conv = _conv_macs_2021 if convention == "paper" else _conv_macs_correct
    analysis.set_op_handle("aten::_convolution", tally.wrap(conv, conv=True))
    matrix_handles = {
        "aten::addmm": addmm_flop_jit,
        "aten::bmm": bmm_flop_jit,
        "aten::einsum": einsum_flop_jit,
        "aten::matmul": matmul_flop_jit,
        "aten::mm": matmul_flop_jit,
        "aten::linear": _linear_macs,
    }
    for name in _MATRIX_OPS:
        analysis.set_op_handle(name, tally.wrap(matrix_handles[name], conv=False))
    if convention == "paper":
        analysis.set_op_handle("aten::batch_norm", _batch_norm_2021)
    elif convention == "macs":
        for name in _NON_MATRIX_OPS:
            analysis.set_op_handle(name, _zero)
    return analysis


def _linear_macs(inputs: list[Any], outputs: list[Any]) -> int:
    x, w = _shape(inputs[0]), _shape(inputs[1])
    return prod(x[:-1]) * w[0] * w[1]


def count_flops(
    module: nn.Module,
    inputs: Sequence[Tensor],
    convention: Convention = "paper",
    *,
    cross_check: bool = True,
) -> FlopCount:
    """Count ``module(*inputs)`` under ``convention``; cross-check the matrix work against torch.

    The module is traced once on CPU with real tensors (fvcore's tracer cannot run on the meta
    device). The cross-check runs torch's own counter on the meta device afterwards, so it costs
    no arithmetic; the module is moved back to CPU only if it was moved.

    Raises:
        BadInputError: for an unknown convention.
        CountMismatchError: when the two counters disagree by more than 1 %.
    """
    if convention not in CONVENTIONS:
        raise BadInputError(f"unknown convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    inputs = tuple(inputs)
    tally = _MatrixTally()
    with torch.no_grad():
        analysis = _fvcore_analysis(module, inputs, convention, tally)
        by_operator = {k: int(v) for k, v in analysis.by_operator().items()}
        total = int(analysis.total())
        unsupported = {k: int(v) for k, v in analysis.unsupported_ops().items()}
    result = FlopCount(
        convention=convention,
        flops=total,
        by_operator=by_operator,
        unsupported_ops=unsupported,
        matrix_macs=tally.macs,
    )
    if cross_check:
        result.torch_matrix_macs = torch_matrix_macs(module, inputs)
        diff = result.cross_check_rel_diff
        if diff is not None and diff > CROSS_CHECK_TOLERANCE:
            raise CountMismatchError(
                f"fvcore counts {tally.macs:,} conv/linear MACs but torch's FlopCounterMode counts "
                f"{result.torch_matrix_macs:,} ({diff:.2%} apart, tolerance {CROSS_CHECK_TOLERANCE:.0%}); "
                "an op is mis-counted: do not trust this graph's FLOPs until the handle is fixed"
            )
    return result


def torch_matrix_macs(module: nn.Module, inputs: Sequence[Tensor]) -> int:
    """Conv/linear/matmul MACs by ``torch.utils.flop_counter`` (its FLOPs are 2 per MAC).

    Runs on a meta-device copy of the inputs and a temporary meta view of the module's tensors, so
    no arithmetic is done and no weight memory is allocated.
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta_inputs = tuple(torch.empty_like(t, device="meta") for t in inputs)
    with torch.no_grad(), _on_meta(module), FlopCounterMode(display=False) as counter:
        module(*meta_inputs)
    return counter.get_total_flops() // 2


class _on_meta:
    """Temporarily swap every parameter and buffer of ``module`` for a meta tensor of its shape."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.saved: list[tuple[nn.Module, str, Tensor, bool]] = []

    def __enter__(self) -> None:
        for owner in self.module.modules():
            for name, param in list(owner._parameters.items()):
                if param is not None:
                    self.saved.append((owner, name, param, True))
                    owner._parameters[name] = nn.Parameter(
                        torch.empty_like(param, device="meta"), requires_grad=False
                    )
            for name, buf in list(owner._buffers.items()):
                if buf is not None:
                    self.saved.append((owner, name, buf, False))
                    owner._buffers[name] = torch.empty_like(buf, device="meta")

    def __exit__(self, *exc: object) -> None:
        for owner, name, tensor, is_param in reversed(self.saved):
            if is_param:
                owner._parameters[name] = tensor  # type: ignore[assignment]
            else:
                owner._buffers[name] = tensor
        self.saved.clear()


def random_inputs(shapes: Iterable[Sequence[int]], seed: int = 0) -> tuple[Tensor, ...]:
    """Deterministic inputs in [0, 1] (images): counts never depend on values, forwards might."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(*shape, generator=generator) for shape in shapes)


_RANDOM_INITS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
                 "xavier_uniform_", "xavier_normal_", "orthogonal_")


def _scaled_constant(tensor: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """Fill with ``1 / fan_in`` (0 for vectors): keeps activations in range through deep stacks."""
    with torch.no_grad():
        if tensor.dim() < 2:
            return tensor.zero_()
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(tensor)
        return tensor.fill_(1.0 / max(fan_in, 1))


class cheap_init:
    """Build networks for counting without drawing random weights.

    Counts depend on shapes only, yet ``nn.init``'s random draws for the zoo's ~1.4 G parameters
    took 9 s of a 60 s ``mfsbench flops`` run. Inside this context every random initialiser of
    ``torch.nn.init`` writes a deterministic constant instead; denormals are flushed so that tiny
    activations cannot slow the traced forward. Never use it for anything whose output is looked at.
    """

    def __enter__(self) -> None:
        self.saved = {name: getattr(nn.init, name) for name in _RANDOM_INITS}
        for name in _RANDOM_INITS:
            setattr(nn.init, name, _scaled_constant)
        self.flush = torch.set_flush_denormal(True)

    def __exit__(self, *exc: object) -> None:
        for name, func in self.saved.items():
            setattr(nn.init, name, func)
        torch.set_flush_denormal(False)
