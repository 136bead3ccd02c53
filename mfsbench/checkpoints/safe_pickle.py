"""Reading pickled checkpoints without running any code they contain.

Every official checkpoint in the zoo is a pickle: Paddle's ``.pdparams`` (a raw pickle of numpy
arrays), SimSwap/Hopenet/CosFace ``.pth``/``.pkl`` (torch zip or legacy files) and SimSwap's
``arcface_checkpoint.tar``, a pickle of a *whole model object*. Unpickling calls whatever global the
file names, so a downloaded checkpoint is code until proven otherwise.

Two rules keep it data:

* Only an explicit allowlist of real globals is ever resolved: numpy's array/dtype reconstruction,
  ``collections.OrderedDict``/``defaultdict``, a few inert builtins and torch's tensor-rebuild
  functions. Nothing is looked up by ``getattr`` on a name taken from the file. Anything else is a
  :class:`~mfsbench.errors.BadInputError` naming the file and the refused global.
* Whole-model pickles name foreign classes (``models.ResNet``, ``torch.nn.modules.conv.Conv2d``,
  ``DataParallel``, optimizers). Under the module prefixes a caller allows, such a global becomes an
  :class:`InertObject` subclass that only *records* what the pickle passes to it (constructor
  arguments, ``__setstate__`` state, appended items). No foreign module is imported, no foreign
  ``__init__``/``__setstate__`` runs. :func:`module_tensors` then walks the recorded
  ``_parameters``/``_buffers``/``_modules`` dicts to recover a state dict.

Plain state dicts go through ``torch.load(weights_only=True)`` first, torch's own restricted
unpickler; :func:`load_torch_file` falls back to these rules only for what that refuses, so the
refusal message is one line naming the global instead of torch's multi-paragraph advice.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import os
import pickle
import types
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from mfsbench.errors import BadInputError

#: Module prefixes whose globals become inert stand-ins in a whole-model pickle (SimSwap's ArcFace):
#: foamliu's ``models``/``models.arcface_models`` and ``optimizer`` modules, torch's module and
#: optimizer classes. Never resolved, never imported.
WHOLE_MODEL_FOREIGN = ("models", "optimizer", "torch.nn", "torch.optim")


def _numpy_core() -> types.ModuleType:
    """numpy 2 keeps the reconstruction helpers in ``numpy._core``; numpy 1 in ``numpy.core``."""
    core = getattr(np, "_core", None)
    return core if core is not None else np.core  # pragma: no cover - numpy 1.x only


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The complete set of real objects a checkpoint may name: data constructors only.

    Each entry is resolved here, from our own imports, so a file can never steer an attribute lookup.
    Both numpy module paths are listed because files written with numpy 1.x (all official ones)
    name ``numpy.core.*`` and files written today name ``numpy._core.*``.
    """
    core = _numpy_core()
    multiarray, numeric = core.multiarray, core.numeric
    allowed: dict[tuple[str, str], Any] = {
        # protocol-2 pickles (torch's default) spell bytes as _codecs.encode(str, "latin1")
        ("_codecs", "encode"): codecs.encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "bytearray"): bytearray,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("torch", "Size"): torch.Size,
        ("torch", "Tensor"): torch.Tensor,
        ("torch", "device"): torch.device,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    for name in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
    ):
        if hasattr(torch._utils, name):
            allowed[("torch._utils", name)] = getattr(torch._utils, name)
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            allowed[("torch", name)] = value
    return allowed


_ALLOWED = _allowed_globals()


class InertObject:
    """Stand-in for a foreign class in a whole-model pickle: records, never executes.

    ``global_name`` is the dotted name the pickle used (``models.ResNet``). ``args`` holds constructor
    arguments (REDUCE), ``state`` what BUILD passed (an ``nn.Module``'s ``__dict__``), ``items``
    anything appended or set by key. ``dump_patches`` is False so that torch's legacy loader, which
    compares saved class sources, only warns.
    """

    global_name = "?"
    dump_patches = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.__dict__.setdefault("items", []).append(item)

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("mapping", {})[key] = value

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


