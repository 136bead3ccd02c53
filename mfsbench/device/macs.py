"""The MACs a device cell executes: matrix work of the graph that is exported and run.

A runtime never runs the torch stage as written. Every exporter runs
:func:`mfsbench.export.stages.export_ready` first: exact rewrites such as the student's narrowing
1×1 conv moved before its ×2 upsample. Efficiency against a GEMM peak must therefore count the
rewritten graph, and only the work a GEMM peak measures: conv, linear and matmul
multiply-accumulates. That is the ``macs`` convention of :mod:`mfsbench.counting`: norms, resizes
and pools cost 0. The paper's GFLOPs (fvcore 2021 rules, with batch norm at 5 per element and
bilinear upsampling at 4 on the unrewritten graph) stay a separate figure
(:attr:`StageMacs.paper_flops`).

On the student frame stage at 224 (the measurement audit, A2): paper 333.2 M, ``macs`` 305.7 M,
executed 296.1 M.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class StageMacs:
    """The three counts of one stage: paper-convention FLOPs, matrix MACs as written, matrix MACs
    as exported and run."""

    paper_flops: int
    macs: int
    executed_macs: int


def executed_macs(module: nn.Module, example_inputs: Sequence[Tensor]) -> int:
    """Conv/linear/matmul MACs of ``export_ready(module)`` on ``example_inputs``: the graph every
    exporter writes, so the work its runtimes execute. ``module`` itself is not changed.

    Counted by fvcore's handles and cross-checked against torch's ``FlopCounterMode``.

    Raises:
        CountMismatchError: the two counters disagree by more than 1 %.
    """
    from mfsbench.counting import count_flops
    from mfsbench.export.stages import export_ready

    return count_flops(export_ready(module), tuple(example_inputs), "macs", cross_check=True).matrix_macs


def stage_macs(module: nn.Module, example_inputs: Sequence[Tensor]) -> StageMacs:
    """:class:`StageMacs` of ``module``: paper FLOPs and ``macs`` of the module as written, and
    :func:`executed_macs` of its exported form."""
    from mfsbench.counting import count_flops

    inputs = tuple(example_inputs)
    paper = count_flops(module, inputs, "paper", cross_check=False)
    return StageMacs(paper.flops, paper.matrix_macs, executed_macs(module, inputs))
