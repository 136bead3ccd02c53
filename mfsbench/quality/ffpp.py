"""The FaceForensics++ tree as the official download script writes it, plus the split files.

Layout (spec ``ffpp_protocol_and_benchmark_tools.md`` §2)::

    ROOT/original_sequences/youtube/<raw|c0|c23|c40>/videos/NNN.mp4
    ROOT/manipulated_sequences/<Method>/<comp>/videos/<target>_<source>.mp4
    SPLITS/{train,val,test}.json      # lists of [a, b] pairs; not in the download (FaceForensics repo)

Each split pair ``[a, b]`` gives two swaps, ``a_b`` (target a, identity of b) and ``b_a``: the first id
is always the target. ``raw`` and ``c0`` name the same quality (the script writes ``raw``, the README
says ``c0``), so either folder is accepted. A missing split file is reported by :meth:`FFppTree.problems`
and listed in :attr:`FFppTree.missing_splits`; the others still give pairs, and the CLI decides
(``--allow-incomplete``) whether an evaluation of an incomplete tree may run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mfsbench.errors import BadInputError
from mfsbench.quality.problems import ORIGINAL_LEFT_OUT, DatasetProblem

SPLITS = ("train", "val", "test")
SUBSETS = ("all", *SPLITS)
ALIASES = {"raw": ("raw", "c0"), "c0": ("c0", "raw")}
SPLITS_FIX = "copy dataset/splits/{name}.json from the FaceForensics GitHub repository into --splits-dir"
DOWNLOAD_FIX = "download it with FaceForensics' script (-d {what} -c {comp})"


@dataclass(frozen=True, order=True)
class Pair:
    """One swap direction: the target video gives pose and expression, the source the identity."""

    target: str
    source: str

    @property
    def stem(self) -> str:
        """File stem of FF++'s own swap of this pair (``<target>_<source>``)."""
        return f"{self.target}_{self.source}"


