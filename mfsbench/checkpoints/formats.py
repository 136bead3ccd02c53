"""One loader per official checkpoint format, each mapping onto an mfsbench module by key, strictly.

| format | official file | loads into |
|---|---|---|
| ``mobilefaceswap_pdparams`` | ``MobileFaceSwap_224.pdparams`` | ``MobileFaceSwap.swap`` |
| ``arcface_pdparams`` | ``arcface.pdparams`` | :class:`ArcFaceIRSE` (``.id_net``) |
| ``simswap_G`` | ``latest_net_G.pth`` | ``SimSwap224.netG`` |
| ``arcface_tar`` | ``arcface_checkpoint.tar`` (2021 dict / 2023 module) | :class:`ArcFaceIRSE` |
| ``hopenet`` | ``hopenet_robust_alpha1.pkl`` (or FSGAN's wrapped ``.pth``) | :class:`Hopenet` |
| ``cosface`` | ``ACC99.28.pth`` | :class:`SphereFace20` |

Every reader goes through :mod:`mfsbench.checkpoints.safe_pickle` (nothing in a file executes) and
every load through :func:`~mfsbench.checkpoints.mapping.load_strict` (a missing, unexpected or
mis-shaped key is one error listing them). Each load returns a :class:`LoadedCheckpoint` (path,
sha256, format, key count) so that results can name exactly which weights produced them.
:func:`write_official` writes a module back in the official layout, which is how the tests prove
the mapping is lossless: official → ours → official gives the same bytes.

A ``.safetensors`` file (from ``mfsbench convert`` or the student ``mfsbench distill`` writes) holds the
same tensors under mfsbench's names and fills the same part: :func:`load_safetensors` reads it
without unpickling anything and sends it through the same strict load, and
:func:`write_official_state` writes such tensors back in an official layout (``.pdparams``).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.checkpoints.mapping import load_strict, paddle_to_torch
from mfsbench.checkpoints.safe_pickle import (
    WHOLE_MODEL_FOREIGN,
    find_network,
    load_raw_pickle,
    load_torch_file,
    strip_prefix,
)
from mfsbench.errors import BadInputError

#: Paddle's legacy save may add this name table; the official files have none, and it holds no weights.
PADDLE_NAME_TABLE = "StructuredToParameterName@@"

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What was loaded, for records: the file, its sha256, the format and how many tensors it held,
    and whether it is a known official file (:func:`mfsbench.checkpoints.known.provenance`)."""

    path: str
    sha256: str
    format: str
    keys: int
    provenance: str | None = None

    def __post_init__(self) -> None:
        if self.provenance is None:
            from mfsbench.checkpoints.known import provenance

            object.__setattr__(self, "provenance", provenance(Path(self.path).name, self.sha256))


@dataclass(frozen=True)
class OfficialFormat:
    """An official file layout: how to read it into torch names, and which module it fills.

    ``wrapper_attr`` lets callers pass the whole network (``MobileFaceSwap``, ``SimSwap224``) and
    have the loader pick the part the file belongs to (``.swap``, ``.id_net``, ``.netG``).
    """

    name: str
    filename: str
    target: str
    part_class: str
    read: Callable[[Path], StateDict]
    build: Callable[[], nn.Module]
    wrapper_attr: str | None = None


# --------------------------------------------------------------------------------------- readers


def _read_pdparams(path: Path) -> StateDict:
    """Paddle ``.pdparams``: a pickled OrderedDict of float32 numpy arrays under Paddle names."""
    raw = load_raw_pickle(path)
    if not isinstance(raw, Mapping):
        raise BadInputError(f"{path} holds {type(raw).__name__}, not a Paddle parameter dict; check --format")
    arrays = {k: v for k, v in raw.items() if k != PADDLE_NAME_TABLE}
    wrong = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if wrong:
        raise BadInputError(f"{path}: {', '.join(map(str, wrong[:5]))} are not arrays; check --format")
    return paddle_to_torch(arrays)


def _tensor_dict(obj: Any, path: Path) -> StateDict:
    """A plain state dict, or FSGAN's ``{'arch': ..., 'state_dict': {...}}`` wrapper around one."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise BadInputError(f"{path} holds {type(obj).__name__}, not a state dict; check --format")
    wrong = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if wrong:
        raise BadInputError(f"{path}: {', '.join(wrong[:5])} are not tensors; check --format")
    return strip_prefix({str(k): v for k, v in obj.items()}, "module.")


def _read_state_dict(path: Path) -> StateDict:
    return _tensor_dict(load_torch_file(path), path)


def _read_arcface_tar(path: Path) -> StateDict:
    """SimSwap's ArcFace: a whole pickled model, read with inert stand-ins for its classes."""
    return find_network(load_torch_file(path, WHOLE_MODEL_FOREIGN), str(path))


