"""The exporter interface, the artifact it returns, and the registry that resolves a format name.

Exporters turn one *stage* module (see :mod:`mfsbench.export.stages`) into a deployable file. Every
backend is optional: its package is imported inside the exporter only, so ``import mfsbench`` never
pays for OpenVINO or LiteRT, and a missing backend is one :class:`MissingDependencyError` line that
names the pip package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from mfsbench.errors import BadInputError
from mfsbench.export.stages import export_ready
from mfsbench.optional import load

PRECISIONS = ("fp32", "fp16", "int8")

#: format name → "module:class"; resolved lazily so listing formats imports no backend.
_EXPORTERS = {
    "onnx": "mfsbench.export.onnx:OnnxExporter",
    "openvino": "mfsbench.export.openvino:OpenVinoExporter",
    "tflite": "mfsbench.export.tflite:TfliteExporter",
}


@dataclass(frozen=True)
class ExportedArtifact:
    """One written model file and what is needed to run it again (names) or trust it (sha256)."""

    path: Path
    format: str
    precision: str
    sha256: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    #: how the file was made, for the record (``info["export"]``): optimiser passes run, quantisation
    #: scheme and calibration, weight storage (e.g. ``{"weights": "fp16", "compute": "f32"}``). Plain
    #: JSON values only; what the exporter *did*, never what was asked.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the artifact (an OpenVINO IR is ``.xml`` + ``.bin``)."""
        weights = self.path.with_suffix(".bin")
        return (self.path, weights) if self.format == "openvino" and weights.exists() else (self.path,)

    @property
    def size_mb(self) -> float:
        return sum(f.stat().st_size for f in self.files) / 1e6


@dataclass(frozen=True)
class ExportJob:
    """One export, checked and ready to write: the rewritten stage and everything about its file."""

    #: the stage after :func:`~mfsbench.export.stages.export_ready` (exact rewrites applied)
    module: nn.Module
    example_inputs: tuple[Tensor, ...]
    out_dir: Path
    precision: str
    input_names: tuple[str, ...]
    #: input tuples for static int8 (real aligned face crops); None for other precisions
    calibration: Sequence[Sequence[Any]] | None
    stem: str


class Exporter(ABC):
    """A backend: ``name`` is the ``--format`` value, ``precisions`` what it can write.

    :meth:`export` is the same for every backend (check the request, apply the exact export-time
    rewrites, name the inputs); a backend only says how to write the file, in :meth:`write`.
    """

    name: str = ""
    precisions: tuple[str, ...] = ("fp32",)

    def export(
        self,
        module: nn.Module,
        example_inputs: Sequence[Tensor],
        out_dir: Path,
        precision: str,
        *,
        input_names: Sequence[str] | None = None,
        calibration: Sequence[Sequence[Any]] | None = None,
        stem: str = "model",
    ) -> ExportedArtifact:
        """Write ``module`` (traced with ``example_inputs``) to ``out_dir``.

        ``calibration`` is a list of input tuples (numpy arrays or tensors, one per stage input) that
        only static int8 uses; the caller supplies real aligned face crops.

        Raises:
            BadInputError: a precision this backend cannot write, int8 without calibration inputs,
                or input names that do not match the inputs.
        """
        self.check_precision(precision)
        if precision == "int8" and not calibration:
            raise BadInputError("int8 export needs calibration inputs (real aligned face crops); none given")
        names = default_input_names(len(example_inputs), input_names)
        job = ExportJob(export_ready(module), tuple(example_inputs), Path(out_dir), precision, names,
                        calibration, stem)
        return self.write(job)

    @abstractmethod
    def write(self, job: ExportJob) -> ExportedArtifact:
        """Write the file(s) of ``job`` under ``job.out_dir`` and describe them."""

    def check_precision(self, precision: str) -> None:
        """One-line BadInputError naming the choices this backend has."""
        if precision not in self.precisions:
            raise BadInputError(
                f"format {self.name!r} cannot write precision {precision!r}; "
                f"choose one of {', '.join(self.precisions)}"
            )


def formats() -> tuple[str, ...]:
    return tuple(_EXPORTERS)


def get_exporter(name: str) -> Exporter:
    """The exporter for a ``--format`` value.

    Raises:
        BadInputError: an unknown format (the message lists the known ones).
    """
    target = _EXPORTERS.get(name)
    if target is None:
        raise BadInputError(f"unknown export format {name!r}; choose one of {', '.join(_EXPORTERS)}")
    exporter: Exporter = load(target)()
    return exporter


def as_nchw_batch(value: Any) -> np.ndarray:
    """A calibration/parity input as contiguous float32 with a batch axis: (C,H,W) → (1,C,H,W)."""
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    array = array.astype(np.float32, copy=False)
    return np.ascontiguousarray(array[None] if array.ndim == 3 else array)


def calibration_feeds(
    calibration: Sequence[Sequence[Any]] | None, input_names: Sequence[str]
) -> list[dict[str, np.ndarray]]:
    """One ``{input name: float32 (1,C,H,W) array}`` per calibration sample, for every int8 exporter.

    Raises:
        BadInputError: no samples, or a sample with another number of arrays than the stage inputs.
    """
    if not calibration:
        raise BadInputError("int8 export needs calibration inputs (real aligned face crops); none given")
    feeds = []
    for sample in calibration:
        if len(sample) != len(input_names):
            raise BadInputError(
                f"a calibration sample has {len(sample)} arrays; the stage takes {len(input_names)}"
            )
        feeds.append({name: as_nchw_batch(value) for name, value in zip(input_names, sample, strict=True)})
    return feeds


def default_input_names(count: int, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is not None:
        if len(names) != count:
            raise BadInputError(f"{len(names)} input names given for {count} inputs")
        return tuple(names)
    return tuple(f"input_{i}" for i in range(count))
