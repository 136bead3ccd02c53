"""The model card: a TOML file that tells every command how to run a model the suite does not define.

Why a strict schema: a card is the only contract between a user's ONNX file and the suite. A typo
(``mena`` for ``mean``) that were silently ignored would give plausible but wrong swaps and wrong
Table 2 rows, so every unknown key, missing field and mistyped value is a one-line
:class:`~mfsbench.errors.BadInputError` naming the card file and the dotted field.

The fields follow ``specs/plugin_models.md`` §3 (FaceFusion's per-model dicts, InsightFace's
``INSwapper``). Parsing is pure: no file named by the card is opened here (see
:mod:`mfsbench.cards.load`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfsbench.errors import BadInputError

SCHEMA_VERSION = 1
#: ``format``: the swapper file's kind. A TorchScript archive is converted to ONNX once
#: (:mod:`mfsbench.cards.convert`) and then runs as an ONNX card; ``safetensors`` are weights for a
#: registered zoo architecture (:class:`WeightsCard`), which runs as that zoo model does.
FORMATS = ("onnx", "torchscript", "safetensors")
#: what a ``safetensors`` card may not say: its architecture defines inputs, crop, identity and paste
ARCHITECTURE_DEFINED = ("io", "target", "identity", "run", "complexity")
COLORS = ("RGB", "BGR")
LAYOUTS = ("NCHW",)
DTYPES = ("float32", "float16")
IDENTITY_KINDS = ("embedding", "image")
NORMS = ("none", "l2")
PROJECTIONS = ("none", "initializer", "onnx")
MASKS = ("box", "output")
#: ``target.warp.fit``: the community swappers' similarity (no shear) or the zoo student's 6-DoF affine.
FITS = ("similarity", "affine")
#: ``target.warp.border``: what the warp puts outside the image (FaceFusion replicates, the zoo zeroes).
BORDERS = ("replicate", "zero")


class CardError(BadInputError):
    """A card that cannot be used; the message starts with the card file and the field."""


@dataclass(frozen=True)
class FileRef:
    """One file a card points at: a path relative to the card's folder and its expected sha256."""

    key: str
    path: str
    sha256: str | None


