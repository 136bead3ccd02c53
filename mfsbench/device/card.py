"""A model card on the device axis: its inputs from real faces, its reference, its MACs.

Why a separate path from the zoo's: a card has no torch module. Its frame stage is the card's ONNX
file itself, so there is nothing to export at fp32 (:mod:`mfsbench.export.card`), and the parity
reference cannot be torch: it is ONNX Runtime fp32 on the user's original file, the closest thing to
the author's own inference. The timed cells then compare against that reference through the very
runtime and configuration they time, as zoo cells do.

Inputs, per the card: the target input is a held-out real face crop, aligned with the card's
template with its ``target.warp`` (:func:`mfsbench.faces.align.align_to_points`) and turned into the
tensor the card declares (colour order, ``pixel / scale``, ``mean``, ``std``, NCHW). The identity
input is one fixed vector of the declared shape drawn with a seed (standard normal, L2-normalised
when the card's ``identity.post_norm`` is ``l2``), the way the zoo's video-mode frame stage holds one
injected identity; every record says so. MACs are the card counter's (:mod:`mfsbench.cards.count`)
on the graph that runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.registry import ModelSpec

#: the seed of a card's identity vector
IDENTITY_SEED = 0


def crop_tensor(crop_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """A BGR uint8 crop as the card's target tensor: (C, H, W) float32, ``(pixel/scale - mean)/std``."""
    pixel = spec.card.card.pixel  # type: ignore[union-attr]
    image = crop_bgr[:, :, ::-1] if pixel.color == "RGB" else crop_bgr
    values = (image.astype(np.float32) / pixel.scale - np.asarray(pixel.mean, np.float32)) / np.asarray(
        pixel.std, np.float32)
    return np.ascontiguousarray(values.transpose(2, 0, 1), np.float32)


def identity_vector(spec: ModelSpec, seed: int = IDENTITY_SEED) -> tuple[np.ndarray, str]:
    """The fixed identity input (declared shape, dynamic dims → 1) and the sentence records carry."""
    card = spec.card.card  # type: ignore[union-attr]
    shape = tuple(1 if d < 0 else d for d in card.source_io.shape)
    vector = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    normed = card.identity.kind == "embedding" and card.identity.post_norm == "l2"
    if normed:
        vector /= np.linalg.norm(vector.reshape(vector.shape[0], -1), axis=1).reshape(
            (-1,) + (1,) * (vector.ndim - 1))
    how = "standard normal, L2-normalised (identity.post_norm = l2)" if normed else "standard normal"
    if card.source_io.name not in {info.name for info in spec.card.inputs}:  # type: ignore[union-attr]
        return vector, (f"the graph has no identity input {card.source_io.name!r}: its identity is part of "
                        "the graph, which is timed as it is")
    whole = "" if card.separable else (
        "; the card's identity and frame stages are not separable: the graph is timed as a whole")
    return vector, (f"identity input {card.source_io.name!r} {list(shape)}: one fixed vector, seed {seed}, "
                    f"{how}, not an encoder's embedding of a face{whole}")


def graph_input_names(spec: ModelSpec) -> tuple[str, ...]:
    """The swapper graph's inputs in order; only the card's target and identity inputs are fed.

    Raises:
        BadInputError: a graph input the card does not declare (nothing could feed it honestly).
    """
    loaded = spec.card
    assert loaded is not None
    known = (loaded.card.target_io.name, loaded.card.source_io.name)
    names = tuple(info.name for info in loaded.inputs)
    extra = [n for n in names if n not in known]
    if extra:
        raise BadInputError(f"card {loaded.card.path}: graph input(s) {', '.join(extra)} are neither "
                            "`io.target` nor `io.source`; the device sweep feeds only those two")
    return names


def card_inputs(spec: ModelSpec, crops_bgr: Sequence[np.ndarray],
                identity: np.ndarray) -> list[tuple[Any, ...]]:
    """One positional input tuple per crop, in the graph's input order."""
    target = spec.card.card.target_io.name  # type: ignore[union-attr]
    names = graph_input_names(spec)
    return [tuple(crop_tensor(c, spec) if n == target else identity for n in names) for c in crops_bgr]


