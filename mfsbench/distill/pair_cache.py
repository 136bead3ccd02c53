"""The per-pair cache behind ``[perf] cache_teacher``: what a step computes from a fixed pair alone.

With ``[data] pairs = "fixed"`` (and no flips) a target always meets the same source, and every
network that reads only the pair is frozen. So everything :func:`~mfsbench.distill.objective.pair_view`
computes is the same each time the pair comes back, and is kept here after its first step:

* the teacher output I'g (and, for CAT's ``lambda_feature``, the teacher's inner maps);
* F_id's embedding and 512×7×7 map of the source: z_src for α and L_id, and the student's identity
  input (its Id network is that same frozen F_id);
* α (cos² of ArcFace(I'g) against z_src, × Q(I'g) with the quality regressor), computed without
  gradient anyway;
* the VGG maps of the KD reference (the target side of L_per and of the style loss).

What stays per step is what reads the student: its forward and backward, VGG and ArcFace on its
output (forward and input-gradient backward), and the discriminator, which trains.

**Where it lives.** In memory, on the training device, for the life of one
:class:`~mfsbench.distill.trainer.Distiller` (nothing on disk: a resume fills it again). The small
parts (teacher output, F_id features, α) are always kept; the big ones (VGG maps: about 24 MB per
pair for VGG-16 at 224, and the teacher's inner maps) only while the cache stays within
``[perf] cache_gib``. A batch with a row whose VGG maps did not fit computes them for the batch from
the cached teacher output; one whose teacher maps did not fit (``lambda_feature``) is computed whole.
A batch with a row not cached yet is computed whole too, as the uncached step computes it, so the
values kept are the very ones that step would have used.

**Key.** An entry's key is its pair id (target index, plus the same-identity flag). The whole cache
is stamped with what its values depend on: every parameter and buffer of the frozen networks (the
tensor itself, its storage and its in-place version counter, so ``load_state_dict``, an in-place edit
or a swapped tensor all count), their train/eval modes, the training crops tensor, and the config
keys that reach the pair's values (``model``, ``data``, ``loss``, ``reweight``, the seed that picks the
fixed sources, the frozen nets' precision), and a model-card teacher's ``cache_key`` (the sha256 of
the card, its files and its encoder's weights: an ONNX Runtime graph has no torch tensors to watch).
Each step compares the stamp first (about a millisecond)
and empties the cache when anything differs.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mfsbench.distill.objective import TeacherView


@dataclass
class Entry:
    """One pair's cached values (row slices, cloned so the batch they came from can be freed)."""

    output: Tensor | None
    alpha: Tensor
    embedding: Tensor
    id_map: Tensor
    features: list[Tensor] | None
    ref_features: list[Tensor] | None

    def nbytes(self) -> int:
        tensors = [self.output, self.alpha, self.embedding, self.id_map, *(self.features or []),
                   *(self.ref_features or [])]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _row(values: list[Tensor] | None, j: int) -> list[Tensor] | None:
    return None if values is None else [v[j].clone() for v in values]


def _stack(rows: list[list[Tensor] | None]) -> list[Tensor] | None:
    if any(r is None for r in rows):
        return None
    return [torch.stack(layer) for layer in zip(*rows, strict=True)]  # type: ignore[misc]


#: the live :class:`Dependencies`: torch's global registration hooks (installed once) mark the one
#: whose modules had a parameter, buffer or submodule (re)assigned, so a swapped tensor is seen without
#: walking the modules every step (a training D's spectral norm reassigns its buffers every forward:
#: only the watched, frozen modules count)
_WATCHERS: weakref.WeakSet[Dependencies] = weakref.WeakSet()
_HOOKED: list[bool] = []


def _registered(module: nn.Module, *_args: object) -> None:
    for watcher in _WATCHERS:
        if id(module) in watcher.module_ids:
            watcher.epoch += 1


def _hook_registrations() -> None:
    if _HOOKED:
        return
    from torch.nn.modules import module

    module.register_module_parameter_registration_hook(_registered)
    module.register_module_buffer_registration_hook(_registered)
    module.register_module_module_registration_hook(_registered)
    _HOOKED.append(True)