@dataclass(frozen=True)
class TensorIO:
    """A graph input or output as the card declares it (``-1`` is a dynamic dimension)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class OutputSpec:
    """Which graph output is the swapped crop and how its values map back to pixels."""

    index: int
    shape: tuple[int, ...]
    range: tuple[float, float]
    color: str
    denorm: bool


@dataclass(frozen=True)
class PixelSpec:
    """Crop pixels → tensor: ``(pixel / scale - mean) / std`` per channel, in ``color`` order."""

    color: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Projection:
    """How an identity embedding becomes the graph's ``source`` input.

    ``initializer``: multiply by a graph initializer (inswapper's ``emap``, the last one: ``index=-1``);
    ``onnx``: run a converter graph (SimSwap's crossface); ``none``: feed the embedding as is.
    """

    kind: str
    index: int | None = None
    name: str | None = None
    file: str | None = None
    input: str | None = None
    output: int = 0


@dataclass(frozen=True)
class IdentitySpec:
    kind: str
    encoder: str | None
    input_norm: str
    projection: Projection
    post_norm: str


@dataclass(frozen=True)
class LicenseSpec:
    """The weights' licence: ``id`` is stamped into every record; ``commercial=false`` needs consent."""

    id: str
    commercial: bool
    source: str | None = None


@dataclass(frozen=True)
class Card:
    """A parsed, schema-valid card (its files are checked by :func:`mfsbench.cards.load.load_card`)."""

    path: Path
    id: str
    family: str
    description: str
    format: str
    license: LicenseSpec
    files: dict[str, FileRef]
    target_io: TensorIO
    source_io: TensorIO
    output: OutputSpec
    template: str | tuple[tuple[float, float], ...]
    size: int
    pixel: PixelSpec
    identity: IdentitySpec
    separable: bool
    paste_mask: tuple[str, ...]
    paste_blur: float
    exclude_initializers: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: ``target.warp``: how the 5 landmarks are fitted to the template and the crop's border filled
    fit: str = "similarity"
    border: str = "replicate"
    #: ``run.paste.output``: the graph output whose mask pastes the crop (``mask = ["output"]``)
    paste_output: str | None = None

    @property
    def swapper(self) -> FileRef:
        return self.files["swapper"]


@dataclass(frozen=True)
class WeightsCard:
    """A ``format = "safetensors"`` card: the user's weights for a registered zoo ``architecture``.

    Its ``[files]`` keys are the roles the architecture loads (``mobilefaceswap_pdparams``,
    ``arcface_pdparams``, ``simswap_G``, ...: the formats of ``mfsbench convert``); everything else the
    zoo model defines, so the card says only whose weights they are and under which licence.
    """

    path: Path
    id: str
    family: str
    description: str
    format: str
    architecture: str
    license: LicenseSpec
    files: dict[str, FileRef]
    notes: tuple[str, ...] = ()


class _Table:
    """A TOML table being read: every access is typed, and leftovers are unknown keys (errors)."""

    def __init__(self, data: dict[str, Any], where: str, card: Path) -> None:
        self.data = dict(data)
        self.where = where
        self.card = card

    def _field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, message: str) -> CardError:
        return CardError(f"{self.card}: field `{self._field(key)}` {message}")

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, what: str = "") -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, f"is missing; add it ({what or _kind_name(kind)})")
            return default
        value = self.data.pop(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind in (int, float):
            raise self.fail(key, f"must be {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.fail(key, f"must be {what or _kind_name(kind)}, got {type(value).__name__} {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> Any:
        value = self.take(key, str, default, what="one of " + ", ".join(choices))
        if value is not None and value not in choices:
            raise self.fail(key, f"is {value!r}; choose one of {', '.join(choices)}")
        return value

    def table(self, key: str, default: Any = ...) -> _Table:
        value = self.take(key, dict, {} if default is not ... else default, what="a table")
        return _Table(value, self._field(key), self.card)

    def numbers(self, key: str, length: int | None, default: Any = ..., *, integer: bool = False) -> Any:
        value = self.take(key, list, default, what="a list of numbers")
        if value is None or value is default:
            return value
        kind = "integers" if integer else "numbers"
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value) if integer else all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        if not ok or (length is not None and len(value) != length):
            size = f"{length} " if length is not None else ""
            raise self.fail(key, f"must be a list of {size}{kind}, got {value!r}")
        return tuple(int(v) if integer else float(v) for v in value)

    def done(self) -> None:
        if self.data:
            keys = ", ".join(f"`{self._field(k)}`" for k in sorted(self.data))
            raise CardError(f"{self.card}: unknown field {keys}; remove it or fix its spelling "
                            f"(schema {SCHEMA_VERSION} is documented in the README)")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table",
             list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def read_toml(path: Path) -> dict[str, Any]:
    """The card's TOML as a dict, or one line saying why it cannot be read."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardError(f"card {path} does not exist; pass the path of a .toml model card") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"card {path} cannot be read ({exc}); pass a readable UTF-8 .toml file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CardError(f"{path}: not valid TOML ({exc}); fix the syntax") from None


def parse_card(data: dict[str, Any], path: Path) -> Card | WeightsCard:
    """Validate a card's TOML against schema 1 and return it as a :class:`Card` (a graph) or a
    :class:`WeightsCard` (``format = "safetensors"``).

    Raises:
        CardError: the first problem found, naming ``path`` and the dotted field.
    """
    top = _Table(data, "", path)
    version = top.take("schema", int, what=f"the integer {SCHEMA_VERSION}")
    if version != SCHEMA_VERSION:
        raise top.fail("schema", f"is {version}; this mfsbench reads schema {SCHEMA_VERSION}")
    card_id = top.take("id", str)
    if not card_id or not all(c.isalnum() or c in "_-." for c in card_id):
        raise top.fail("id", f"is {card_id!r}; use letters, digits, '_', '-' or '.'")
    family = top.take("family", str)
    description = top.take("description", str, "")
    fmt = top.choice("format", FORMATS, "onnx")
    notes = top.take("notes", list, [])
    license_spec = _license(top.table("license"))
    files = _files(top.table("files"))
    architecture = top.take("architecture", str, None, what="a registered zoo model's name")
    if fmt == "safetensors":
        return _weights_card(top, WeightsCard(
            path=path, id=card_id, family=family, description=description, format=fmt,
            architecture=architecture or "", license=license_spec, files=files,
            notes=tuple(str(n) for n in notes)))
    if architecture is not None:
        raise top.fail("architecture", f"is for format = \"safetensors\" (weights for a zoo model); "
                       f"a {fmt} card's file is the whole model: remove it")
    io = top.table("io")
    target_io = _tensor(io.table("target"))
    source_io = _tensor(io.table("source"))
    output = _output(io.table("output"))
    io.done()
    target = top.table("target")
    template = _template(target)
    size = target.take("size", int)
    if size <= 0:
        raise target.fail("size", f"is {size}; it must be positive")
    pixel = _pixel(target.table("pixel", {}))
    warp = target.table("warp", {})
    fit = warp.choice("fit", FITS, "similarity")
    border = warp.choice("border", BORDERS, "replicate")
    warp.done()
    target.done()
    identity = _identity(top.table("identity"), files)
    run = top.table("run", {})
    separable = run.take("separable", bool, True)
    mask, blur, paste_output = _paste(run.table("paste", {}))
    run.done()
    complexity = top.table("complexity", {})
    exclude = complexity.take("exclude_initializers", list, [])
    if not all(isinstance(x, str) for x in exclude):
        raise complexity.fail("exclude_initializers", "must be a list of initializer names")
    complexity.done()
    top.done()
    if "swapper" not in files:
        raise CardError(f"{path}: field `files.swapper` is missing; add the swapper graph "
                        "(files.swapper = {{ path = \"model.onnx\", sha256 = \"...\" }})")
    if target_io.shape[-2:] != (size, size) and -1 not in target_io.shape[-2:]:
        raise CardError(f"{path}: field `io.target.shape` {list(target_io.shape)} disagrees with "
                        f"`target.size` {size}; make them agree")
    return Card(path=path, id=card_id, family=family, description=description, format=fmt,
                license=license_spec, files=files, target_io=target_io, source_io=source_io,
                output=output, template=template, size=size, pixel=pixel, identity=identity,
                separable=separable, paste_mask=tuple(mask), paste_blur=blur,
                exclude_initializers=tuple(exclude), notes=tuple(str(n) for n in notes), fit=fit,
                border=border, paste_output=paste_output)


def _weights_card(top: _Table, card: WeightsCard) -> WeightsCard:
    """The rest of a ``safetensors`` card: an architecture, and none of the tables it defines."""
    architecture = card.architecture
    if not architecture:
        raise top.fail("architecture", "is missing; name the registered zoo model these weights are for "
                       "(`mfsbench models --all` lists them)")
    for key in ARCHITECTURE_DEFINED:
        if key in top.data:
            raise top.fail(key, f"does not apply to format = \"safetensors\": architecture {architecture} "
                           "defines it; remove it")
    top.done()
    if not card.files:
        raise CardError(f"{card.path}: field `files` is empty; add one [files.ROLE] per weights file "
                        "(roles: the architecture's formats, e.g. mobilefaceswap_pdparams, arcface_pdparams)")
    return card


def _paste(paste: _Table) -> tuple[list[str], float, str | None]:
    """``run.paste``: the mask names, the box blur, the graph output of an ``output`` mask."""
    mask = paste.take("mask", list, ["box"])
    for item in mask:
        if item not in MASKS:
            raise paste.fail("mask", f"has {item!r}; the masks this mfsbench knows: {', '.join(MASKS)}")
    blur_given = paste.take("blur", float, None)
    blur = 0.3 if blur_given is None else blur_given
    if not 0.0 <= blur <= 1.0:
        raise paste.fail("blur", f"is {blur}; it must lie in [0, 1] (a fraction of the crop size)")
    paste_output = paste.take("output", str, None, what="the name of a graph output")
    if "output" in mask:
        # the zoo student's fusion-mask blend (``paste_back``) has its own erosion and fades: it is
        # not combined with a box, and a box blur would be a field nothing reads
        if len(mask) != 1:
            raise paste.fail("mask", f"is {mask!r}; \"output\" pastes with the graph's own mask alone: "
                             "use [\"output\"] or [\"box\"]")
        if paste_output is None:
            raise paste.fail("output", "is missing; name the graph output that holds the paste mask "
                             "(mask = [\"output\"] needs it)")
        if blur_given is not None:
            raise paste.fail("blur", "is set but mask = [\"output\"] blends as the zoo does (no box blur); "
                             "remove it")
    elif paste_output is not None:
        raise paste.fail("output", f"is {paste_output!r} but `run.paste.mask` is {mask!r}; "
                         "add mask = [\"output\"] or remove it")
    paste.done()
    return mask, blur, paste_output


def _license(table: _Table) -> LicenseSpec:
    spec = LicenseSpec(id=table.take("id", str), commercial=table.take("commercial", bool),
                       source=table.take("source", str, None))
    table.done()
    return spec


def _files(table: _Table) -> dict[str, FileRef]:
    files: dict[str, FileRef] = {}
    for key in list(table.data):
        entry = table.table(key)
        path = entry.take("path", str)
        sha = entry.take("sha256", str, None)
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())):
            raise entry.fail("sha256", f"is {sha!r}; it must be 64 hex digits (`sha256sum FILE`)")
        entry.done()
        files[key] = FileRef(key, path, sha.lower() if sha else None)
    return files


def _tensor(table: _Table) -> TensorIO:
    io = TensorIO(name=table.take("name", str), shape=table.numbers("shape", None, integer=True),
                  dtype=table.choice("dtype", DTYPES, "float32"))
    table.choice("layout", LAYOUTS, "NCHW")
    table.done()
    return io


def _output(table: _Table) -> OutputSpec:
    spec = OutputSpec(
        index=table.take("index", int, 0),
        shape=table.numbers("shape", None, (), integer=True),
        range=table.numbers("range", 2, (0.0, 1.0)),
        color=table.choice("color", COLORS, "RGB"),
        denorm=table.take("denorm", bool, False),
    )
    table.done()
    return spec


def _template(table: _Table) -> str | tuple[tuple[float, float], ...]:
    from mfsbench.cards.templates import TEMPLATES

    value = table.take("template", (str, list), what="a template name or 5 [x, y] points")
    if isinstance(value, str):
        if value not in TEMPLATES:
            raise table.fail("template", f"is {value!r}, an unknown template; use one of "
                             f"{', '.join(TEMPLATES)} or 5 explicit [x, y] points in crop units (0..1)")
        return value
    points = value
    if len(points) != 5 or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in p)
        for p in points
    ):
        raise table.fail("template", "must be 5 [x, y] points in crop units (0..1): eyes, nose, mouths")
    return tuple((float(p[0]), float(p[1])) for p in points)


def _pixel(table: _Table) -> PixelSpec:
    spec = PixelSpec(
        color=table.choice("color", COLORS, "RGB"),
        scale=table.take("scale", float, 255.0),
        mean=table.numbers("mean", 3, (0.0, 0.0, 0.0)),
        std=table.numbers("std", 3, (1.0, 1.0, 1.0)),
    )
    table.done()
    if spec.scale <= 0 or any(s <= 0 for s in spec.std):
        raise table.fail("std", "and `scale` must be positive")
    return spec


def _identity(table: _Table, files: dict[str, FileRef]) -> IdentitySpec:
    kind = table.choice("kind", IDENTITY_KINDS)
    encoder = table.take("encoder", str, None)
    input_norm = table.choice("input_norm", NORMS, "l2")
    proj_table = table.table("projection", {})
    proj_kind = proj_table.choice("kind", PROJECTIONS, "none")
    projection = Projection(
        kind=proj_kind,
        index=proj_table.take("index", int, None),
        name=proj_table.take("name", str, None),
        file=proj_table.take("file", str, None),
        input=proj_table.take("input", str, None),
        output=proj_table.take("output", int, 0),
    )
    proj_table.done()
    if proj_kind == "initializer" and (projection.index is None) == (projection.name is None):
        raise proj_table.fail("index", "or `name` (exactly one) must name the projection initializer")
    if proj_kind == "onnx" and (projection.file is None or projection.file not in files):
        raise proj_table.fail("file", "must name a key of [files] that holds the converter graph")
    spec = IdentitySpec(kind, encoder, input_norm, projection, table.choice("post_norm", NORMS, "l2"))
    table.done()
    return spec