def card_crops_per_photo(spec: ModelSpec, images_bgr: Sequence[np.ndarray], *, limit: int | None = None,
                         mirror: bool = True, detector: str = "dlib") -> list[list[np.ndarray]]:
    """Each photo's faces aligned onto the card's template at the card's size (BGR uint8)."""
    from mfsbench.cards.templates import template_points
    from mfsbench.faces.align import align_to_points
    from mfsbench.faces.detectors import get_detector

    card = spec.card.card  # type: ignore[union-attr]
    points = template_points(card.template, card.size)
    found = get_detector(detector)
    per_photo = []
    for image in images_bgr:
        crops = []
        for face in found.detect(image)[:limit]:
            crop, _ = align_to_points(image, face.landmarks5, points, card.size, fit=card.fit,
                                      border=card.border)
            crops += [crop, np.ascontiguousarray(crop[:, ::-1])] if mirror else [crop]
        per_photo.append(crops)
    return per_photo


def ort_references(path: Path, names: Sequence[str],
                   samples: Sequence[Sequence[Any]]) -> list[list[np.ndarray]]:
    """ONNX Runtime fp32 outputs of the card's original file (the reference of every card cell).

    Basic graph optimisations only (constant folding and node eliminations, which are exact) and one
    thread, so the reference does not depend on the fused kernels a timed cell may pick.
    """
    from mfsbench.optional import require

    ort = require("onnxruntime", "onnxruntime", "the parity reference of a model card")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # an unread initializer (inswapper's emap) is expected, not a warning
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    refs = []
    for sample in samples:
        feed = {n: np.asarray(v, np.float32)[None] if np.ndim(v) == 3 else np.asarray(v, np.float32)
                for n, v in zip(names, sample, strict=True)}
        refs.append([np.asarray(o, np.float32) for o in session.run(None, feed)])
    return refs


def frame_macs(spec: ModelSpec) -> int:
    """The card counter's MACs of the frame graph (the swapper file, which is the graph that runs)."""
    from mfsbench.cards.count import count_stages

    assert spec.card is not None
    return int(count_stages(spec.card)["frame"][0].macs)


def weights_described(spec: ModelSpec) -> str:
    """``sha256 …, card PATH`` (verified against the card's ``files.swapper.sha256``)."""
    loaded = spec.card
    assert loaded is not None
    return f"sha256 {loaded.sha256['swapper']}, card {loaded.card.path}"


def require_sha256(spec: ModelSpec) -> None:
    """Device records name the weights by a digest the card pins: a card without one is refused.

    Raises:
        BadInputError: the card has no ``files.swapper.sha256``.
    """
    loaded = spec.card
    assert loaded is not None
    if not loaded.verified.get("swapper"):
        raise BadInputError(f"{loaded.card.path}: field `files.swapper.sha256` is missing; device records "
                            "name the weights they timed by a verified sha256: add it (sha256sum FILE)")


def phone_file(spec: ModelSpec, tool: str) -> tuple[Path, str, dict[str, Any]]:
    """``(path, format, details)`` of the file a phone runs for a card: its own ONNX file under
    ``onnxruntime_perf_test`` (``tool == "ort"``), else its fp32 ``.tflite`` converted by onnx2tf into
    the per-user cache (:func:`mfsbench.export.card.card_artifact`) for a TFLite ``benchmark_model``.

    Raises:
        MissingDependencyError: a TFLite tool without the ``cards-tflite`` extra (names it).
    """
    from mfsbench.export.card import card_artifact

    loaded = spec.card
    assert loaded is not None
    if tool == "ort":
        return loaded.swapper_path, "onnx", {"source": "the card's own ONNX file, pushed as it is"}
    names = graph_input_names(spec)
    static = loaded.static_inputs()
    artifact = card_artifact(loaded.swapper_path, loaded.graph_sha256, "tflite", "fp32",
                             input_names=names, output_names=tuple(o.name for o in loaded.outputs),
                             input_shapes={name: static[name] for name in names})
    return artifact.path, "tflite", dict(artifact.details)
