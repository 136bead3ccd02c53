"""Check a card against the files it names, before anything runs.

Every check that can fail is a one-line :class:`~mfsbench.cards.schema.CardError` that names the card
and the field or file: a missing file, a relative path that climbs out of the card's folder, a sha256
that does not match, a graph whose inputs or outputs disagree with ``[io]``, operators ONNX Runtime
does not have (custom ops need their own library, which a card cannot load), a projection
initializer that is not there. Nothing is downloaded: paths are the user's own files.

Hashing a 554 MB graph takes seconds, so digests are remembered per (path, size, mtime) for the
life of the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.cards.convert import DerivedGraph
from mfsbench.cards.graph import TensorInfo, signature, unknown_ops
from mfsbench.cards.schema import Card, CardError, FileRef, TensorIO, WeightsCard, parse_card, read_toml

if TYPE_CHECKING:
    from mfsbench.cards.weights import LoadedWeights

_DIGESTS: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class LoadedCard:
    """A card whose files exist, match their sha256 and agree with the graph."""

    card: Card
    paths: dict[str, Path]
    sha256: dict[str, str]
    verified: dict[str, bool]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    projection_shape: tuple[int, ...] | None
    #: the ONNX graph a TorchScript card was converted to (None: the card's file is the graph)
    derived: DerivedGraph | None = None

    @property
    def swapper_path(self) -> Path:
        """The ONNX graph every command runs: the card's own file, or the graph converted from it."""
        return self.derived.path if self.derived is not None else self.paths["swapper"]

    @property
    def graph_sha256(self) -> str:
        """The sha256 of :attr:`swapper_path` (what a derivative or a timed artefact is keyed by)."""
        return self.derived.sha256 if self.derived is not None else self.sha256["swapper"]

    def static_inputs(self) -> dict[str, tuple[int, ...]]:
        """The swapper's inputs at the card's shapes (dynamic batch → 1) for counting."""
        static = {}
        for io in (self.card.target_io, self.card.source_io):
            static[io.name] = tuple(1 if d < 0 and i == 0 else d for i, d in enumerate(io.shape))
        return static

    def record_info(self) -> dict[str, Any]:
        """What every record produced from this card carries (licence, files, digests)."""
        info = card_files_info(self.card, self.paths, self.sha256, self.verified)
        if self.derived is not None:
            info["converted_graph"] = {"path": str(self.derived.path), **self.derived.details}
        return info


def card_files_info(card: Card | WeightsCard, paths: dict[str, Path], sha256: dict[str, str],
                    verified: dict[str, bool]) -> dict[str, Any]:
    """What every record of any card carries: the card, its format and licence, each file's path and
    sha256 and whether the card's sha256 verified it."""
    return {
        "card": str(card.path),
        "card_id": card.id,
        "card_format": card.format,
        "license": card.license.id,
        "license_commercial": card.license.commercial,
        "files": {key: {"path": str(path), "sha256": sha256[key], "verified": verified[key]}
                  for key, path in paths.items()},
    }


def file_digest(path: Path) -> str:
    from mfsbench.checkpoints.digest import sha256_file

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def resolve_file(card: Card | WeightsCard, ref: FileRef) -> Path:
    """The file of ``ref``: ``${VAR}`` and ``~`` expanded; a relative path is relative to the card's
    folder and may not leave it (so a shared card cannot point at ``../../.ssh/id_rsa``)."""
    field = f"files.{ref.key}.path"
    expanded = os.path.expanduser(os.path.expandvars(ref.path))
    if "$" in expanded:
        raise CardError(f"{card.path}: field `{field}` {ref.path!r} uses an unset environment variable; "
                        "set it or write the path out")
    path = Path(expanded)
    if not path.is_absolute():
        folder = card.path.parent.resolve()
        path = (folder / path).resolve()
        if not path.is_relative_to(folder):
            raise CardError(f"{card.path}: field `{field}` {ref.path!r} escapes the card's folder {folder}; "
                            "use a path inside it, an absolute path or ${VAR}/...")
    if not path.is_file():
        raise CardError(f"{card.path}: field `{field}`: file {path} does not exist; "
                        "point it at your copy (mfsbench never downloads weights)")
    return path


def _check_io(card: Card, declared: TensorIO, actual: dict[str, TensorInfo], field: str, graph: Path) -> None:
    info = actual.get(declared.name)
    if info is None:
        raise CardError(f"{card.path}: field `{field}.name` {declared.name!r} is not an input of "
                        f"{graph.name} (inputs: {', '.join(actual) or 'none'}); use the graph's name")
    if len(info.shape) != len(declared.shape) or any(
        g >= 0 and d >= 0 and g != d for g, d in zip(info.shape, declared.shape, strict=False)
    ):
        raise CardError(f"{card.path}: field `{field}.shape` {list(declared.shape)} disagrees with "
                        f"{graph.name}'s {declared.name!r} {list(info.shape)}; copy the graph's shape")
    if info.dtype != declared.dtype:
        raise CardError(f"{card.path}: field `{field}.dtype` {declared.dtype!r} disagrees with "
                        f"{graph.name}'s {declared.name!r} ({info.dtype})")