class Dependencies:
    """What the cached values depend on, read every step for about a millisecond at 224: the frozen
    networks' tensors (storage pointer and in-place version counter: ``load_state_dict``, ``copy_``
    and optimiser-style edits bump it), their modules' train/eval modes, the crops tensor and the
    config keys that reach a pair's values. A parameter, buffer or submodule reassigned on one of
    these modules moves :attr:`epoch`, which re-collects the tensor list and changes the stamp too."""

    def __init__(self, nets: Callable[[], list[nn.Module | None]], data: Callable[[], Tensor],
                 config: dict[str, Any]) -> None:
        _hook_registrations()
        self._nets, self._data, self._config = nets, data, config
        self.epoch = 0
        self.module_ids: set[int] = set()
        self._collected = -1
        self._roots: list[nn.Module] = []
        self._modules: list[nn.Module] = []
        self._tensors: list[Tensor] = []
        self._crops: Tensor | None = None  # held, so its id cannot be reused while compared
        _WATCHERS.add(self)

    def _collect(self, roots: list[nn.Module]) -> None:
        self._roots = roots
        self._modules = [m for net in roots for m in net.modules()]
        self.module_ids = {id(m) for m in self._modules}
        self._tensors = [t for net in roots for t in (*net.parameters(), *net.buffers())]
        self._collected = self.epoch

    def stamp(self) -> tuple[Any, ...]:
        roots = [net for net in self._nets() if net is not None]
        if self._collected != self.epoch or len(roots) != len(self._roots) or any(
                a is not b for a, b in zip(roots, self._roots, strict=True)):
            self._collect(roots)
        crops = self._data()
        self._crops = crops
        config = self._config
        keys = {s: config[s] for s in ("model", "data", "loss", "reweight")}
        keys["seed"], keys["precision"] = config["run"]["seed"], config["perf"]["precision"]
        return (self.epoch, tuple(id(net) for net in roots),
                tuple(getattr(net, "cache_key", "") for net in roots),
                tuple(t._version for t in self._tensors),
                tuple(t.data_ptr() for t in self._tensors), tuple(m.training for m in self._modules),
                (id(crops), crops.data_ptr(), crops._version), json.dumps(keys, sort_keys=True))


class PairCache:
    """Pair id → :class:`Entry`, stamped (see the module docstring), big parts within a byte budget."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.entries: dict[int, Entry] = {}
        self.stamp: tuple[Any, ...] = ()
        #: bytes held by the entries; times the stamp changed with entries held; big parts left out
        self.bytes = 0
        self.invalidations = 0
        self.without_maps = 0

    def validate(self, current: tuple[Any, ...]) -> None:
        """Empty the cache when what its values depend on (:meth:`Dependencies.stamp`) has changed."""
        if current == self.stamp:
            return
        if self.entries:
            self.invalidations += 1
        self.entries.clear()
        self.bytes = 0
        self.without_maps = 0
        self.stamp = current

    def missing(self, ids: list[int], need_features: bool) -> list[int]:
        """Rows to compute: not cached, or (``need_features``) cached without the teacher's inner maps."""
        return [i for i, pid in enumerate(ids) if pid not in self.entries
                or (need_features and self.entries[pid].features is None)]

    def store(self, ids: list[int], view: TeacherView) -> None:
        """Keep each row of a freshly computed view (the big parts only while within the budget)."""
        assert view.id_features is not None
        for j, pid in enumerate(ids):
            if pid in self.entries:  # cached already (or recomputed for inner maps the budget left out)
                continue
            entry = Entry(None if view.output is None else view.output[j].clone(), view.alpha[j].clone(),
                          view.id_features[0][j].clone(), view.id_features[1][j].clone(), None, None)
            light = entry.nbytes()
            entry.features, entry.ref_features = _row(view.features, j), _row(view.ref_features, j)
            if self.bytes + entry.nbytes() > self.budget and (entry.features or entry.ref_features):
                entry.features = entry.ref_features = None
                self.without_maps += 1
                self.bytes += light
            else:
                self.bytes += entry.nbytes()
            self.entries[pid] = entry

    def view(self, ids: list[int]) -> TeacherView:
        """The batch's view, every row from the cache (a row without its big parts makes those None
        for the batch: the step then computes them)."""
        rows = [self.entries[pid] for pid in ids]
        outputs = [r.output for r in rows]
        output = None if outputs[0] is None else torch.stack(outputs)  # type: ignore[arg-type]
        return TeacherView(output, torch.stack([r.alpha for r in rows]), _stack([r.features for r in rows]),
                           (torch.stack([r.embedding for r in rows]), torch.stack([r.id_map for r in rows])),
                           _stack([r.ref_features for r in rows]))

    def info(self) -> dict[str, Any]:
        """For records: how many pairs, how many bytes, how many without their big parts."""
        return {"pairs": len(self.entries), "mib": round(self.bytes / 2**20, 3),
                "budget_gib": round(self.budget / 2**30, 3), "pairs_without_maps": self.without_maps,
                "invalidations": self.invalidations}
