"""Which official checkpoints a swap model needs, and loading them from ``--checkpoint`` flags.

A flag is ``PATH`` or ``FORMAT=PATH``. Without a format, the file is matched to the model's needs by
its official file name, then by its suffix (``.tar`` → SimSwap's ArcFace, ``.pth`` → SimSwap's
generator), then — for the two ``.pdparams`` of MobileFaceSwap, which share a suffix — by a key only
the student's file has. Every needed file must be given: a half-loaded network would swap with
random weights while looking real.

A ``.safetensors`` file stands in for any of them: the student ``mfsbench distill`` writes (its
metadata names the zoo student, which must be the model being loaded) or a file ``mfsbench convert``
wrote (its metadata names the official format). Without metadata, its tensor names say which part
it fills. The zoo's students (the MobileFaceSwap ablations and the tiny test student) load the
same two roles as the released model, each checked against their own architecture.
"""

from __future__ import annotations

from pathlib import Path

from mfsbench.cards.weights import weights_flags
from mfsbench.checkpoints.formats import (
    FORMATS,
    SAFETENSORS_SUFFIX,
    LoadedCheckpoint,
    _target,
    load_official,
    load_safetensors,
    read_official,
    read_safetensors_header,
)
from mfsbench.errors import BadInputError
from mfsbench.models.base import SwapNet
from mfsbench.registry import ModelSpec

#: Official files per family, as (format, role) in the order the official scripts load them.
NEEDED: dict[str, tuple[str, ...]] = {
    "mobilefaceswap": ("mobilefaceswap_pdparams", "arcface_pdparams"),
    "simswap": ("simswap_G", "arcface_tar"),
    "mobilefaceswap-ablation": ("mobilefaceswap_pdparams", "arcface_pdparams"),
}

#: Zoo models outside those families that are MobileFaceSwap students all the same (what distill trains).
NEEDED_BY_NAME: dict[str, tuple[str, ...]] = {
    "test_mobilefaceswap": ("mobilefaceswap_pdparams", "arcface_pdparams"),
}


def needed_formats(spec: ModelSpec) -> tuple[str, ...] | None:
    """The official formats ``spec`` loads, in load order, or None for a model without any."""
    return NEEDED_BY_NAME.get(spec.architecture, NEEDED.get(spec.family))


def _guess_safetensors(path: Path, needed: tuple[str, ...], model: SwapNet) -> str:
    """Which role a ``.safetensors`` file fills: from its metadata, else from its tensor names."""
    keys, metadata = read_safetensors_header(path)
    if metadata.get("format") in FORMATS:
        return metadata["format"]
    if "student" in metadata and "mobilefaceswap_pdparams" in needed:
        return "mobilefaceswap_pdparams"
    names = set(keys)
    overlap = {f: len(names & set(_target(model, FORMATS[f]).state_dict())) for f in needed}
    best = max(needed, key=lambda f: overlap[f])
    if overlap[best] == 0:
        raise BadInputError(f"none of the tensors in {path} belong to the model; "
                            f"pass the weights of one of {', '.join(needed)}")
    return best


def _guess_format(path: Path, needed: tuple[str, ...], model: SwapNet) -> str:
    if path.suffix == SAFETENSORS_SUFFIX:
        return _guess_safetensors(path, needed, model)
    for name in needed:
        if path.name == FORMATS[name].filename:
            return name
    by_suffix = {".tar": "arcface_tar", ".pth": "simswap_G"}
    if by_suffix.get(path.suffix) in needed:
        return by_suffix[path.suffix]
    if path.suffix == ".pdparams" and "mobilefaceswap_pdparams" in needed:
        keys = read_official(path, "mobilefaceswap_pdparams")
        return "mobilefaceswap_pdparams" if "predictor.first.weight" in keys else "arcface_pdparams"
    raise BadInputError(
        f"cannot tell which checkpoint {path} is; "
        f"pass it as FORMAT=PATH with FORMAT one of {', '.join(needed)}"
    )


def load_checkpoints(spec: ModelSpec, model: SwapNet, flags: list[str]) -> list[LoadedCheckpoint]:
    """Load every official file (or its ``.safetensors`` form) the model needs; [] means random weights.

    A weights card's spec loads its own files (:func:`weights_flags`).

    Raises:
        BadInputError: a model without official checkpoints, a missing or unknown file, a format
            given twice or not needed, or keys that do not match.
    """
    flags = weights_flags(spec, flags)
    if not flags:
        return []
    needed = needed_formats(spec)
    if needed is None:
        raise BadInputError(f"{spec.name} has no official checkpoints to load; drop --checkpoint")
    chosen: dict[str, Path] = {}
    for flag in flags:
        name, sep, rest = flag.partition("=")
        path = Path(rest if sep and name in FORMATS else flag)
        if not path.is_file():
            raise BadInputError(f"checkpoint not found: {path}; check the path")
        fmt = name if sep and name in FORMATS else _guess_format(path, needed, model)
        if fmt not in needed:
            raise BadInputError(f"{spec.name} does not use a {fmt} checkpoint; it needs {', '.join(needed)}")
        if fmt in chosen:
            raise BadInputError(f"two {fmt} checkpoints given ({chosen[fmt]} and {path}); pass one")
        chosen[fmt] = path
    missing = [FORMATS[f].filename for f in needed if f not in chosen]
    if missing:
        raise BadInputError(f"{spec.name} also needs {', '.join(missing)}: pass it with --checkpoint")
    return [
        load_safetensors(model, chosen[f], f, model_name=spec.architecture)
        if chosen[f].suffix == SAFETENSORS_SUFFIX
        else load_official(model, chosen[f], f)
        for f in needed
    ]
