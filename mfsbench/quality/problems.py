"""Dataset problems of a quality run: what is missing or broken in the FF++ copy, and what it leaves out.

Why this exists: an incomplete tree (a split file missing, a broken download, ids in two splits)
still gives a table, but a different one — fewer pairs, another gallery — so a 93.10 % could
silently become 100.00 %. Every problem is therefore one :class:`DatasetProblem` that names the
file, the fix and what the evaluation leaves out because of it. Problems come from two places:

* the tree itself, before any work (:meth:`mfsbench.quality.ffpp.FFppTree.problems`: missing,
  empty, zero-byte or header-less files, overlapping splits), stored with the run's header;
* the store, after decoding (:func:`found_while_decoding`): videos whose header looked fine but
  whose stream does not decode, recorded by the runner against the video or the pair.

The CLI prints them grouped (:func:`console_lines`) and refuses to run on them unless
``--allow-incomplete``; the report (:func:`report_lines`) and the records say which there were.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: What a problem with an original video leaves out (every row needs the target and the source).
ORIGINAL_LEFT_OUT = "every pair with this video as target or source, in every row"
#: Fix for a video that is there but does not decode (the header-level checks could not see it).
REDOWNLOAD = "re-download it with FaceForensics' script"


@dataclass(frozen=True)
class DatasetProblem:
    """One thing wrong with the dataset copy.

    ``subject`` is the one-line description (kind words and the path), ``fix`` what the user should
    do, ``left_out`` what the evaluation skips because of it, and ``key`` the video id (or
    ``Method:target_source``) so the same file found again while decoding is not counted twice.
    """

    kind: str
    subject: str
    fix: str
    left_out: str
    key: str = ""

    def __str__(self) -> str:
        return f"{self.subject}; {self.fix}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProblem:
        return cls(str(data["kind"]), str(data["subject"]), str(data["fix"]), str(data["left_out"]),
                   str(data.get("key", "")))


def grouped(problems: Iterable[DatasetProblem]) -> list[tuple[str, list[DatasetProblem]]]:
    """Problems by kind, kinds in the order first seen (the tree's order: splits, originals, methods)."""
    groups: dict[str, list[DatasetProblem]] = {}
    for problem in problems:
        groups.setdefault(problem.kind, []).append(problem)
    return list(groups.items())


def counts(problems: Iterable[DatasetProblem]) -> dict[str, int]:
    """Kind → number of problems (what a record carries)."""
    return {kind: len(members) for kind, members in grouped(problems)}


def _common_fix(members: Sequence[DatasetProblem]) -> str | None:
    fixes = {p.fix for p in members}
    return members[0].fix if len(fixes) == 1 else None


def console_lines(problems: Sequence[DatasetProblem], where: str) -> list[str]:
    """Grouped console text: a header per kind (count, what is left out, the fix), one line per problem."""
    if not problems:
        return []
    lines = [f"dataset problems under {where}: {len(problems)}"]
    for kind, members in grouped(problems):
        fix = _common_fix(members)
        lines.append(f"  {kind}: {len(members)}; left out: {members[0].left_out}"
                     + (f"; fix: {fix}" if fix else ""))
        lines += [f"    {p.subject}" + ("" if fix else f"; fix: {p.fix}") for p in members]
    return lines


def run_problems(run: dict[str, Any]) -> list[DatasetProblem]:
    """The tree's problems stored in a run's header (``dataset_problems``; older stores kept plain
    lines as ``tree_problems``, shown as they were)."""
    if "dataset_problems" in run:
        return [DatasetProblem.from_dict(p) for p in run["dataset_problems"]]
    return [DatasetProblem("dataset problem", str(line).split("; ", 1)[0],
                           str(line).split("; ", 1)[-1], "see the problem")
            for line in run.get("tree_problems", [])]


def _video_problem(what: str, reason: str, key: str, left_out: str) -> DatasetProblem:
    """A problem from a :class:`~mfsbench.quality.frames.VideoError` reason (``PATH: what; FIX``)."""
    path, _, rest = reason.partition(": ")
    detail, _, fix = rest.partition("; ")
    if "not found" in detail:
        kind = f"missing {what}"
    elif "zero-byte" in detail:
        kind = f"zero-byte {what}"
    else:
        kind = f"undecodable {what}"
    subject = f"{kind} {path}" + (f" ({detail})" if detail and kind.startswith("undecodable") else "")
    return DatasetProblem(kind, subject, fix or REDOWNLOAD, left_out, key)


def found_while_decoding(store: Any, fingerprint: str, evalset: str,
                         known: Iterable[DatasetProblem] = ()) -> list[DatasetProblem]:
    """Problems the store recorded while decoding (original videos that did not decode, FF++ swap
    videos of a method row that were missing or did not decode), less those already in ``known``."""
    seen = {p.key for p in known if p.key}
    found: list[DatasetProblem] = []
    for video, reason in store.bad_videos(fingerprint):
        if video not in seen:
            found.append(_video_problem("original video", reason, video, ORIGINAL_LEFT_OUT))
            seen.add(video)
    for _fp, row, row_evalset, info in store.rows(fingerprint):
        method = info.get("method")
        if row_evalset != evalset or info.get("kind") != "method" or not method:
            continue
        for target, source, status, reason, _ok, _skipped in store.items(fingerprint, row, evalset):
            key = f"{method}:{target}_{source}"
            text = reason or ""
            if status == "ok" or key in seen or not text.startswith(("missing manipulated video ",
                                                                     "undecodable manipulated video: ")):
                continue
            left_out = f"this pair in the {method} row"
            if text.startswith("missing "):
                path = text[len("missing manipulated video "):]
                found.append(DatasetProblem(f"missing {method} video", f"missing {method} video {path}",
                                            REDOWNLOAD, left_out, key))
            else:
                found.append(_video_problem(f"{method} video", text.split(": ", 1)[1], key, left_out))
            seen.add(key)
    return found


def report_lines(problems: Sequence[DatasetProblem]) -> list[str]:
    """The report's "incomplete" block: a banner, then per kind the count, what is left out and each file."""
    if not problems:
        return []
    lines = [f"> **INCOMPLETE DATASET: {len(problems)} problem(s).** The numbers below cover only the "
             "videos that were there and decoded; a complete copy gives other numbers. Left out:", ">"]
    for kind, members in grouped(problems):
        fix = _common_fix(members)
        lines.append(f"> - **{kind}** ({len(members)}): left out {members[0].left_out}"
                     + (f"; fix: {fix}" if fix else ""))
        lines += [f">   - {p.subject}" + ("" if fix else f"; fix: {p.fix}") for p in members]
    return [*lines, ""]
