"""Run an exported artifact in its own runtime and compare it with torch, output by output.

A file that converts but computes something else is worse than no file, so every export ends here.
Artifacts run through the same :mod:`mfsbench.device.runtimes` adapters that are timed (one implementation
per backend, see :data:`PARITY_RUNTIME`): onnxruntime (CPU EP), OpenVINO with
``INFERENCE_PRECISION_HINT=f32``, and the LiteRT interpreter (int8 I/O is (de)quantized there
with the file's own scales; outputs in signature order).

Metrics per output, over all samples: ``max_abs_err`` and PSNR. Outputs already in [0, 1] (swapped
face, mask) are compared as they are; others (identity kernels) are divided by the reference's peak
``max |y|`` first, so one tolerance table applies to every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.device.runtimes.base import Prepared
from mfsbench.export.base import ExportedArtifact
from mfsbench.export.compare import (  # noqa: F401 - re-exported: the parity API in one place
    PSNR_CAP_DB,
    TOLERANCES,
    OutputParity,
    ParityResult,
    compare_outputs,
)


def _numpy(values: Sequence[Any]) -> list[np.ndarray]:
    out = []
    for value in values:
        array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        out.append(np.ascontiguousarray(array, dtype=np.float32))
    return out


def _threads() -> int:
    return max(1, torch.get_num_threads())


#: export format → the runtime adapter (``mfsbench.device.runtimes``) that verifies it: the same code that
#: times it, so parity and latency are of one thing. OpenVINO is the f32-pinned variant; on
#: AVX512_BF16 CPUs its default runs bf16 and fp32 parity would fail for the runtime's reasons.
PARITY_RUNTIME: dict[str, str] = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}


def prepare_artifact(artifact: ExportedArtifact, threads: int | None = None) -> tuple[str, Prepared]:
    """``(runtime name, prepared model)`` for ``artifact`` in its parity runtime."""
    from mfsbench.device.runtimes import get_runtime

    name = PARITY_RUNTIME[artifact.format]
    return name, get_runtime(name).prepare(artifact.path, threads or _threads())


def _run(prepared: Prepared, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Positional inputs → the prepared model's named inputs (the artifact's input order)."""
    names = [info.name for info in prepared.inputs]
    return prepared.run(dict(zip(names, arrays, strict=True)))


def run_artifact(artifact: ExportedArtifact, samples: Sequence[Sequence[Any]]) -> list[list[np.ndarray]]:
    """Outputs of ``artifact`` in its runtime, one list of arrays per sample."""
    _, prepared = prepare_artifact(artifact)
    return [_run(prepared, _numpy(sample)) for sample in samples]


def check_parity(
    module: nn.Module, artifact: ExportedArtifact, samples: Sequence[Sequence[Any]]
) -> ParityResult:
    """Compare ``artifact`` with ``module`` (torch, fp32) on every sample (a tuple of stage inputs)."""
    runtime, prepared = prepare_artifact(artifact)
    got: list[list[np.ndarray]] = []
    want: list[list[np.ndarray]] = []
    module.eval()
    with torch.no_grad():
        for sample in samples:
            # (C,H,W) crops get the batch axis every stage input has
            arrays = [a[None] if a.ndim == 3 else a for a in _numpy(sample)]
            want.append(_numpy(module(*(torch.from_numpy(a) for a in arrays))))
            got.append(_run(prepared, arrays))
    return compare_outputs(want, got, artifact.output_names, fmt=artifact.format,
                           precision=artifact.precision, runtime=runtime)
