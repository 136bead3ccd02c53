"""A TorchScript card becomes an ONNX graph once, in the per-user cache, and runs as an ONNX card.

Why convert rather than run TorchScript: every card path (the ONNX counter, ONNX Runtime and OpenVINO
timing, LiteRT through onnx2tf, the phone runners, swap and quality through ONNX Runtime) reads ONNX.
One conversion here gives a TorchScript card all of them, and the figures of every command come from
the very graph the others ran. The user's archive stays the card's weights: records name it by its
sha256, and the derived graph by its own sha256 and by what made it.

The conversion is checked before use: the graph and the archive run on the same seeded inputs and
must agree within :data:`PARITY_TOLERANCE` (the suite's fp32 gate); a graph that does not is refused,
never run. It is cached under a key of the archive's sha256, the card's interface and the converter's
version, in :func:`mfsbench.export.card.artifact_cache_dir` (never in the repository or the card's
folder: a derivative of someone's model is still their model).

Trust: ``torch.jit.load`` compiles the archive's TorchScript (not Python) and the check runs it once.
An archive is a program; use archives you trust. A ``.safetensors`` file never executes anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.cards.schema import Card, CardError

if TYPE_CHECKING:  # numpy and torch are imported when a conversion runs: listing cards stays light
    import numpy as np

#: max |ONNX − TorchScript| on the check inputs (outputs in [0, 1]); the device axis's fp32 gate
PARITY_TOLERANCE = 1e-4
#: the seed of the check inputs (uniform [0, 1], the range a crop tensor and an l2-normed vector lie in)
SEED = 0


@dataclass(frozen=True)
class DerivedGraph:
    """The ONNX graph a non-ONNX card runs as, and what made it (for records)."""

    path: Path
    sha256: str
    details: dict[str, Any]


def _static(shape: tuple[int, ...], size: int) -> tuple[int, ...]:
    """A card shape with its dynamic dimensions pinned: batch → 1, anything else → the crop size."""
    return tuple(d if d >= 0 else (1 if i == 0 else size) for i, d in enumerate(shape))


def _load_archive(card: Card, path: Path) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # a zip that is not an archive, a truncated file, an unknown op: one line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CardError(f"{card.path}: file {path} (files.swapper) is not a TorchScript archive ({reason}); "
                        "save it with torch.jit.save, or set `format` to what it is") from None


def _arity(card: Card, module: Any, path: Path) -> int:
    """How many tensors ``forward`` takes: 1 (the target, identity baked in) or 2 (target, source)."""
    try:
        arguments = [a.name for a in module.forward.schema.arguments][1:]  # drop self
    except AttributeError:
        raise CardError(f"{card.path}: file {path} (files.swapper) has no scripted forward; "
                        "script or trace the model's forward before saving it") from None
    if len(arguments) not in (1, 2):
        raise CardError(f"{card.path}: file {path}'s forward takes {len(arguments)} inputs "
                        f"({', '.join(arguments)}); a card's swapper takes the target, and the source "
                        "if the identity is an input")
    return len(arguments)


def _outputs(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return list(value)
    raise TypeError(type(value).__name__)


def output_names(count: int) -> list[str]:
    """The derived graph's output names: ``output``, or ``output_0`` … for several (what
    ``run.paste.output`` names)."""
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _cache_key(card: Card, sha256: str, shapes: list[tuple[int, ...]]) -> str:
    import torch

    from mfsbench.export.onnx import OPSET

    parts = [sha256, "torchscript", torch.__version__, str(OPSET), card.target_io.name,
             card.source_io.name, json.dumps(shapes)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def derive_onnx(card: Card, path: Path, sha256: str, *, cache_dir: Path | None = None) -> DerivedGraph:
    """The ONNX graph of the TorchScript archive ``path`` (sha256 ``sha256``), made once and cached.

    Raises:
        CardError: not an archive, a forward the card cannot feed, outputs that are not tensors, an
            export the exporter refuses, or a graph that disagrees with the archive.
    """
    from mfsbench.checkpoints.digest import sha256_file
    from mfsbench.export.card import artifact_cache_dir

    if card.target_io.dtype != "float32" or card.source_io.dtype != "float32":
        raise CardError(f"{card.path}: field `io.target.dtype`/`io.source.dtype`: a TorchScript card is "
                        "converted in float32; declare float32")
    shapes = [_static(card.target_io.shape, card.size), _static(card.source_io.shape, card.size)]
    key = _cache_key(card, sha256, shapes)
    folder = (cache_dir or artifact_cache_dir()) / "cards" / sha256[:16]
    graph, sidecar = folder / f"torchscript_{key}.onnx", folder / f"torchscript_{key}.json"
    if graph.is_file() and sidecar.is_file():
        details = json.loads(sidecar.read_text(encoding="utf-8"))
        if details.get("sha256") == sha256_file(graph):  # a cache file changed behind our back is redone
            details["cache"] = f"reused from {folder} (key {key})"
            return DerivedGraph(graph, details["sha256"], details)
    module = _load_archive(card, path)
    arity = _arity(card, module, path)
    folder.mkdir(parents=True, exist_ok=True)
    details = _export_checked(card, module, path, shapes[:arity], graph)
    details.update({"converted_from": f"TorchScript archive sha256 {sha256}", "cache_key": key,
                    "sha256": sha256_file(graph)})
    sidecar.write_text(json.dumps(details), encoding="utf-8")
    details["cache"] = f"written to {folder} (key {key})"
    return DerivedGraph(graph, details["sha256"], details)


def _export_checked(card: Card, module: Any, path: Path, shapes: list[tuple[int, ...]],
                    graph: Path) -> dict[str, Any]:
    """Export ``module`` to ``graph`` (atomically) and check it against the archive on seeded inputs."""
    import torch

    from mfsbench.export.onnx import OPSET

    generator = torch.Generator().manual_seed(SEED)
    inputs = tuple(torch.rand(*shape, generator=generator) for shape in shapes)
    names = [card.target_io.name, card.source_io.name][:len(shapes)]
    try:
        with torch.no_grad():
            expected = [t.numpy() for t in _outputs(module(*inputs))]
    except TypeError as exc:
        raise CardError(f"{card.path}: file {path}'s forward returns {exc}, not a tensor or a tuple of "
                        "tensors; return the swapped crop (and any mask) as tensors") from None
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
        raise CardError(f"{card.path}: file {path} fails on inputs of the card's shapes "
                        f"{[list(s) for s in shapes]} ({reason}); make `io` match the model") from None
    outputs = output_names(len(expected))
    partial = graph.with_name(graph.stem + ".partial.onnx")
    try:
        # torch 2.13's dynamo exporter refuses a ScriptModule; the TorchScript exporter is the one that
        # reads it (deprecated, so its warning and chatter are silenced, not its errors)
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, str(partial), input_names=names, output_names=outputs,
                              opset_version=OPSET, dynamo=False)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CardError(f"{card.path}: file {path} cannot be exported to ONNX ({reason}); "
                        "export it to ONNX yourself and use format = \"onnx\"") from None
    error = _parity(partial, dict(zip(names, (t.numpy() for t in inputs), strict=True)), expected)
    if not error <= PARITY_TOLERANCE:
        partial.unlink(missing_ok=True)
        raise CardError(f"{card.path}: the ONNX graph converted from {path} differs from the archive by "
                        f"{error:.2e} (> {PARITY_TOLERANCE:g}); export it to ONNX yourself and use "
                        "format = \"onnx\"")
    os.replace(partial, graph)
    return {"converter": f"torch.onnx.export (TorchScript exporter), torch {torch.__version__}",
            "opset": OPSET, "inputs": {n: list(s) for n, s in zip(names, shapes, strict=True)},
            "outputs": outputs, "parity_max_abs": error, "parity_tolerance": PARITY_TOLERANCE,
            "parity_inputs": f"uniform [0, 1], seed {SEED}"}


def _parity(graph: Path, feeds: dict[str, np.ndarray], expected: list[np.ndarray]) -> float:
    """max |ONNX Runtime − archive| over every output, the way the suite runs the graph."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    if len(got) != len(expected):
        return float("inf")
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - e))) if e.size else 0.0
               for g, e in zip(got, expected, strict=True))