def _stand_in(module: str, name: str, cache: dict[str, type]) -> type:
    """One inert class per global name; its ``__module__`` resolves nowhere, so nothing inspects it."""
    dotted = f"{module}.{name}"
    if dotted not in cache:
        cache[dotted] = type(
            name.rsplit(".", 1)[-1],
            (InertObject,),
            {"global_name": dotted, "__module__": "<checkpoint>"},
        )
    return cache[dotted]


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Python 2 names that protocol-2 pickles (torch's default) still use: ``__builtin__.set``."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def restricted_unpickler(source: str, foreign: tuple[str, ...] = ()) -> type[pickle.Unpickler]:
    """An ``Unpickler`` class for ``source`` that resolves only allowlisted globals.

    Args:
        source: the file name, quoted in every refusal.
        foreign: module prefixes whose globals become :class:`InertObject` stand-ins (whole-model
            pickles); empty for plain state dicts, where any class at all is refused.
    """
    cache: dict[str, type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            key = _normalise(module, name)
            if key in _ALLOWED:
                return _ALLOWED[key]
            if foreign and _under(key[0], foreign):
                return _stand_in(key[0], key[1], cache)
            raise BadInputError(
                f"{source}: refused to unpickle global {key[0]}.{key[1]} (a checkpoint holds only "
                "tensors and arrays; this file would run code); re-download it from the official source"
            )

    return RestrictedUnpickler


def restricted_pickle_module(source: str, foreign: tuple[str, ...] = ()) -> types.SimpleNamespace:
    """A stand-in for the ``pickle`` module, for ``torch.load(..., pickle_module=...)``.

    torch subclasses its ``Unpickler`` (adding only storage types and persistent ids) and calls its
    ``load`` for the legacy format's header records, so every object in the file passes our gate.
    """
    unpickler = restricted_unpickler(source, foreign)

    def load(file: BinaryIO, **kwargs: Any) -> Any:
        return unpickler(file, **kwargs).load()

    return types.SimpleNamespace(__name__="mfsbench_restricted_pickle", Unpickler=unpickler, load=load)


def _unreadable(path: Path, what: str, exc: BaseException) -> BadInputError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BadInputError(f"{path} is not a readable {what} ({detail[:200]}); check the file and --format")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise BadInputError(f"checkpoint {path} not found; pass the path of the downloaded file")


def load_raw_pickle(path: str | os.PathLike[str]) -> Any:
    """A plain pickle of arrays (Paddle ``.pdparams``), under the allowlist and with no stand-ins."""
    path = Path(path)
    _check_exists(path)
    try:
        with path.open("rb") as handle:
            return restricted_unpickler(str(path))(handle).load()
    except BadInputError:
        raise
    except Exception as exc:  # a truncated or foreign file fails inside pickle in many ways
        raise _unreadable(path, "pickle", exc) from None


def load_torch_file(path: str | os.PathLike[str], foreign: tuple[str, ...] = ()) -> Any:
    """Load a torch zip or legacy file onto the CPU, never executing code from it.

    Without ``foreign`` this first tries ``torch.load(weights_only=True)``; what torch refuses is
    re-read under our allowlist, which either accepts it (same rules, e.g. numpy scalars) or names
    the refused global in one line. With ``foreign`` (whole-model pickles) torch's weights-only
    loader cannot work at all, so the restricted pickle module is used directly.
    """
    path = Path(path)
    _check_exists(path)
    if not foreign:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            pass  # refused or unreadable: the restricted reader below says which, in one line
        except Exception as exc:
            raise _unreadable(path, "torch checkpoint", exc) from None
    if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true"):
        raise BadInputError(
            f"{path} is a whole-model pickle, which torch's weights-only loader cannot read and "
            "TORCH_FORCE_WEIGHTS_ONLY_LOAD forbids any other; unset it (mfsbench reads it safely)"
        )
    module = restricted_pickle_module(str(path), foreign)
    try:
        with warnings.catch_warnings():
            # the legacy format compares each pickled class's saved source with ours: stand-ins have none
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
            warnings.filterwarnings("ignore", category=torch.serialization.SourceChangeWarning)
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except BadInputError:
        raise
    except Exception as exc:
        raise _unreadable(path, "torch checkpoint", exc) from None


def _is_module(obj: Any) -> bool:
    state = getattr(obj, "state", None)
    return isinstance(obj, InertObject) and isinstance(state, Mapping) and "_modules" in state


def module_tensors(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The state dict of a pickled ``nn.Module`` stand-in: ``_parameters`` and persistent ``_buffers``.

    Keys are dotted like ``nn.Module.state_dict`` (parameters before buffers, then children in
    order); a ``DataParallel`` wrapper (a module holding nothing but a child called ``module``) is
    unwrapped so that no key starts with ``module.``.
    """
    if not _is_module(obj):
        raise BadInputError(f"{source} holds {type(obj).__name__}, not a pickled network; check --format")
    while True:
        state = obj.state
        children = dict(state.get("_modules") or {})
        if list(children) == ["module"] and not state.get("_parameters") and not state.get("_buffers"):
            obj = children["module"]
            continue
        break
    tensors: dict[str, torch.Tensor] = {}
    _collect(obj, "", tensors, source)
    return tensors


def _collect(obj: Any, prefix: str, out: dict[str, torch.Tensor], source: str) -> None:
    if not _is_module(obj):
        raise BadInputError(f"{source}: {prefix or 'the root'} is not a pickled module; check --format")
    state = obj.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or name in skip:
                continue
            if not isinstance(value, torch.Tensor):
                raise BadInputError(f"{source}: {prefix}{name} is {type(value).__name__}, not a tensor")
            out[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect(child, f"{prefix}{name}.", out, source)


def find_network(obj: Any, source: str, key: str = "model") -> dict[str, torch.Tensor]:
    """State dict of the network in a whole-model checkpoint: ``obj[key]`` of a training dict
    (SimSwap's 2021 ``arcface_checkpoint.tar``), the pickled module itself (the 2023 re-upload), or
    a plain state dict (a file someone already converted)."""
    if isinstance(obj, Mapping) and key in obj:
        obj = obj[key]
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return strip_prefix(dict(obj), "module.")
    return module_tensors(obj, source)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` when every key has it (a state dict saved from a DataParallel wrapper)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


__all__ = [
    "WHOLE_MODEL_FOREIGN",
    "InertObject",
    "find_network",
    "load_raw_pickle",
    "load_torch_file",
    "module_tensors",
    "restricted_pickle_module",
    "restricted_unpickler",
    "strip_prefix",
]
