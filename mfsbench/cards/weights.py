"""A ``format = "safetensors"`` card: the user's weights for a registered zoo architecture.

Why a card and not only ``--checkpoint``: a card gives the weights an id that every command takes in
``--models`` beside other models (each with its own weights), a place in ``MFSBENCH_CARDS``, sha256
checks before anything runs, and a licence stamped into every record. The network is the zoo's
architecture, so the card runs exactly as that zoo model does in every command (counting, swap,
quality, export and timing, both modes), loaded through the same strict loader as ``--checkpoint``
(:func:`mfsbench.swap.checkpoints.load_checkpoints`).

Checked here, before anything runs (one line each, naming the card and the field or file): the
architecture is a registered, buildable zoo model of the card's family with weights to load; the
``[files]`` roles are exactly the ones it loads; each file is a readable ``.safetensors`` whose tensor
names and shapes are those of its role (read from the header: no tensor is loaded). Values (NaN, huge
weights) are checked by the strict load when a command loads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.cards.schema import CardError, WeightsCard
from mfsbench.errors import BadInputError

if TYPE_CHECKING:
    from mfsbench.registry import ModelSpec


@dataclass(frozen=True)
class LoadedWeights:
    """A weights card whose architecture exists and whose files match it by name, shape and sha256."""

    card: WeightsCard
    paths: dict[str, Path]
    sha256: dict[str, str]
    verified: dict[str, bool]
    roles: tuple[str, ...]

    def flags(self) -> list[str]:
        """The files as ``--checkpoint`` flags (``ROLE=PATH``), in the architecture's load order."""
        return [f"{role}={self.paths[role]}" for role in self.roles]

    def record_info(self) -> dict[str, Any]:
        """What every record of this card carries (see :func:`mfsbench.records.stamp`)."""
        from mfsbench.cards.load import card_files_info

        return {**card_files_info(self.card, self.paths, self.sha256, self.verified),
                "architecture": self.card.architecture}


def weights_flags(spec: ModelSpec, flags: list[str] | tuple[str, ...]) -> list[str]:
    """The ``--checkpoint`` flags that load ``spec``: a weights card's own files, else ``flags``.

    Raises:
        BadInputError: both (the card's files are its weights; another file would replace them).
    """
    if spec.weights_card is None:
        return list(flags)
    own = spec.weights_card.flags()
    if flags and list(flags) != own:  # the card's own flags, passed on to a worker, are fine
        raise BadInputError(f"{spec.name} is a weights card: its weights are the card's files "
                            f"({spec.weights_card.card.path}); drop --checkpoint for it")
    return own


def _architecture(card: WeightsCard) -> tuple[Any, tuple[str, ...]]:
    """The zoo spec the card names and the roles (official formats) it loads, in load order."""
    from mfsbench.errors import UnknownModelError
    from mfsbench.registry import get_spec
    from mfsbench.swap.checkpoints import needed_formats

    if card.architecture.endswith(".toml") or "/" in card.architecture:
        raise CardError(f"{card.path}: field `architecture` {card.architecture!r} is a card path; "
                        "name a registered zoo model")
    try:
        spec = get_spec(card.architecture)
    except UnknownModelError:
        raise CardError(f"{card.path}: field `architecture` {card.architecture!r} is not a registered zoo "
                        "model; `mfsbench models --all` lists them") from None
    roles = needed_formats(spec) if spec.provenance != "card" else None
    if spec.builder is None or not roles:
        raise CardError(f"{card.path}: field `architecture` {card.architecture!r} has no weights files to "
                        "load; use a student or baseline with official checkpoints (mobilefaceswap_224, "
                        "simswap_224, the ablations, test_mobilefaceswap)")
    if card.family != spec.family:
        raise CardError(f"{card.path}: field `family` {card.family!r} disagrees with architecture "
                        f"{spec.name}'s family {spec.family!r}; write {spec.family!r}")
    return spec, roles


def _check_tensors(card: WeightsCard, role: str, path: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """The file's tensor names and shapes (from its header) against the role's, and its metadata."""
    from mfsbench.checkpoints.formats import read_safetensors_shapes

    try:
        shapes, metadata = read_safetensors_shapes(path)
    except BadInputError as exc:  # said again with the card and the field it came from
        raise CardError(f"{card.path}: files.{role}: {exc}") from None
    student = metadata.get("student")
    if student is not None and student != card.architecture:
        raise CardError(f"{card.path}: file {path} (files.{role}) holds a distilled {student} student, "
                        f"not {card.architecture}; set `architecture = \"{student}\"`")
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(shapes) - optional)
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])
    if missing or unexpected or wrong:
        parts = [f"{len(keys)} {label} (first {keys[0]})" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", wrong)) if keys]
        raise CardError(f"{card.path}: file {path} (files.{role}) does not hold {card.architecture}'s "
                        f"{role} tensors: {'; '.join(parts)}; is it the right file for this role?")


def load_weights(card: WeightsCard, paths: dict[str, Path], digests: dict[str, str],
                 verified: dict[str, bool]) -> LoadedWeights:
    """Check a parsed weights card against its architecture (files already found and hashed)."""
    import torch

    from mfsbench.checkpoints.formats import FORMATS, _target

    spec, roles = _architecture(card)
    missing = [role for role in roles if role not in card.files]
    if missing:
        raise CardError(f"{card.path}: field `files.{missing[0]}` is missing: architecture {spec.name} loads "
                        f"{', '.join(roles)}; give every one (a half-loaded network would swap with random "
                        "weights)")
    extra = sorted(set(card.files) - set(roles))
    if extra:
        raise CardError(f"{card.path}: field `files.{extra[0]}` is not a role of architecture {spec.name}; "
                        f"its roles: {', '.join(roles)}")
    with torch.device("meta"):  # names and shapes only: nothing is allocated or initialised
        model = spec.builder()
    for role in roles:
        part = _target(model, FORMATS[role])
        expected = {k: tuple(v.shape) for k, v in part.state_dict().items()}
        _check_tensors(card, role, paths[role], expected)
    return LoadedWeights(card, paths, digests, verified, roles)
