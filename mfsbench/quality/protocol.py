"""The pinned FF++ quality protocol: every evaluation choice in one versioned, fingerprinted value.

Published FF++ numbers are not comparable because each implementation chose its own frames, gallery,
source frame and units (spec ``ffpp_protocol_and_benchmark_tools.md`` §1.2). mfsbench therefore reads
every choice from a TOML file (``protocols/ffpp_v1.toml``), prints it as a card in every report, and
keys every cached result by its :meth:`QualityProtocol.fingerprint`, so results of two variants are
never mixed. Named presets (``ffpp_v1@megafs``) switch the knobs other papers chose.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from mfsbench.errors import BadInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged (pyproject: tomli; python_version < "3.11")
    import tomli as tomllib

DEFAULT_PROTOCOL = "ffpp_v1"
COMPRESSIONS = ("raw", "c0", "c23", "c40")
SUBSETS = ("all", "train", "val", "test")
SOURCE_FRAME_POLICIES = ("most_frontal", "same_index", "first")
NO_FACE_RULES = ("next_frame", "skip")
#: Card values the runner implements exactly one way: any other value is rejected at load, so a card
#: never claims a choice that was not made (the audit's C2). Evaluator fields (``id_model``,
#: ``id_align``, ``id_flip_concat``, ``pose_model``, ``fid_features``, ``fid_crop_size``) are checked
#: against the evaluators that run (:func:`mfsbench.quality.card.check_card`).
SINGLE_CHOICES = {
    "source": ("split_partner",),
    "frame_sampling": ("even_bin_centres",),
    "gallery": ("one_per_source_identity",),
    "gallery_frame": ("first_held_out",),
    "eval_crop_landmarks": ("target",),
    "id_similarity": ("cosine",),
    "pose_units": ("degrees",),
    "fid_sets": ("swap_vs_target_crops",),
}
#: ``identity_groups`` value meaning "every video is its own identity" (grouped top-1 = video top-1).
NO_GROUPS = "none"


@dataclass(frozen=True)
class QualityProtocol:
    """One fully pinned variant of the FF++ face-swap evaluation (see ``protocols/ffpp_v1.toml``)."""

    id: str
    compression: str
    subset: str
    source: str
    frames_per_video: int
    frame_sampling: str
    no_face_rule: str
    source_frame_policy: str
    gallery: str
    gallery_frame: str
    detector: str
    eval_crop_landmarks: str
    id_model: str
    id_align: str
    id_flip_concat: bool
    id_similarity: str
    pose_model: str
    pose_units: str
    fid_features: str
    fid_sets: str
    fid_crop_size: int
    identity_groups: str = NO_GROUPS
    variant: str = ""  # preset and overrides applied on top of the file, e.g. "megafs; frames_per_video=2"

    def __post_init__(self) -> None:
        # the groups are read once, when the card is made: its fingerprint and the run's grouping
        # are those of the file as it was then, however it changes later
        object.__setattr__(self, "_groups", _read_groups(self.identity_groups))

    def content(self) -> dict[str, Any]:
        """Every pinned value: what the fingerprint covers.

        Left out: ``id`` and the variant label (names, which change no number: two cards with equal
        values share cached results). ``identity_groups`` is shown as the file's name and a digest
        of its content, so an edited groups file is a new protocol.
        """
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("id", "variant")}
        if self.identity_groups != NO_GROUPS:
            out["identity_groups"] = f"{Path(self.identity_groups).name} sha256:{groups_digest(self)}"
        return out

    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the canonical JSON content: a cache-key part.

        Two protocols with equal values share a fingerprint however they were loaded (file, preset,
        overrides or another ``id``), and any changed value gives a new one.
        """
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def card(self) -> str:
        """Markdown protocol card for ``--protocol-card`` and report headers."""
        title = f"## Protocol `{self.id}`" + (f" ({self.variant})" if self.variant else "")
        lines = [title, "", f"fingerprint `{self.fingerprint()}`", "", "| setting | value |", "|---|---|",
                 f"| id | {self.id} |"]
        lines += [f"| {key} | {_show(value)} |" for key, value in self.content().items()]
        return "\n".join(lines) + "\n"


def identity_groups(protocol: QualityProtocol) -> list[list[str]]:
    """The groups of video ids that show one person (``[]`` for ``identity_groups = "none"``), as read
    when ``protocol`` was made."""
    return [list(g) for g in protocol._groups]  # type: ignore[attr-defined]


def _read_groups(value: str) -> tuple[tuple[str, ...], ...]:
    """Read an ``identity_groups`` file: JSON, a list of lists of video ids, each list one person
    (FF++ people who appear in several videos); a video in no list is its own identity.

    Raises:
        BadInputError: a missing or malformed file, or a video listed twice.
    """
    if value == NO_GROUPS:
        return ()
    path = Path(value)
    if not path.is_file():
        raise BadInputError(f"identity_groups file {path} not found; pass a JSON list of lists of video "
                            f"ids, or \"{NO_GROUPS}\"")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BadInputError(f"identity_groups file {path} is not JSON ({exc}); fix the file") from None
    if not isinstance(data, list) or not all(
            isinstance(g, list) and all(isinstance(v, str) for v in g) for g in data):
        raise BadInputError(f"identity_groups file {path} must be a JSON list of lists of video ids, "
                            'e.g. [["000", "541"]]')
    seen: set[str] = set()
    for group in data:
        for video in group:
            if video in seen:
                raise BadInputError(f"identity_groups file {path} lists video {video} twice; "
                                    "each video belongs to one group")
            seen.add(video)
    return tuple(sorted(tuple(sorted(g)) for g in data if g))


