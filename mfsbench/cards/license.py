"""Consent for weights whose licence forbids commercial use.

Why explicit: InsightFace's and SimSwap's weights are non-commercial (``specs/plugin_models.md`` §4).
The suite cannot judge a user's use, so a card with ``license.commercial = false`` runs only after the
user says so: ``--accept-license`` on the commands that have it, or, for any command (and scripts),
``MFSBENCH_ACCEPT_LICENSE`` set to ``all`` or to a comma-separated list of licence ids. A command that
takes the flag calls :func:`accept_licenses` before it resolves its models. The licence id is then
stamped into every record (:meth:`mfsbench.cards.load.LoadedCard.record_info`).
"""

from __future__ import annotations

import os

from mfsbench.cards.schema import Card, CardError

ACCEPT_ENV = "MFSBENCH_ACCEPT_LICENSE"
_accepted: set[str] = set()


def accept_licenses(ids: set[str] | None = None) -> None:
    """Record the user's consent for this process: ``None`` accepts every licence."""
    _accepted.update(ids if ids is not None else {"all"})


def is_accepted(license_id: str) -> bool:
    from_env = {part.strip() for part in os.environ.get(ACCEPT_ENV, "").split(",") if part.strip()}
    accepted = _accepted | from_env
    return "all" in accepted or license_id in accepted


def check_license(card: Card) -> None:
    """Raise unless the card's weights may be used commercially or the user accepted their licence."""
    if card.license.commercial or is_accepted(card.license.id):
        return
    raise CardError(
        f"{card.path}: the weights are licensed {card.license.id} (non-commercial); confirm your use "
        f"complies with --accept-license (or {ACCEPT_ENV}={card.license.id})"
    )
