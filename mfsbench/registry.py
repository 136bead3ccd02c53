"""The model zoo: one frozen :class:`ModelSpec` per network, registered with :func:`register_model`.

A spec is pure data. It says what the network is (family, provenance, native input size), how it
splits into **stages** (``identity`` runs once per source face, ``frame`` once per target frame), how
the paper's two modes compose those stages (image = identity + frame, video = frame only), what the
paper reported for it, and the counts a test recomputes. Building the network is the only side
effect, and it happens in :func:`create_model`, never at registration.

Registration is explicit: the modules that hold specs are listed in :data:`ZOO_MODULES` and imported
on the first lookup, so the zoo never depends on what some other code happened to import first.
Those modules (``mfsbench.zoo``) never import torch: a spec names its network with a
:class:`Builder` reference that is resolved only when the network is built, so listing the zoo,
looking a name up or re-rendering a report costs milliseconds instead of torch's ~2 s import.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mfsbench.errors import BadInputError, DuplicateModelError, UnknownModelError, UnsupportedSizeError
from mfsbench.optional import load

if TYPE_CHECKING:
    from mfsbench.cards.load import LoadedCard
    from mfsbench.cards.weights import LoadedWeights
    from mfsbench.models.base import SwapNet

StageName = Literal["identity", "frame"]
ModeName = Literal["image", "video"]
Provenance = Literal["port", "reimplementation", "cited", "ablation", "test", "card", "plugin"]

#: Modules whose import registers specs, in the order `mfsbench models` lists them.
ZOO_MODULES: tuple[str, ...] = (
    "mfsbench.zoo.paper",
    "mfsbench.zoo.baselines",
    "mfsbench.zoo.ablations",
    "mfsbench.zoo.tiny",
)

#: Entry-point group through which installed packages add specs (code plug-ins, e.g. FSGAN's stages).
PLUGIN_GROUP = "mfsbench.models"
#: Set to 1 to skip loading plug-ins (pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` habit).
PLUGIN_DISABLE_ENV = "MFSBENCH_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class Builder:
    """Where a spec's network comes from: ``"package.module:callable"`` plus keyword arguments.

    A reference rather than the callable itself, so that a spec module imports no network code
    (and no torch); :meth:`__call__` imports the module when a network is actually built. The
    keyword arguments are plain data (a tuple of pairs, so the spec stays hashable and frozen).
    """

    target: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def resolve(self) -> Callable[..., SwapNet]:
        """The callable named by ``target`` (raises ``ImportError``/``AttributeError`` if it is gone)."""
        return load(self.target)

    def __call__(self) -> SwapNet:
        return self.resolve()(**dict(self.kwargs))


@dataclass(frozen=True)
class SizeRule:
    """Which square input sizes a network's architecture accepts.

    ``fixed`` lists the only sizes a network with a dense layer over the spatial map can take;
    otherwise a size must be a multiple of ``multiple_of`` (the product of the strides) and at least
    ``minimum``.
    """

    fixed: tuple[int, ...] = ()
    multiple_of: int = 1
    minimum: int = 1

    def accepts(self, size: int) -> bool:
        if self.fixed:
            return size in self.fixed
        return size >= self.minimum and size % self.multiple_of == 0

    def describe(self) -> str:
        if self.fixed:
            return "only " + " or ".join(str(s) for s in self.fixed)
        return f"a multiple of {self.multiple_of}, at least {self.minimum}"


@dataclass(frozen=True)
class InputSpec:
    """One input tensor of a stage: ``(1, channels, size, size)``.

    ``size=None`` means "the frame size chosen for this run" (the spec's native size unless
    ``--size`` overrides it); an int pins the size (ArcFace always sees 112×112).
    """

    name: str
    channels: int
    size: int | None = None

    def shape(self, frame_size: int) -> tuple[int, int, int, int]:
        side = frame_size if self.size is None else self.size
        return (1, self.channels, side, side)


@dataclass(frozen=True)
class StageSpec:
    """A stage of a swap network and the inputs it is counted, exported and timed with."""

    name: StageName
    inputs: tuple[InputSpec, ...]
    description: str

    def input_shapes(self, frame_size: int) -> dict[str, tuple[int, ...]]:
        return {spec.name: spec.shape(frame_size) for spec in self.inputs}


@dataclass(frozen=True)
class PaperReference:
    """What the paper printed for this network (Table 1), shown only in "as reported" columns.

    ``None`` means the paper printed "-" or nothing. ``cited_only`` marks a row that exists only
    as the paper's figures (no architecture is public).
    """

    row: str
    size: int
    image_params_m: float | None
    image_gflops: float | None
    video_params_m: float | None
    video_gflops: float | None
    fps_dimensity1100: float | None = None
    id_retrieval: float | None = None
    pose_error: float | None = None
    cited_only: bool = False


@dataclass(frozen=True)
class ExpectedCounts:
    """Counts at the native size under the ``paper`` convention, recomputed by a test.

    They are regression values written down after measuring, never paper figures: the paper's
    digits live in :class:`PaperReference`.
    """

    identity_params: int | None
    frame_params: int | None
    identity_flops: int | None
    frame_flops: int | None


@dataclass(frozen=True)
class ModelSpec:
    """Everything mfsbench knows about one network, as immutable data.

    ``image_params`` names which tensors the image-mode parameter column counts: ``"all"`` is
    every distinct learned tensor that image mode runs (identity stage + frame stage, identity-
    derived kernels excluded because the identity stage produces them); ``"identity_stage"`` is
    the paper's definition for its own student (Id network + IIN), stated in every report that
    uses it.
    """

    name: str
    display_name: str
    family: str
    provenance: Provenance
    native_size: int
    size_rule: SizeRule
    stages: tuple[StageSpec, ...]
    builder: Builder | None
    description: str
    reference: PaperReference | None = None
    expected: ExpectedCounts | None = None
    image_params: Literal["all", "identity_stage"] = "all"
    notes: tuple[str, ...] = ()
    #: the checked model card a ``provenance="card"`` spec comes from (its files, sha256, licence)
    card: LoadedCard | None = None
    #: a ``format = "safetensors"`` card: the user's weights for this (zoo) architecture, loaded by every
    #: command as ``--checkpoint`` files are (:func:`mfsbench.swap.checkpoints.load_checkpoints`)
    weights_card: LoadedWeights | None = None

    @property
    def stage_names(self) -> tuple[StageName, ...]:
        return tuple(stage.name for stage in self.stages)

    @property
    def modes(self) -> tuple[ModeName, ...]:
        """Image mode needs every stage; video mode exists only when there is a frame stage."""
        if not self.stages:
            return ()
        return ("image", "video") if "frame" in self.stage_names else ("image",)

    def stages_for(self, mode: ModeName) -> tuple[StageName, ...]:
        """The stages a mode runs per output frame: image = all of them, video = frame only."""
        if mode == "video":
            return ("frame",) if "frame" in self.stage_names else ()
        return self.stage_names

    def stage(self, name: StageName) -> StageSpec:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.name} has no {name} stage")

    @property
    def is_test(self) -> bool:
        return self.provenance == "test"

    @property
    def from_card(self) -> bool:
        """A spec resolved from a model card (a graph, or weights for a zoo architecture), not the zoo's."""
        return self.provenance == "card"

    @property
    def architecture(self) -> str:
        """The zoo architecture this spec builds: its own name, or a weights card's ``architecture``."""
        return self.weights_card.card.architecture if self.weights_card is not None else self.name

    def card_record_info(self) -> dict:
        """What every record of a card's spec carries (licence, card, files and digests); {} for the zoo."""
        if self.card is not None:
            return self.card.record_info()
        return self.weights_card.record_info() if self.weights_card is not None else {}

    @property
    def runnable(self) -> bool:
        return self.builder is not None

    def check_size(self, size: int) -> None:
        """Raise :class:`UnsupportedSizeError` when the architecture cannot take ``size``."""
        if not self.size_rule.accepts(size):
            raise UnsupportedSizeError(
                f"{self.name} cannot take --size {size}: its input size must be "
                f"{self.size_rule.describe()} (native {self.native_size}); pick such a size or drop --size"
            )


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register_model(fn: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
    """Register the spec returned by ``fn``; the function name must equal the spec name.

    Raises:
        DuplicateModelError: when the name is already registered.
        ValueError: when the function name and the spec name differ.
    """
    spec = fn()
    if spec.name != fn.__name__:
        raise ValueError(f"spec {spec.name!r} is registered by a function named {fn.__name__!r}")
    if spec.name in _REGISTRY:
        raise DuplicateModelError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return fn


def _load_zoo() -> None:
    global _loaded  # noqa: PLW0603 - the registry is module state by design, filled once
    if _loaded:
        return
    _loaded = True
    for module in ZOO_MODULES:
        importlib.import_module(module)
    if os.environ.get(PLUGIN_DISABLE_ENV, "") not in ("", "0"):
        return
    _load_plugins()


def _load_plugins() -> None:
    """Register the specs of every ``mfsbench.models`` entry point, on the registry's first use.

    An entry point names a module (importing it runs its ``@register_model`` functions) or a callable
    returning one spec or an iterable of specs. A plug-in that fails to import or returns anything
    else is one warning on stderr: a broken third-party package must not break the zoo.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            loaded = entry.load()
            if callable(loaded):
                result = loaded()
                specs = [result] if isinstance(result, ModelSpec) else list(result or [])
                for spec in specs:
                    if not isinstance(spec, ModelSpec):
                        raise TypeError(f"returned {type(spec).__name__}, not a ModelSpec")
                    if spec.name in _REGISTRY:
                        raise DuplicateModelError(f"model {spec.name!r} is already registered")
                    _REGISTRY[spec.name] = spec
        except Exception as exc:  # any failure of foreign code is one warning, never a crash
            sys.stderr.write(f"warning: mfsbench plug-in {entry.name} ({entry.value}) was not loaded: "
                             f"{type(exc).__name__}: {exc}; set {PLUGIN_DISABLE_ENV}=1 to skip plug-ins\n")


def list_models(*, include_tests: bool = False, runnable_only: bool = False) -> list[str]:
    """Registered names in zoo order; test specs are hidden unless asked for."""
    _load_zoo()
    return [
        name
        for name, spec in _REGISTRY.items()
        if (include_tests or not spec.is_test) and (spec.runnable or not runnable_only) and not spec.from_card
    ]


def all_specs() -> Iterator[ModelSpec]:
    """The zoo and plug-in specs; cards resolved so far are not included (they are listed from their
    folders, see :func:`mfsbench.cards.spec.discover`)."""
    _load_zoo()
    yield from (spec for spec in _REGISTRY.values() if not spec.from_card)


def get_spec(name: str) -> ModelSpec:
    """Look a spec up by name, by model-card path (``*.toml``) or by the id of a card in a
    ``MFSBENCH_CARDS`` folder.

    A card is checked against its files (sha256, graph inputs) and its licence accepted
    (:mod:`mfsbench.cards.license`) before its spec is returned; the spec is then registered under the
    card's id for the rest of the process, so ``create_model(spec.name)`` and later lookups find it.

    Raises:
        UnknownModelError: with close matches and the way to list the zoo.
        BadInputError: a bad card (one line naming the field or file) or a licence not accepted.
    """
    _load_zoo()
    from mfsbench.cards import spec as cards

    known = _REGISTRY.get(name)
    if known is not None and not known.from_card:
        return known
    try:  # a card path, or a card id: resolved again, so an edited card or folder is seen
        card_spec = cards.resolve(name)
    except KeyError:
        card_spec = None
    if card_spec is not None:
        known = _REGISTRY.get(card_spec.name)
        if known is not None and not known.from_card:
            raise BadInputError(f"card {name}: its id {card_spec.name!r} is a zoo model's name; "
                                "give the card another `id`")
        _REGISTRY[card_spec.name] = card_spec
        return card_spec
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Run `mfsbench models` to list the zoo."
        ) from None


def registered(name: str) -> ModelSpec | None:
    """The spec registered under ``name`` (a zoo model, or a card resolved earlier), without resolving."""
    return _REGISTRY.get(name)


def create_model(name: str) -> SwapNet:
    """Build the network of a spec, in eval mode, with freshly initialised weights.

    Raises:
        UnknownModelError: for a name that is not registered.
        BadInputError: for a cited-only spec, which has no architecture to build.
    """
    spec = get_spec(name)
    if spec.card is not None:
        raise BadInputError(
            f"{name} is a model card: it runs as an ONNX graph, not a torch network; this command "
            "cannot take cards yet (`mfsbench flops` and `mfsbench card check` can)"
        )
    if spec.builder is None:
        raise BadInputError(
            f"{name} is cited from the paper only: no public architecture exists to build; "
            "pick a runnable model from `mfsbench models`"
        )
    return spec.builder().eval()
