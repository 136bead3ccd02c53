"""Draft a card from an ONNX graph: ``mfsbench card init MODEL.onnx``.

The graph's inputs, outputs and initializers say which community family it most likely is (rules
from ``specs/plugin_models.md`` §1: inswapper_128 is the only one with a 128 px target, a 512-wide
source and a trailing 512×512 ``emap``; SimSwap's 256 export takes a 512-wide source and ImageNet
normalisation; the zoo student's own frame-stage export, one target input and two outputs, the
swapped crop and its one-channel fusion mask at the crop's size, is drafted with the student's
pipeline: RGB in [0, 1], the 6-DoF affine fit with a zero border and the mask output pasted as the zoo
pastes it; everything else is drafted as ``custom`` with neutral values). What the graph cannot
show (the licence, the normalisation of an unknown family) is written with a ``# CHECK`` comment, and
an unknown licence is drafted as non-commercial: the safe side until the user says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mfsbench.cards.graph import TensorInfo, signature
from mfsbench.cards.load import file_digest
from mfsbench.cards.schema import CardError


@dataclass(frozen=True)
class Family:
    """What a recognised family's card says beyond the graph's own signature."""

    name: str
    template: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    denorm: bool
    projection: str  # TOML inline table
    post_norm: str
    license_id: str
    license_source: str
    note: str


FAMILIES = {
    "inswapper": Family("inswapper", "arcface_128", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False,
                        '{ kind = "initializer", index = -1 }', "l2",
                        "LicenseRef-InsightFace-NonCommercial",
                        "https://github.com/deepinsight/insightface#license",
                        "2 inputs, 128 px target, 512-wide source, last initializer 512x512 (emap)"),
    "simswap": Family("simswap", "arcface_112_v1", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False,
                      '{ kind = "none" }  # CHECK: FaceFusion feeds crossface_simswap.onnx output here',
                      "l2", "CC-BY-NC-4.0", "https://github.com/neuralchen/SimSwap#license",
                      "256 or 512 px target and a 512-wide source, no emap"),
    "mobilefaceswap": Family("mobilefaceswap", "arcface_112_v2", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False,
                             '{ kind = "none" }', "l2", "LicenseRef-Unknown", "",
                             "the zoo student's frame stage: one target input (identity injected as "
                             "weights), outputs the swapped crop and its 1-channel fusion mask"),
}

#: The student's frame stage has no identity input; the card still names the identity (``io.source``)
#: the runner would make, and ``card check`` skips it because the graph has a single input.
_INJECTED_SOURCE = TensorInfo("source", (1, 512), "float32")


def _student_export(inputs: list[TensorInfo], outputs: list[TensorInfo]) -> bool:
    """The zoo student's frame stage: one N×3×S×S input, outputs N×3×S×S and N×1×S×S."""
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 2:
        return False
    size = inputs[0].shape[-1]
    return (size > 0 and inputs[0].shape[1:] == (3, size, size) and outputs[0].shape[1:] == (3, size, size)
            and outputs[1].shape[1:] == (1, size, size))


def _recognise(target: TensorInfo, source: TensorInfo, last_init: tuple[int, ...] | None) -> Family | None:
    size = target.shape[-1]
    if size == 128 and source.shape[-1] == 512 and last_init == (512, 512):
        return FAMILIES["inswapper"]
    if size in (256, 512) and source.shape[-1] == 512 and last_init != (512, 512):
        return FAMILIES["simswap"]
    return None


def _pick_io(inputs: list[TensorInfo], graph: Path) -> tuple[TensorInfo, TensorInfo]:
    images = [i for i in inputs if len(i.shape) == 4]
    others = [i for i in inputs if i not in images]
    if len(inputs) != 2 or len(images) < 1:
        raise CardError(f"{graph}: a swapper graph takes a target crop (N×3×S×S) and an identity input; "
                        f"this one takes {[(i.name, list(i.shape)) for i in inputs]}; write the card by hand")
    target = next((i for i in images if i.name == "target"), images[0])
    source = others[0] if others else next(i for i in images if i is not target)
    return target, source


