"""``mfsbench card``: draft a model card from an ONNX graph (``init``) or validate one (``check``).

``check`` runs every test a command would run before using the card (schema, files, sha256, graph
inputs/outputs, operators, ``onnx.checker``) and prints what the card will make the suite do, so a
user sees a wrong template or normalisation before a single frame is swapped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfsbench.errors import BadInputError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="card_command", required=True, metavar="ACTION")
    init = sub.add_parser("init", help="draft a card from an ONNX swapper graph")
    init.add_argument("graph", help="the model's .onnx file")
    init.add_argument("--out", default=None, help="card file to write (default: MODEL.toml beside the graph)")
    init.add_argument("--force", action="store_true", help="overwrite an existing card")
    init.set_defaults(run=run_init)
    check = sub.add_parser("check", help="validate a card against its files and print what it will do")
    check.add_argument("card", help="the card (.toml)")
    check.set_defaults(run=run_check)


def run_init(args: argparse.Namespace) -> int:
    from mfsbench.cards.draft import draft_card
    from mfsbench.cards.schema import parse_card, read_toml

    graph = Path(args.graph).expanduser()
    if not graph.is_file():
        raise BadInputError(f"{graph} does not exist; pass the path of your .onnx file")
    out = Path(args.out).expanduser() if args.out else graph.with_suffix(".toml")
    if out.exists() and not args.force:
        raise BadInputError(f"{out} already exists; pass --force to overwrite it or --out another file")
    text = draft_card(graph, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    card = parse_card(read_toml(out), out)  # a draft that does not parse would be a bug here
    print(f"wrote {out} (family {card.family}); review the CHECK lines, then `mfsbench card check {out}`")
    return 0


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def run_check(args: argparse.Namespace) -> int:
    import onnx

    from mfsbench.cards.count import count_stages
    from mfsbench.cards.load import load_card
    from mfsbench.cards.schema import CardError
    from mfsbench.cards.spec import spec_from_card
    from mfsbench.cards.weights import LoadedWeights

    loaded = load_card(args.card)
    if isinstance(loaded, LoadedWeights):
        return _check_weights(loaded)
    card = loaded.card
    graphs = [(key, path) for key, path in loaded.paths.items() if path.suffix == ".onnx"]
    if loaded.derived is not None:
        graphs.append(("swapper, converted", loaded.derived.path))
    for key, path in graphs:
        try:
            onnx.checker.check_model(str(path))
        except onnx.checker.ValidationError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
            raise CardError(f"{card.path}: file {path} (files.{key}) fails onnx.checker: "
                            f"{first}") from None
    spec = spec_from_card(loaded)
    print(f"card {card.path}: OK")
    print(f"  model      {card.id} (family {card.family}), {len(loaded.inputs)} inputs, "
          f"{len(loaded.outputs)} outputs")
    for key, path in loaded.paths.items():
        state = "sha256 verified" if loaded.verified[key] else "NOT verified (no sha256 in the card)"
        print(f"  file       {key}: {path} ({state}: {loaded.sha256[key][:16]}…)")
    if loaded.derived is not None:
        made = loaded.derived.details
        print(f"  converted  {card.format} -> {loaded.derived.path} ({made['converter']}, "
              f"opset {made['opset']}; "
              f"max |ONNX - archive| {made['parity_max_abs']:.1e} <= {made['parity_tolerance']:g}; "
              f"{made['cache']})")
    print(_licence_line(card.license))
    template = card.template if isinstance(card.template, str) else "explicit 5 points"
    print(f"  target     {card.target_io.name} {list(card.target_io.shape)}: align to {template} "
          f"({card.fit} fit, {card.border} border) at "
          f"{card.size} px, {card.pixel.color}, x/{card.pixel.scale:g}, mean {_fmt(card.pixel.mean)}, "
          f"std {_fmt(card.pixel.std)}")
    identity = card.identity
    print(f"  identity   {identity.kind} -> {card.source_io.name} {list(card.source_io.shape)}: "
          f"encoder {identity.encoder or '-'}, input norm {identity.input_norm}, projection "
          f"{identity.projection.kind}, post norm {identity.post_norm}")
    print(f"  output     #{card.output.index}, range {list(card.output.range)}, {card.output.color}, "
          f"denorm {'yes' if card.output.denorm else 'no'}; paste-back "
          + (f"with output {card.paste_output!r} as the zoo blends its mask" if card.paste_output else
             f"{'+'.join(card.paste_mask)} mask, blur {card.paste_blur:g}"))
    print(f"  stages     {' + '.join(spec.stage_names)}; modes {', '.join(spec.modes)}")
    for name, (count, _shapes) in count_stages(loaded).items():
        apart = ", ".join(f"{k} {v['shape']}" for k, v in count.excluded.items()
                          if "no node" in v["reason"] or "card" in v["reason"])
        print(f"  {name:<10} {count.params / 1e6:.2f} M params, {count.macs / 1e9:.3f} GMACs"
              + (f" (not compute: {apart})" if apart else ""))
    return 0


def _licence_line(license_spec) -> str:
    from mfsbench.cards.license import is_accepted

    accepted = "accepted" if is_accepted(license_spec.id) else "needs --accept-license"
    consent = "commercial use allowed" if license_spec.commercial else f"non-commercial: {accepted}"
    return f"  licence    {license_spec.id} ({consent})"


def _check_weights(loaded) -> int:
    """``card check`` of a weights card: every file loaded strictly into its architecture (names,
    shapes, finite and plausible values), as every command will load it."""
    from mfsbench.cards.spec import spec_from_weights
    from mfsbench.counting import cheap_init
    from mfsbench.swap.checkpoints import load_checkpoints

    card = loaded.card
    spec = spec_from_weights(loaded)
    with cheap_init():  # every weight is overwritten by the load
        model = spec.builder().eval()
    checkpoints = load_checkpoints(spec, model, [])
    print(f"card {card.path}: OK")
    print(f"  model      {card.id}: architecture {card.architecture} (family {spec.family}) with the card's "
          "weights; it runs as that zoo model does in every command")
    for checkpoint, role in zip(checkpoints, loaded.roles, strict=True):
        state = "sha256 verified" if loaded.verified[role] else "NOT verified (no sha256 in the card)"
        known = f"; {checkpoint.provenance}" if checkpoint.provenance else ""
        print(f"  file       {role}: {checkpoint.path} ({state}: {checkpoint.sha256[:16]}…; "
              f"{checkpoint.keys} tensors loaded strictly{known})")
    print(_licence_line(card.license))
    print(f"  stages     {' + '.join(spec.stage_names)}; modes {', '.join(spec.modes)}; size "
          f"{spec.size_rule.describe()} (native {spec.native_size})")
    return 0