def groups_digest(protocol: QualityProtocol) -> str:
    """16 hex digits of sha256 over the canonical groups (what the fingerprint records)."""
    canonical = json.dumps(identity_groups(protocol), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _show(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else str(value)


_FIELD_TYPES = {f.name: f.type for f in fields(QualityProtocol)}


def _coerce(key: str, value: Any, origin: str) -> Any:
    """Turn an override (possibly a CLI string) into the field's type, or say which value is wrong."""
    kind = _FIELD_TYPES[key]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise BadInputError(f"{origin}: {key} must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise BadInputError(f"{origin}: {key} must be an integer, got {value!r}")
    if not isinstance(value, str):
        raise BadInputError(f"{origin}: {key} must be a string, got {value!r}")
    return value


def _check(protocol: QualityProtocol, origin: str) -> None:
    """Reject values the runner cannot honour, naming the allowed ones."""
    choices = {"compression": COMPRESSIONS, "subset": SUBSETS, "source_frame_policy": SOURCE_FRAME_POLICIES,
               "no_face_rule": NO_FACE_RULES}
    for key, allowed in {**choices, **SINGLE_CHOICES}.items():
        value = getattr(protocol, key)
        if value not in allowed:
            raise BadInputError(f"{origin}: {key} {value!r} is not one of {', '.join(allowed)} "
                                "(the choices the runner implements)")
    if protocol.frames_per_video < 1:
        raise BadInputError(f"{origin}: frames_per_video must be >= 1, got {protocol.frames_per_video}")
    if protocol.fid_crop_size < 8:
        raise BadInputError(f"{origin}: fid_crop_size must be >= 8, got {protocol.fid_crop_size}")


def _read(name_or_path: str) -> tuple[dict[str, Any], str]:
    """The TOML table and where it came from: a packaged protocol name or a file path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise BadInputError(f"protocol file {path} not found; pass a .toml file or a packaged name "
                                f"({', '.join(packaged_protocols())})")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = resources.files("mfsbench.quality") / "protocols" / f"{name_or_path}.toml"
        if not resource.is_file():
            raise BadInputError(f"unknown protocol {name_or_path!r}; choose one of "
                                f"{', '.join(packaged_protocols())} or pass a .toml file")
        text, origin = resource.read_text(encoding="utf-8"), f"protocol {name_or_path}"
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{origin} is not valid TOML ({exc}); fix the file") from None


def packaged_protocols() -> list[str]:
    """Names of the protocol files shipped with mfsbench (``ffpp_v1``, ...)."""
    folder = resources.files("mfsbench.quality") / "protocols"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def presets(name_or_path: str = DEFAULT_PROTOCOL) -> dict[str, str]:
    """Preset name -> one-line description, for help texts and the card."""
    table, _ = _read(name_or_path.partition("@")[0])
    return {name: str(body.get("description", "")) for name, body in table.get("presets", {}).items()}


def load_protocol(name_or_path: str = DEFAULT_PROTOCOL, **overrides: Any) -> QualityProtocol:
    """Load a protocol (packaged name or .toml path), optionally ``@preset``, then keyword overrides.

    ``None`` overrides are ignored, so CLI flags can be passed straight through. The variant label
    records the preset and every override that changed a value; the fingerprint covers the values.

    Raises:
        BadInputError: unknown protocol, preset or key, a missing key, or a value out of range.
    """
    base, _, preset = name_or_path.partition("@")
    table, origin = _read(base)
    values = {k: v for k, v in table.items() if k != "presets"}
    notes = []
    if preset:
        available = table.get("presets", {})
        if preset not in available:
            raise BadInputError(f"{origin} has no preset {preset!r}; choose one of "
                                f"{', '.join(sorted(available)) or 'none'}")
        values.update({k: v for k, v in available[preset].items() if k != "description"})
        notes.append(preset)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in _FIELD_TYPES or key in ("id", "variant"):
            raise BadInputError(f"unknown protocol setting {key!r}; settings are "
                                f"{', '.join(k for k in _FIELD_TYPES if k not in ('id', 'variant'))}")
        coerced = _coerce(key, value, origin)
        if values.get(key) != coerced:
            notes.append(f"{key}={coerced}")
        values[key] = coerced
    unknown = sorted(set(values) - set(_FIELD_TYPES))
    if unknown:
        raise BadInputError(f"{origin}: unknown setting(s) {', '.join(unknown)}; "
                            "remove them or fix the spelling")
    optional = ("variant", "identity_groups")
    missing = [f.name for f in fields(QualityProtocol) if f.name not in values and f.name not in optional]
    if missing:
        raise BadInputError(f"{origin}: missing setting(s) {', '.join(missing)}; add them to the file")
    checked = {k: _coerce(k, v, origin) for k, v in values.items()}
    protocol = QualityProtocol(**checked, variant="; ".join(notes))
    _check(protocol, origin)
    return protocol
