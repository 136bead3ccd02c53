"""A checked card as a :class:`~mfsbench.registry.ModelSpec`, and the card folders that are searched.

One interface: a card resolves to a spec with stages like a zoo model, so the registry's
``get_spec`` hands it to any command. The stages follow the card: the ``identity`` stage is the work
done once per source (the encoder graph when the card names one, then the projection: an initializer
such as inswapper's ``emap`` or a converter graph); the ``frame`` stage is the swapper graph, run
once per target frame. A card whose identity is a source *image* fed to the swapper every frame
(``identity.kind = "image"``) has no separable identity stage. A ``safetensors`` card resolves to its
zoo architecture's spec under the card's id, carrying its weights (:func:`spec_from_weights`).
"""

from __future__ import annotations

import os
from pathlib import Path

from mfsbench.cards.load import LoadedCard, load_card
from mfsbench.cards.schema import CardError, parse_card, read_toml
from mfsbench.cards.weights import LoadedWeights

#: ``os.pathsep``-separated folders whose ``*.toml`` cards are listed and found by id.
CARDS_ENV = "MFSBENCH_CARDS"


def looks_like_card(name: str) -> bool:
    """A ``--models`` item that is a card path rather than a registered name."""
    return name.endswith(".toml") or os.sep in name or "/" in name


def card_folders() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(CARDS_ENV, "").split(os.pathsep) if p.strip()]


def discover() -> dict[str, Path]:
    """Card id → file for every parseable card in the :data:`CARDS_ENV` folders (first one wins).

    Only the TOML is read (no hashing, no graph): listing must stay fast. A folder that does not
    exist is an error naming the variable, since a typo there would silently hide every card.
    """
    found: dict[str, Path] = {}
    for folder in card_folders():
        if not folder.is_dir():
            raise CardError(f"{CARDS_ENV} names {folder}, which is not a folder; fix the variable")
        for path in sorted(folder.glob("*.toml")):
            card = parse_card(read_toml(path), path)
            found.setdefault(card.id, path)
    return found


def spec_from_card(loaded: LoadedCard):  # -> ModelSpec (imported late: registry imports this module)
    """The :class:`ModelSpec` of a checked card."""
    from mfsbench.registry import InputSpec, ModelSpec, SizeRule, StageSpec

    card = loaded.card
    swapper = loaded.swapper_path.name
    frame = StageSpec(
        "frame",
        (InputSpec(card.target_io.name, card.target_io.shape[1], card.size),),
        f"the swapper graph {swapper}: aligned target crop + identity input {card.source_io.name!r}",
    )
    stages = (frame,)
    if card.identity.kind == "embedding" and card.separable:
        parts = []
        if card.identity.encoder:
            parts.append(f"encoder {card.identity.encoder}")
        projection = card.identity.projection
        if projection.kind == "initializer":
            where = f"index {projection.index}" if projection.index is not None else repr(projection.name)
            parts.append(f"projection by initializer {where} of {swapper}")
        elif projection.kind == "onnx":
            parts.append(f"converter graph {loaded.paths[projection.file or ''].name}")
        stages = (StageSpec("identity", (), "; ".join(parts) or "the embedding as given"), frame)
    return ModelSpec(
        name=card.id,
        display_name=card.id,
        family=card.family,
        provenance="card",
        native_size=card.size,
        size_rule=SizeRule(fixed=(card.size,)),
        stages=stages,
        builder=None,
        description=card.description or f"{card.family} model from card {card.path.name}",
        notes=(f"card {card.path}", f"licence {card.license.id}", *card.notes),
        card=loaded,
    )


def resolve(name: str, *, check_license: bool = True):  # -> ModelSpec
    """The spec of a card path, or of a card id found in a :data:`CARDS_ENV` folder.

    Raises:
        CardError: a bad card or a licence not accepted.
        KeyError: ``name`` is neither a card path nor a discovered card id.
    """
    from mfsbench.cards.license import check_license as check

    path = Path(name).expanduser() if looks_like_card(name) else discover()[name]
    loaded = load_card(path)
    if check_license:
        check(loaded.card)
    if isinstance(loaded, LoadedCard):
        return spec_from_card(loaded)
    return spec_from_weights(loaded)


def spec_from_weights(loaded: LoadedWeights):  # -> ModelSpec
    """A weights card's spec: its architecture's (stages, builder, sizes, family, expected counts)
    under the card's id, with the card's weights to load. No paper reference: the paper measured its
    own weights' architecture, and the counts, which depend on the architecture only, are the zoo's."""
    from dataclasses import replace

    from mfsbench.registry import get_spec

    card = loaded.card
    architecture = get_spec(card.architecture)
    return replace(
        architecture,
        name=card.id,
        display_name=card.id,
        provenance="card",
        reference=None,
        description=card.description or f"{architecture.display_name}, weights of card {card.path.name}",
        notes=(f"card {card.path}", f"architecture {architecture.name}", f"licence {card.license.id}",
               *card.notes),
        weights_card=loaded,
    )