def _list(values: tuple[float, ...] | tuple[int, ...]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def draft_card(graph: Path, out: Path) -> str:
    """The TOML text of a card for ``graph``, with its path written relative to ``out``'s folder when
    the graph lies inside it (absolute otherwise) and its sha256 filled in."""
    from mfsbench.cards.wire import WireError, load_structure

    try:
        model = load_structure(graph)
    except (WireError, OSError) as exc:
        raise CardError(f"{graph} is not an ONNX model ({exc}); pass a .onnx file") from None
    inputs, outputs = signature(model)
    student = _student_export(inputs, outputs)
    if student:
        target, source, family = inputs[0], _INJECTED_SOURCE, FAMILIES["mobilefaceswap"]
    else:
        target, source = _pick_io(inputs, graph)
        initializers = list(model.graph.initializer)
        last = tuple(initializers[-1].dims) if initializers else None
        family = _recognise(target, source, last)
    size = target.shape[-1] if target.shape[-1] > 0 else 256
    folder = out.parent.resolve()
    resolved = graph.resolve()
    path = os.path.relpath(resolved, folder) if resolved.is_relative_to(folder) else str(resolved)
    card_id = "".join(c if c.isalnum() or c in "_-." else "_" for c in graph.stem)
    check = "" if family else "  # CHECK"
    mean, std = (family.mean, family.std) if family else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    out_shape = outputs[0].shape
    lines = [
        f"# drafted by `mfsbench card init {graph.name}`: "
        + (f"recognised as {family.name} ({family.note})" if family else "family not recognised")
        + "; review every value marked CHECK",
        "schema = 1",
        f'id = "{card_id}"',
        f'family = "{family.name if family else "custom"}"{check}',
        'format = "onnx"',
        "",
        "[license]  # CHECK: the weights' licence; commercial = false needs --accept-license",
        f'id = "{family.license_id if family else "LicenseRef-Unknown"}"',
        "commercial = false",
    ]
    if family and family.license_source:
        lines.append(f'source = "{family.license_source}"')
    lines += [
        "",
        "[files.swapper]",
        f'path = "{path}"',
        f'sha256 = "{file_digest(graph)}"',
        "",
        "[io]",
        f'target = {{ name = "{target.name}", shape = {_list(target.shape)}, dtype = "{target.dtype}" }}',
        f'source = {{ name = "{source.name}", shape = {_list(source.shape)}, dtype = "{source.dtype}" }}'
        + ("  # the identity is injected into the graph's weights: not a graph input" if student else ""),
        f"output = {{ index = 0, shape = {_list(out_shape)}, range = [0.0, 1.0], color = \"RGB\", "
        f"denorm = {'true' if family and family.denorm else 'false'} }}{check}",
        "",
        "[target]",
        f'template = "{family.template if family else "arcface_128"}"{check}',
        f"size = {size}",
        f'pixel = {{ color = "RGB", scale = 255.0, mean = {_list(mean)}, std = {_list(std)} }}{check}',
        *(['warp = { fit = "affine", border = "zero" }  # the zoo student\'s 6-DoF least-squares fit']
          if student else []),
        "",
        "[identity]",
        f'kind = "{"embedding" if len(source.shape) == 2 else "image"}"',
        "input_norm = \"l2\"",
        "projection = " + (family.projection if family else '{ kind = "none" }'),
        f'post_norm = "{family.post_norm if family else "l2"}"',
        "",
        "[run]",
        "separable = true",
        (f'paste = {{ mask = ["output"], output = "{outputs[1].name}" }}  # its fusion mask, blended as '
         "the zoo blends it" if student else "paste = { mask = [\"box\"], blur = 0.3 }"),
        "",
    ]
    return "\n".join(lines)