def _check_graph(card: Card, path: Path) -> tuple[list[TensorInfo], list[TensorInfo], Any]:
    from mfsbench.cards.wire import WireError, load_structure

    try:
        model = load_structure(path)
    except (WireError, OSError) as exc:
        raise CardError(f"{card.path}: file {path} (files.swapper) is not an ONNX model ({exc})") from None
    missing = unknown_ops(model)
    if missing:
        raise CardError(f"{card.path}: file {path} uses operators ONNX Runtime does not have: "
                        f"{', '.join(missing)}; export it with standard ONNX operators")
    inputs, outputs = signature(model)
    by_name = {info.name: info for info in inputs}
    _check_io(card, card.target_io, by_name, "io.target", path)
    if card.source_io.name in by_name or len(inputs) > 1:  # one input: the identity is baked in
        _check_io(card, card.source_io, by_name, "io.source", path)
    out = card.output
    if not 0 <= out.index < len(outputs):
        raise CardError(f"{card.path}: field `io.output.index` {out.index} is out of range: {path.name} has "
                        f"{len(outputs)} output(s)")
    got = outputs[out.index].shape
    if out.shape and (len(got) != len(out.shape) or any(
            g >= 0 and d >= 0 and g != d for g, d in zip(got, out.shape, strict=False))):
        raise CardError(f"{card.path}: field `io.output.shape` {list(out.shape)} disagrees with "
                        f"{path.name}'s output {out.index} {list(got)}")
    if card.paste_output is not None:
        _check_mask_output(card, outputs, path)
    return inputs, outputs, model


def _check_mask_output(card: Card, outputs: list[TensorInfo], path: Path) -> None:
    """``run.paste.output`` names a graph output shaped like a one-channel mask of the crop."""
    names = [o.name for o in outputs]
    if card.paste_output not in names:
        raise CardError(f"{card.path}: field `run.paste.output` {card.paste_output!r} is not an output of "
                        f"{path.name} (outputs: {', '.join(names) or 'none'}); use the graph's name")
    index = names.index(card.paste_output)
    if index == card.output.index:
        raise CardError(f"{card.path}: field `run.paste.output` {card.paste_output!r} is the swapped crop "
                        "itself (`io.output.index`); name the mask output")
    shape = outputs[index].shape
    if len(shape) != 4 or shape[1] not in (1, -1) or any(d not in (card.size, -1) for d in shape[2:]):
        raise CardError(f"{card.path}: field `run.paste.output` {card.paste_output!r} has shape "
                        f"{list(shape)}; a paste mask is N×1×{card.size}×{card.size} (`target.size`)")


def _projection_shape(card: Card, model: Any) -> tuple[int, ...] | None:
    projection = card.identity.projection
    if projection.kind != "initializer":
        return None
    initializers = list(model.graph.initializer)
    if projection.index is not None:
        if not -len(initializers) <= projection.index < len(initializers):
            raise CardError(f"{card.path}: field `identity.projection.index` {projection.index} is out of "
                            f"range: the graph has {len(initializers)} initializers")
        return tuple(initializers[projection.index].dims)
    found = next((init for init in initializers if init.name == projection.name), None)
    if found is None:
        raise CardError(f"{card.path}: field `identity.projection.name` {projection.name!r} is not an "
                        "initializer of the swapper graph")
    return tuple(found.dims)


def load_card(path: str | Path, *, verify_sha256: bool = True) -> LoadedCard | LoadedWeights:
    """Parse ``path`` and check it against its files (see the module docstring); a ``safetensors``
    card is checked against its architecture instead (:mod:`mfsbench.cards.weights`).

    Raises:
        CardError: the first problem, in one line naming the card and the field or file.
    """
    card_path = Path(path).expanduser()
    card = parse_card(read_toml(card_path), card_path)
    paths = {key: resolve_file(card, ref) for key, ref in card.files.items()}
    digests: dict[str, str] = {}
    verified: dict[str, bool] = {}
    for key, ref in card.files.items():
        # a converted file's digest keys its conversion; a weights file's is what records name it by
        needed = card.format == "safetensors" or (key == "swapper" and card.format == "torchscript")
        digests[key] = file_digest(paths[key]) if verify_sha256 or ref.sha256 or needed else ""
        if ref.sha256 and digests[key] != ref.sha256:
            raise CardError(f"{card.path}: file {paths[key]} does not match `files.{key}.sha256` "
                            f"(expected {ref.sha256[:12]}…, got {digests[key][:12]}…); "
                            "it is not the file the card describes")
        verified[key] = bool(ref.sha256)
    if isinstance(card, WeightsCard):
        from mfsbench.cards.weights import load_weights

        return load_weights(card, paths, digests, verified)
    derived = None
    if card.format == "torchscript":
        from mfsbench.cards.convert import derive_onnx

        derived = derive_onnx(card, paths["swapper"], digests["swapper"])
    inputs, outputs, model = _check_graph(card, derived.path if derived else paths["swapper"])
    projection = _projection_shape(card, model)
    return LoadedCard(card, paths, digests, verified, tuple(inputs), tuple(outputs), projection, derived)
