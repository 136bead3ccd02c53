"""``mfsbench models``: the zoo with sizes, stages, modes and the counts each spec expects, then the
model cards found in the ``MFSBENCH_CARDS`` folders and the specs that plug-ins registered.

Cards are listed from their TOML only (no hashing, no graph reading), so listing stays instant; a
card's files are checked when a command uses it (or by ``mfsbench card check``).
"""

from __future__ import annotations

import argparse
import json

from mfsbench.registry import all_specs
from mfsbench.report.numbers import paper_round


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", help="include the tiny test_* networks")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (aligned columns) or json (every field) (default: table)")
    parser.set_defaults(run=run)


def _row(spec) -> dict[str, object]:
    expected = spec.expected
    identity = expected.identity_params if expected else None
    frame = expected.frame_params if expected else None
    video = frame / 1e6 if frame is not None else None
    return {
        "name": spec.name,
        "kind": spec.provenance,
        "size": spec.native_size,
        "sizes": spec.size_rule.describe(),
        "stages": "+".join(spec.stage_names) or "-",
        "modes": ",".join(spec.modes) or "-",
        "identity_params_m": identity / 1e6 if identity is not None else None,
        "video_params_m": video,
        "paper_row": spec.reference.row if spec.reference else None,
        "description": spec.description,
    }


def _card_rows() -> list[dict[str, object]]:
    from mfsbench.cards.schema import WeightsCard, parse_card, read_toml
    from mfsbench.cards.spec import discover
    from mfsbench.registry import get_spec

    rows: list[dict[str, object]] = []
    for card_id, path in discover().items():
        card = parse_card(read_toml(path), path)
        if isinstance(card, WeightsCard):  # the architecture's row, under the card's name (no file is read)
            row = _row(get_spec(card.architecture))
            row.update(name=card_id, kind="card", paper_row=None, card=str(path), license=card.license.id,
                       commercial=card.license.commercial, architecture=card.architecture,
                       description=card.description or f"{card.architecture} with the card's weights")
            rows.append(row)
            continue
        separable = card.identity.kind == "embedding" and card.separable
        rows.append({
            "name": card_id,
            "kind": "card",
            "size": card.size,
            "sizes": f"only {card.size}",
            "stages": "identity+frame" if separable else "frame",
            "modes": "image,video",
            "identity_params_m": None,
            "video_params_m": None,
            "paper_row": None,
            "description": card.description or f"{card.family} model card",
            "card": str(path),
            "license": card.license.id,
            "commercial": card.license.commercial,
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = [_row(spec) for spec in all_specs() if args.all or not spec.is_test]
    rows += _card_rows()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    head = ("name", "kind", "size", "stages", "modes", "id-stage M", "frame M", "paper row")
    table = [head] + [
        (
            str(r["name"]),
            str(r["kind"]),
            str(r["size"]),
            str(r["stages"]),
            str(r["modes"]),
            paper_round(r["identity_params_m"]),
            paper_round(r["video_params_m"]),
            str(r["paper_row"] or "-"),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    for index, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    return 0
