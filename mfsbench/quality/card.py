"""The protocol card against the evaluators that actually run: store keys, the check, the offline card.

A card that says CosFace must not head numbers measured by another recogniser (audit C2). Each
evaluator says what it does (``name``, and ``align``/``flip_concat`` or ``crop_size`` where it has
them); :func:`check_card` compares that with the card's evaluator fields and refuses a mismatch,
and :func:`card_for` rewrites those fields to describe a given set (``--evaluators offline``), so
the fingerprint is that of what ran.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mfsbench.errors import BadInputError

#: Card field -> (evaluator role, attribute of the evaluator that must equal the card's value).
EVALUATOR_FIELDS: dict[str, tuple[str, str]] = {
    "id_model": ("identity", "name"),
    "id_align": ("identity", "align"),
    "id_flip_concat": ("identity", "flip_concat"),
    "pose_model": ("pose", "name"),
    "fid_features": ("features", "name"),
    "fid_crop_size": ("features", "crop_size"),
}


def evaluator_key(evaluator: Any | None) -> str:
    """Store key of one evaluator: name, weights and any setting that changes its output."""
    if evaluator is None:
        return "-"
    key = f"{evaluator.name}@{evaluator.weights_sha256 or 'none'}"
    if getattr(evaluator, "flip_concat", None) is False:
        key += "+noflip"
    if getattr(evaluator, "crop_size", None) not in (None, getattr(evaluator, "default_crop_size", None)):
        key += f"+crop{evaluator.crop_size}"
    return key


def evalset_key(evaluators: Any) -> str:
    return "|".join(evaluator_key(e) for e in (evaluators.identity, evaluators.pose, evaluators.features))


def evaluator_meta(evaluators: Any) -> dict[str, Any]:
    """Name, weights hash and store key of each evaluator, for report headers."""
    out: dict[str, Any] = {}
    for metric in ("identity", "pose", "features"):
        ev = getattr(evaluators, metric)
        out[metric] = None if ev is None else {"name": ev.name, "sha256": ev.weights_sha256,
                                               "key": evaluator_key(ev)}
    return out


def evaluator_values(evaluators: Any) -> dict[str, Any]:
    """The card values that describe ``evaluators`` (fields of disabled evaluators left out)."""
    values = {}
    for field_name, (role, attribute) in EVALUATOR_FIELDS.items():
        evaluator = getattr(evaluators, role)
        if evaluator is not None:
            values[field_name] = getattr(evaluator, attribute)
    return values


def check_card(protocol: Any, evaluators: Any) -> None:
    """Refuse to run when the card names another evaluator or setting than the one that runs.

    Raises:
        BadInputError: one line per mismatch, naming the card value and the evaluator's.
    """
    wrong = [f"{name} is {getattr(protocol, name)!r} but the evaluator uses {value!r}"
             for name, value in evaluator_values(evaluators).items() if getattr(protocol, name) != value]
    if wrong:
        raise BadInputError(f"protocol {protocol.id} does not describe the evaluators that would run: "
                            + "; ".join(wrong) + " (fix the protocol file, or let --evaluators offline "
                            "write its own evaluator fields)")


def card_for(protocol: Any, evaluators: Any) -> Any:
    """``protocol`` with its evaluator fields set to what ``evaluators`` do (the variant notes each)."""
    changed = {k: v for k, v in evaluator_values(evaluators).items() if getattr(protocol, k) != v}
    if not changed:
        return protocol
    notes = [protocol.variant] if protocol.variant else []
    notes += [f"{k}={v}" for k, v in changed.items()]
    return replace(protocol, **changed, variant="; ".join(notes))


__all__ = ["EVALUATOR_FIELDS", "card_for", "check_card", "evalset_key", "evaluator_key", "evaluator_meta",
           "evaluator_values"]