class FFppTree:
    """Paths and pairs of one FF++ copy at one compression; never raises for missing files."""

    def __init__(self, root: Path, splits_dir: Path, compression: str = "c23") -> None:
        self.root = Path(root)
        self.splits_dir = Path(splits_dir)
        self.compression = compression
        self._missing: list[str] = []
        self._split_pairs: dict[str, list[tuple[str, str]]] | None = None

    # ------------------------------------------------------------------------------- paths

    def _comp_dir(self, parent: Path) -> Path:
        """``parent/<comp>``, trying the raw/c0 alias when the named folder is absent."""
        for name in ALIASES.get(self.compression, (self.compression,)):
            if (parent / name).is_dir():
                return parent / name
        return parent / self.compression

    @property
    def originals_dir(self) -> Path:
        return self._comp_dir(self.root / "original_sequences" / "youtube") / "videos"

    def original_video(self, video_id: str) -> Path:
        return self.originals_dir / f"{video_id}.mp4"

    def manipulated_video(self, method: str, pair: Pair) -> Path:
        return self._comp_dir(self.root / "manipulated_sequences" / method) / "videos" / f"{pair.stem}.mp4"

    def methods(self) -> list[str]:
        """Methods under ``manipulated_sequences`` that have a ``<comp>/videos`` folder, sorted."""
        base = self.root / "manipulated_sequences"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if p.is_dir() and (self._comp_dir(p) / "videos").is_dir())

    # ------------------------------------------------------------------------------- splits

    def _load_splits(self) -> dict[str, list[tuple[str, str]]]:
        """Pairs per split file that exists; missing ones are named in :attr:`missing_splits`.

        Raises:
            BadInputError: a split file that exists but is not a JSON list of two-id pairs.
        """
        if self._split_pairs is not None:
            return self._split_pairs
        loaded: dict[str, list[tuple[str, str]]] = {}
        self._missing = []
        for name in SPLITS:
            path = self.splits_dir / f"{name}.json"
            if not path.is_file():
                self._missing.append(name)
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BadInputError(f"split file {path} is not readable JSON ({exc}); "
                                    + SPLITS_FIX.format(name=name)) from None
            if not isinstance(data, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in data
            ):
                raise BadInputError(f"split file {path} must be a JSON list of [\"NNN\", \"NNN\"] pairs; "
                                    + SPLITS_FIX.format(name=name))
            loaded[name] = [(a, b) for a, b in data]
        self._split_pairs = loaded
        return loaded

    @property
    def missing_splits(self) -> list[str]:
        """Names of the split files absent from ``splits_dir`` (``["val"]``); the others still count."""
        self._load_splits()
        return list(self._missing)

    def pairs(self, subset: str) -> list[Pair]:
        """Both directions of every pair in ``subset`` (``all`` = every split file present), sorted.

        Raises:
            BadInputError: an unknown subset name or a malformed split file.
        """
        if subset not in SUBSETS:
            raise BadInputError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}")
        splits = self._load_splits()
        names = SPLITS if subset == "all" else (subset,)
        found = {Pair(a, b) for name in names for a, b in splits.get(name, [])}
        found |= {Pair(p.source, p.target) for p in found}
        return sorted(found)

    def split_of(self, video_id: str) -> str | None:
        """The split a video id belongs to (for test-only subsets in reports), or None."""
        for name, pairs in self._load_splits().items():
            if any(video_id in pair for pair in pairs):
                return name
        return None

    # ----------------------------------------------------------------------------- validate

    def validate(self) -> list[str]:
        """Every problem of the whole tree, one line each naming the path and the fix (``[]``: complete)."""
        return [str(p) for p in self.problems()]

    def problems(self, subset: str = "all",
                 methods: Sequence[str] | None = None) -> list[DatasetProblem]:
        """What is missing or broken for an evaluation of ``subset`` with ``methods`` (default: every
        method present), each naming the path, the fix and what it leaves out; ``[]`` when complete.

        Checks: root and splits folder, the subset's split files, ids used in two split files, the
        originals folder (missing or empty) and each original video of the subset (missing,
        zero-byte or without an MP4 header), and for each method its folder and each pair's swap
        video. A folder with no video at all is one problem, not one per video.
        A split file that lists no pair (``[]``) is not a problem: the miniature trees have them, and
        a subset with no pair at all is refused as "nothing to evaluate".
        Decodability is left to :mod:`.frames` (opening 1000 videos is slow): the runner records
        what does not decode, and :func:`~mfsbench.quality.problems.found_while_decoding` reads it.
        """
        if not self.root.is_dir():
            return [DatasetProblem("FF++ root is not a directory",
                                   f"FF++ root {self.root} is not a directory",
                                   "pass the folder that holds original_sequences/", "everything")]
        problems: list[DatasetProblem] = []
        wanted = SPLITS if subset == "all" else (subset,)
        if not self.splits_dir.is_dir():
            problems.append(DatasetProblem("missing splits folder",
                                           f"splits folder {self.splits_dir} not found",
                                           SPLITS_FIX.format(name="{train,val,test}"), "every pair"))
        splits = self._load_splits()
        if self.splits_dir.is_dir():
            for name in (n for n in self.missing_splits if n in wanted):
                problems.append(DatasetProblem(
                    "missing split file", f"missing split file {self.splits_dir / (name + '.json')}",
                    SPLITS_FIX.format(name=name), "every pair it lists (not evaluated, not counted)"))
        seen: dict[str, str] = {}
        for name, pairs in splits.items():
            for video in (v for pair in pairs for v in pair):
                if video in seen and seen[video] != name and (name in wanted or seen[video] in wanted):
                    problems.append(DatasetProblem(
                        "video id in two split files",
                        f"video {video} appears in {seen[video]}.json and again in {name}.json",
                        "restore the original split files",
                        "nothing, but the subsets overlap (the video's pairs count in both)", video))
                seen.setdefault(video, name)
        pairs = self.pairs(subset)
        problems += self._original_problems(pairs)
        for method in self.methods() if methods is None else methods:
            problems += self._method_problems(method, pairs)
        return problems

    def _original_problems(self, pairs: Sequence[Pair]) -> list[DatasetProblem]:
        fix = DOWNLOAD_FIX.format(what="original", comp=self.compression)
        folder = self.originals_dir
        if not folder.is_dir():
            return [DatasetProblem("missing originals folder", f"originals folder {folder} not found", fix,
                                   "every pair")]
        if pairs and not any(folder.glob("*.mp4")):
            return [DatasetProblem("empty originals folder", f"originals folder {folder} holds no video", fix,
                                   "every pair")]
        problems = []
        for video in sorted({p.target for p in pairs}):
            problem = _file_problem(self.original_video(video), "original video")
            if problem:
                problems.append(DatasetProblem(problem[0], problem[1], fix, ORIGINAL_LEFT_OUT, video))
        return problems

    def _method_problems(self, method: str, pairs: Sequence[Pair]) -> list[DatasetProblem]:
        fix = DOWNLOAD_FIX.format(what=method, comp=self.compression)
        folder = self._comp_dir(self.root / "manipulated_sequences" / method) / "videos"
        if pairs and not any(folder.glob("*.mp4")):
            return [DatasetProblem(f"empty {method} folder", f"{method} folder {folder} holds no video", fix,
                                   f"the whole {method} row")]
        problems = []
        for pair in pairs:
            problem = _file_problem(self.manipulated_video(method, pair), f"{method} video")
            if problem:
                problems.append(DatasetProblem(problem[0], problem[1], fix, f"this pair in the {method} row",
                                               f"{method}:{pair.stem}"))
        return problems


def _file_problem(path: Path, what: str) -> tuple[str, str] | None:
    """(kind, line) for a missing, zero-byte, or .mp4 file without the ``ftyp`` box every MP4 starts
    with (12 bytes read); None for a file that looks fine."""
    if not path.is_file():
        return f"missing {what}", f"missing {what} {path}"
    size = path.stat().st_size
    if size == 0:
        return f"zero-byte {what}", f"zero-byte {what} {path}"
    if path.suffix == ".mp4":
        with path.open("rb") as handle:
            head = handle.read(12)
        if head[4:8] != b"ftyp":
            return f"corrupt {what}", f"corrupt {what} {path} (no MP4 header)"
    return None