# -------------------------------------------------------------------------------------- builders


def _build_swap() -> nn.Module:
    from mfsbench.models.mobilefaceswap import InjectionNetwork, StudentConfig

    return InjectionNetwork(StudentConfig())


def _build_arcface() -> nn.Module:
    from mfsbench.models.arcface import ArcFaceIRSE

    return ArcFaceIRSE()


def _build_simswap_g() -> nn.Module:
    from baselines.simswap import SimSwapGenerator

    return SimSwapGenerator()


def _build_hopenet() -> nn.Module:
    from mfsbench.evalnets.hopenet import Hopenet

    return Hopenet()


def _build_cosface() -> nn.Module:
    from mfsbench.evalnets.cosface import SphereFace20

    return SphereFace20()


def _build_fid_inception() -> nn.Module:
    from mfsbench.evalnets.inception import FIDInceptionV3

    return FIDInceptionV3()


FORMATS: dict[str, OfficialFormat] = {
    f.name: f
    for f in (
        OfficialFormat(
            "mobilefaceswap_pdparams",
            "MobileFaceSwap_224.pdparams",
            "MobileFaceSwap.swap",
            "InjectionNetwork",
            _read_pdparams,
            _build_swap,
            "swap",
        ),
        OfficialFormat(
            "arcface_pdparams",
            "arcface.pdparams",
            "MobileFaceSwap.id_net",
            "ArcFaceIRSE",
            _read_pdparams,
            _build_arcface,
            "id_net",
        ),
        OfficialFormat(
            "simswap_G",
            "latest_net_G.pth",
            "SimSwap224.netG",
            "SimSwapGenerator",
            _read_state_dict,
            _build_simswap_g,
            "netG",
        ),
        OfficialFormat(
            "arcface_tar",
            "arcface_checkpoint.tar",
            "SimSwap224.id_net",
            "ArcFaceIRSE",
            _read_arcface_tar,
            _build_arcface,
            "id_net",
        ),
        OfficialFormat(
            "hopenet", "hopenet_robust_alpha1.pkl", "Hopenet", "Hopenet", _read_state_dict, _build_hopenet
        ),
        OfficialFormat(
            "cosface", "ACC99.28.pth", "SphereFace20", "SphereFace20", _read_state_dict, _build_cosface
        ),
        OfficialFormat(
            "fid_inception",
            "pt_inception-2015-12-05-6726825d.pth",
            "FIDInceptionV3",
            "FIDInceptionV3",
            _read_state_dict,
            _build_fid_inception,
        ),
    )
}


def get_format(name: str) -> OfficialFormat:
    if name not in FORMATS:
        raise BadInputError(f"unknown checkpoint format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


# --------------------------------------------------------------------------------------- loading


def read_official(path: str | os.PathLike[str], format: str) -> StateDict:
    """The tensors of an official file under mfsbench's (torch) names, not yet checked against a module."""
    return get_format(format).read(Path(path))


def _target(module: nn.Module, fmt: OfficialFormat) -> nn.Module:
    """The part of ``module`` the format fills: ``module`` itself, or its ``wrapper_attr`` child.

    Matching is by class name so that no heavy model module is imported just to check a type; a
    module that is neither is passed on and :func:`load_strict` lists what does not match.
    """
    if any(cls.__name__ == fmt.part_class for cls in type(module).__mro__):
        return module
    if fmt.wrapper_attr and isinstance(getattr(module, fmt.wrapper_attr, None), nn.Module):
        return getattr(module, fmt.wrapper_attr)
    return module


def load_official(module: nn.Module, path: str | os.PathLike[str], format: str) -> LoadedCheckpoint:
    """Read ``path`` in ``format`` and copy it into ``module`` (or its matching part), strictly.

    Raises:
        BadInputError: unreadable or unsafe file, or keys that do not match (all listed).
    """
    record, _ = _load(module, Path(path), get_format(format))
    return record


def _load(module: nn.Module, path: Path, fmt: OfficialFormat) -> tuple[LoadedCheckpoint, StateDict]:
    state = fmt.read(path)
    load_strict(_target(module, fmt), state, f"{path} ({fmt.name})")
    return LoadedCheckpoint(str(path), sha256_file(path), fmt.name, len(state)), state


def convert_official(path: str | os.PathLike[str], format: str) -> tuple[LoadedCheckpoint, StateDict]:
    """Read and validate ``path`` against the format's module (built on the meta device: shapes only,
    no memory or init time), returning the record and the torch-named tensors to write elsewhere."""
    fmt = get_format(format)
    with torch.device("meta"):
        module = fmt.build()
    with warnings.catch_warnings():
        # copying into meta tensors is the intended no-op: only names and shapes are being checked
        warnings.filterwarnings("ignore", message=".*non-meta parameter in the checkpoint to a meta")
        return _load(module, Path(path), fmt)


def load_mobilefaceswap_pdparams(module: nn.Module, path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """``MobileFaceSwap_224.pdparams`` → ``MobileFaceSwap.swap`` (pass the model or its ``swap``)."""
    return load_official(module, path, "mobilefaceswap_pdparams")


def load_arcface_pdparams(module: nn.Module, path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """MobileFaceSwap's ``arcface.pdparams`` → :class:`ArcFaceIRSE` (or any model's ``id_net``)."""
    return load_official(module, path, "arcface_pdparams")


def load_simswap_generator(module: nn.Module, path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """SimSwap's ``latest_net_G.pth`` → ``SimSwap224.netG``."""
    return load_official(module, path, "simswap_G")


def load_arcface_tar(module: nn.Module, path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """SimSwap's ``arcface_checkpoint.tar`` (2021 training dict or 2023 bare module) → ArcFaceIRSE."""
    return load_official(module, path, "arcface_tar")


def load_hopenet(module: nn.Module, path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """``hopenet_robust_alpha1.pkl`` (or FSGAN's ``.pth`` wrapper) → :class:`Hopenet`."""
    return load_official(module, path, "hopenet")


def load_cosface(module: nn.Module, path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """CosFace ``ACC99.28.pth`` → :class:`SphereFace20`."""
    return load_official(module, path, "cosface")


# --------------------------------------------------------------------------------------- writing


def torch_to_paddle(module: nn.Module, state: Mapping[str, torch.Tensor] | None = None
                    ) -> OrderedDict[str, np.ndarray]:
    """Inverse of :func:`~mfsbench.checkpoints.mapping.paddle_to_torch` for one module.

    BN statistics get Paddle's ``_mean``/``_variance``, PReLU weights ``_weight`` (found by module
    type, since a torch ``weight`` name alone does not say it is a PReLU), 2-D arrays are transposed
    back to Paddle's ``[in, out]`` and ``num_batches_tracked`` (which Paddle lacks) is dropped.
    ``state`` (default: the module's own) supplies the values, so a module built on the meta device
    can give the structure of tensors read from a file.
    """
    prelus = {name for name, child in module.named_modules() if isinstance(child, nn.PReLU)}
    renames = {"running_mean": "_mean", "running_var": "_variance"}
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    values = module.state_dict() if state is None else state
    for key in module.state_dict():  # the module's order is the official files' order
        owner, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        tensor = values[key]
        leaf = "_weight" if leaf == "weight" and owner in prelus else renames.get(leaf, leaf)
        array = tensor.detach().cpu().numpy().astype(np.float32)
        array = array.T if array.ndim == 2 else array
        out[f"{owner}.{leaf}" if owner else leaf] = np.ascontiguousarray(array)
    return out


def write_official(model_part: nn.Module, path: str | os.PathLike[str], format: str) -> Path:
    """Write ``model_part`` in the official layout of ``format``.

    ``.pdparams``: protocol-4 pickle of an OrderedDict of float32 arrays, Paddle names, Linear
    weights transposed. ``simswap_G``/``cosface``: a torch ``state_dict`` (zip). ``hopenet``: the
    2017 legacy (non-zip) serialisation without ``num_batches_tracked``, like the released ``.pkl``.
    ``arcface_tar`` is not writable: it is a pickle of foamliu's classes, which mfsbench never has.
    """
    fmt = get_format(format)
    part = _target(model_part, fmt)
    out = Path(path)
    if fmt.read is _read_pdparams:
        with out.open("wb") as handle:
            pickle.dump(torch_to_paddle(part), handle, protocol=4)
    elif fmt.name == "hopenet":
        state = OrderedDict(
            (k, v.detach().clone())
            for k, v in part.state_dict().items()
            if not k.endswith("num_batches_tracked")
        )
        torch.save(state, out, _use_new_zipfile_serialization=False)
    elif fmt.name in ("simswap_G", "cosface", "fid_inception"):
        torch.save(OrderedDict((k, v.detach().clone()) for k, v in part.state_dict().items()), out)
    else:
        raise BadInputError(
            f"cannot write {fmt.name}: it pickles foamliu's model classes, which mfsbench does not have; "
            "write arcface_pdparams (same tensors) or convert to .safetensors instead"
        )
    return out


# ----------------------------------------------------------------------------------- safetensors

SAFETENSORS_SUFFIX = ".safetensors"


def _safetensors_reason(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1]


def read_safetensors_header(path: str | os.PathLike[str]) -> tuple[list[str], dict[str, str]]:
    """The tensor names and metadata of a ``.safetensors`` file, reading its header only.

    Raises:
        BadInputError: the file is not a readable safetensors file (truncated, corrupt header).
        MissingDependencyError: the ``safetensors`` package is absent (the ``convert`` extra).
    """
    shapes, metadata = read_safetensors_shapes(path)
    return list(shapes), metadata


def read_safetensors_shapes(
    path: str | os.PathLike[str],
) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Each tensor's shape and the metadata of a ``.safetensors`` file, from its header (no tensor
    is read).

    Raises:
        BadInputError: the file is not a readable safetensors file (truncated, corrupt header).
        MissingDependencyError: the ``safetensors`` package is absent (the ``convert`` extra).
    """
    from mfsbench.optional import require

    st = require("safetensors", "safetensors", f"reading {path}")
    try:
        with st.safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
            return shapes, dict(handle.metadata() or {})
    except Exception as exc:  # the Rust reader raises its own SafetensorError: one line, not a traceback
        raise BadInputError(f"{path} is not a readable .safetensors file ({_safetensors_reason(exc)}); "
                            "get an intact copy or write it again") from None


def read_safetensors(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Every tensor of a ``.safetensors`` file and its metadata; nothing in the file executes.

    Raises:
        BadInputError: the file is unreadable or holds no tensors.
    """
    from mfsbench.optional import require

    st = require("safetensors", "safetensors", f"reading {path}")
    try:
        with st.safe_open(str(path), framework="pt") as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not iterable)
            metadata = dict(handle.metadata() or {})
    except Exception as exc:  # the Rust reader raises its own SafetensorError: one line, not a traceback
        raise BadInputError(f"{path} is not a readable .safetensors file ({_safetensors_reason(exc)}); "
                            "get an intact copy or write it again") from None
    if not state:
        raise BadInputError(f"{path} holds no tensors; pass the weights file itself")
    return state, metadata


def load_safetensors(module: nn.Module, path: str | os.PathLike[str], format: str,
                     *, model_name: str | None = None) -> LoadedCheckpoint:
    """Load a ``.safetensors`` file into the part of ``module`` that ``format``'s official file fills.

    The file must hold that part's tensors under mfsbench's names (what ``mfsbench convert`` and
    ``mfsbench distill`` write); the load is as strict as the official one (names, shapes, finite
    values). A student written by ``mfsbench distill`` names its zoo architecture in its metadata;
    given ``model_name``, another architecture is refused even when the shapes happen to agree,
    since an ablation can share shapes with the student it differs from in its forward pass.

    Raises:
        BadInputError: unreadable file, a student of another architecture, or keys that do not match.
    """
    fmt = get_format(format)
    source = Path(path)
    state, metadata = read_safetensors(source)
    student = metadata.get("student")
    if model_name is not None and student is not None and student != model_name:
        raise BadInputError(f"{source} holds a distilled {student} student, not {model_name}; "
                            f"load it as model {student}")
    if metadata.get("format") not in (None, fmt.name):
        raise BadInputError(f"{source} was converted from a {metadata['format']} file, not {fmt.name}; "
                            f"pass the {fmt.filename} conversion instead")
    load_strict(_target(module, fmt), state, f"{source} ({fmt.name} tensors)")
    return LoadedCheckpoint(str(source), sha256_file(source), f"safetensors:{fmt.name}", len(state))


def write_official_state(state: Mapping[str, torch.Tensor], structure: nn.Module,
                         path: str | os.PathLike[str], format: str) -> Path:
    """Write tensors under mfsbench's names in ``format``'s official layout (``.pdparams`` for now).

    ``structure`` is the module the tensors belong to (it may live on the meta device): the tensors
    are first checked against it strictly (names, shapes, finite values), and it tells which
    weights are PReLU slopes, which Paddle names differently. Written to a temporary name and
    renamed, so a failed write leaves nothing behind.

    Raises:
        BadInputError: a format whose official file is not a ``.pdparams``, or tensors that do not
            match ``structure``.
    """
    fmt = get_format(format)
    if fmt.read is not _read_pdparams:
        raise BadInputError(f"writing {fmt.name} from .safetensors is not supported; "
                            "choose mobilefaceswap_pdparams or arcface_pdparams")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-meta parameter in the checkpoint to a meta")
        load_strict(structure, state, f"tensors for {fmt.name}")
    out = Path(path)
    temp = out.with_name(f".{out.name}.tmp")
    try:
        with temp.open("wb") as handle:
            pickle.dump(torch_to_paddle(structure, state), handle, protocol=4)
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return out


__all__ = [
    "FORMATS",
    "SAFETENSORS_SUFFIX",
    "LoadedCheckpoint",
    "OfficialFormat",
    "convert_official",
    "get_format",
    "load_arcface_pdparams",
    "load_arcface_tar",
    "load_cosface",
    "load_hopenet",
    "load_mobilefaceswap_pdparams",
    "load_official",
    "load_safetensors",
    "load_simswap_generator",
    "read_official",
    "read_safetensors",
    "read_safetensors_header",
    "torch_to_paddle",
    "write_official",
    "write_official_state",
]
