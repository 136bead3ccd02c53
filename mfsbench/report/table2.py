"""Table 2 (quality on FF++) rendered from a quality store: markdown, CSV, a FLOPs-vs-ID plot, records.

Everything here is read back from :class:`~mfsbench.quality.store.QualityStore`, never from the run
in memory, so a finished (or merged) store re-renders byte-identical tables without touching a
video or a network. Columns are labelled with the evaluator that produced them: an offline
recogniser's column is never called CosFace, a feature distance that is not Inception pool3 is
never called FID. The paper's figures sit in their own "as reported" columns, only where the
mapping to the paper's row is certain (``specs/paper_tables.md``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mfsbench.errors import MfsbenchError, MissingDependencyError
from mfsbench.quality.aggregate import retrieval_rates
from mfsbench.quality.gallery import group_map
from mfsbench.quality.problems import DatasetProblem, counts, found_while_decoding, report_lines, run_problems
from mfsbench.quality.store import TARGET_ROW, QualityStore
from mfsbench.records import Record
from mfsbench.report.frames import csv_text, markdown_lines

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class PaperFigure:
    """A MobileFaceSwap figure, as reported (FF++, CosFace / Hopenet / FID of the paper's own runs)."""

    where: str
    id_retrieval: float | None
    pose: float | None
    fid: float | None


#: Rows whose paper figure is certain. Keys: zoo model names and ``ffpp:<Method>`` rows.
PAPER: dict[str, PaperFigure] = {
    "mobilefaceswap_224": PaperFigure("Table 2 row 12, Ours (SimSwap teacher)", 95.98, 1.32, 6.79),
    "simswap_224": PaperFigure("Table 2 row 11, Teacher (SimSwap)", 95.94, 1.39, 10.26),
    "mobilefaceswap_256": PaperFigure("Table 1, Ours (FaceShifter teacher)", 96.10, 1.70, None),
    "ffpp:Deepfakes": PaperFigure("Table 1, DeepFakes", 81.96, 4.14, None),
    "ffpp:FaceShifter": PaperFigure("Table 1, FaceShifter", 97.38, 2.96, None),
}


@dataclass
class Table2Row:
    """One row's aggregated metrics over its evaluated frames."""

    key: str
    label: str
    kind: str
    model: str
    mode: str | None
    weights: str
    gmacs: float | None
    frames_ok: int = 0
    frames_skipped: int = 0
    items_ok: int = 0
    items_skipped: int = 0
    id_top1_pct: float | None = None
    id_top1_grouped_pct: float | None = None
    target_retrieval_pct: float | None = None
    id_cos: float | None = None
    pose_err: float | None = None
    fd: float | None = None
    fd_n: int = 0
    #: what ran a swap row's frame stage (torch or onnxruntime; ``quality --runtime``)
    runtime: str | None = None
    skipped: Counter = field(default_factory=Counter)
    #: reason category → the pairs (``target_source``, FF++'s own naming) whose frames it skipped
    skipped_videos: dict[str, set[str]] = field(default_factory=dict)

    def skip(self, reason: str | None, target: str, source: str, frames: int) -> None:
        """Count ``frames`` skipped frames of one pair under its reason's category, naming the pair."""
        category = reason_category(reason, target, source)
        self.skipped[category] += frames
        self.skipped_videos.setdefault(category, set()).add(pair_name(target, source))

    @property
    def paper(self) -> PaperFigure | None:
        return PAPER.get(self.model)


@dataclass
class Header:
    """What a reader needs to trust the table: protocol, evaluators, coverage, what was unusable."""

    protocol_id: str
    fingerprint: str
    evalset: str
    run: dict[str, Any]
    gallery_size: int
    bad_videos: list[tuple[str, str]]
    gallery_missing: list[tuple[str, str]]
    pairs_done: int = 0
    substitutions: list[str] = field(default_factory=list)
    #: the tree's problems stored with the run, then those found while decoding (mfsbench.quality.problems)
    problems: list[DatasetProblem] = field(default_factory=list)

    @property
    def chance_pct(self) -> float | None:
        return 100.0 / self.gallery_size if self.gallery_size else None

    def column(self, metric: str) -> str:
        ev = self.run.get("evaluators", {}).get(metric) or {}
        name = ev.get("name")
        if metric == "identity":
            return f"ID retrieval % ↑ ({name})" if name else "ID retrieval % ↑ (disabled)"
        if metric == "pose":
            return f"Pose error ° ↓ ({name})" if name else "Pose error ↓ (disabled)"
        if not name:
            return "FID ↓ (disabled)"
        return f"FID ↓ ({name})" if name.startswith("fid") else f"FD ↓ ({name}, not FID)"


def pair_name(target: str, source: str) -> str:
    """A work item's videos as FF++ names a manipulated video: ``target_source`` (the target alone
    for items without a source)."""
    return f"{target}_{source}" if source else target


def reason_category(reason: str | None, target: str | None = None, source: str | None = None) -> str:
    """Group per-frame reasons (which name frame numbers) into a few countable causes.

    The item's own video ids become ``<target>`` and ``<source>`` (the report names the videos of each
    cause in its own column), so they are not confused with the frame numbers turned into ``N``.
    """
    if not reason:
        return "unknown"
    text = reason
    pair = f"{target}_{source}" if target and source else None
    for name, label in ((pair, "<target>_<source>"), (target, "<target>"), (source, "<source>")):
        if name:
            text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", label, text)
    text = re.sub(r"\bframes? \d+(-\d+)?\b", "frame(s) N", text)
    text = re.sub(r"\b\d+(-\d+)?\b", "N", text)
    return text if len(text) <= 160 else text[:157] + "..."


def stored_set_distance(store: QualityStore, swapped: np.ndarray, targets: np.ndarray) -> float:
    """The Fréchet distance of two feature sets, computed once per content and kept in the store.

    Why: with the official 2048-d Inception features ``sqrtm`` takes ~39 s per row on 2 cores, and
    a report is re-rendered from the store after every run, shard merge or ``mfsbench report``. The
    key is a sha256 of both arrays (dtype, shape, bytes), so any new or changed feature recomputes.
    """
    from mfsbench.quality.fid import set_distance

    digest = hashlib.sha256()
    for array in map(np.ascontiguousarray, (swapped, targets)):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    key = f"set_distance:{digest.hexdigest()}"
    cached = store.derived(key)
    if cached is not None:
        return float(cached)
    value = float(set_distance(swapped, targets))
    store.put_derived(key, value)
    return value


def collect(store: QualityStore, fingerprint: str, evalset: str) -> tuple[Header, list[Table2Row]]:
    """Aggregate every row of one (protocol, evaluator set) in the store."""
    run = store.meta(f"run:{fingerprint}:{evalset}") or {}
    evaluators = run.get("evaluators", {})
    identity_key = (evaluators.get("identity") or {}).get("key")
    features_key = (evaluators.get("features") or {}).get("key")
    gallery = store.db.execute(
        "SELECT COUNT(DISTINCT target) FROM outputs WHERE protocol=? AND row='__gallery__' AND evaluator=?",
        (fingerprint, identity_key or "")).fetchone()[0]
    missing = []
    for video, value in store.db.execute(
            "SELECT video, value FROM selections WHERE protocol=? AND role='gallery' ORDER BY video",
            (fingerprint,)):
        reason = json.loads(value).get("reason")
        if reason:
            missing.append((video, reason))
    done = store.db.execute(
        "SELECT COUNT(DISTINCT target || '_' || source) FROM items WHERE protocol=? AND evalset=?",
        (fingerprint, evalset)).fetchone()[0]
    substitutions = []
    for video, value in store.db.execute(
            "SELECT video, value FROM selections WHERE protocol=? AND role='target' ORDER BY video",
            (fingerprint,)):
        substitutions += [f"{video}: {p['reason']}" for p in json.loads(value)
                          if p["frame"] is not None and p["frame"] != p["requested"]]
    header = Header(run.get("protocol_id", "?"), fingerprint, evalset, run, int(gallery),
                    store.bad_videos(fingerprint), missing, int(done), substitutions)
    header.problems = run_problems(run)
    header.problems += found_while_decoding(store, fingerprint, evalset, header.problems)
    groups = group_map((run.get("identity_groups") or {}).get("groups", []))
    target_features = (store.outputs(fingerprint, TARGET_ROW, features_key, "features")
                       if features_key else {})
    rows = []
    for _fp, key, row_evalset, info in store.rows(fingerprint):
        if row_evalset != evalset:
            continue
        row = Table2Row(key, info["label"], info["kind"], info["model"], info.get("mode"),
                        info.get("weights", "-"), info.get("gmacs"), runtime=info.get("runtime"))
        for target, source, status, reason, ok, skipped in store.items(fingerprint, key, evalset):
            row.frames_ok += ok
            row.frames_skipped += skipped
            if status == "ok":
                row.items_ok += 1
            else:
                row.items_skipped += 1
                row.skip(reason, target, source, skipped)
        results = store.frame_results(fingerprint, key, evalset)
        for target, source, result in results:
            if result.status != "ok":
                row.skip(result.reason, target, source, 1)
        ok = [r for _t, _s, r in results if r.status == "ok"]
        rates = retrieval_rates([(t, s, r.top1_id) for t, s, r in results
                                 if r.status == "ok" and r.top1_id is not None], groups)
        cos = [r.cos for r in ok if r.cos is not None]
        pose = [r.pose_err for r in ok if r.pose_err is not None and np.isfinite(r.pose_err)]
        row.id_top1_pct, row.id_top1_grouped_pct = rates.top1_pct, rates.grouped_top1_pct
        row.target_retrieval_pct = rates.target_pct
        row.id_cos = float(np.mean(cos)) if cos else None
        row.pose_err = float(np.mean(pose)) if pose else None
        if features_key:
            swapped = store.outputs(fingerprint, key, features_key, "features")
            keys = sorted(k for k in swapped if (k[0], "", k[2]) in target_features)
            if len(keys) >= 2:
                a = np.stack([swapped[k] for k in keys])
                b = np.stack([target_features[(k[0], "", k[2])] for k in keys])
                row.fd, row.fd_n = stored_set_distance(store, a, b), len(keys)
        rows.append(row)
    return header, rows


def format_number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    rounded = round(value, digits)
    return f"{(rounded if rounded != 0 else 0.0):.{digits}f}"  # no "-0.00" for a distance of -1e-9


def _video_list(names: set[str], shown: int = 12) -> str:
    """The videos of one skip reason, sorted; past ``shown`` the rest are counted, not listed."""
    ordered = sorted(names)
    text = ", ".join(ordered[:shown])
    return text + (f" and {len(ordered) - shown} more" if len(ordered) > shown else "")


def _paper(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


#: What the two calibration rows measure (report notes; ``mfsbench.quality.plan.calibration_rows``).
CALIBRATION_NOTES = [
    "Calibration rows. `identity_oracle` pastes the source video's chosen frame (ArcFace-aligned, "
    "unblended) into each target frame; its gallery entry is another frame of the same source video, "
    "so its top-1 measures retrieval of a near-duplicate of the gallery face (on the mini tree the "
    "same photo, moved): the ceiling of a swap that carried the identity over perfectly, not a "
    "reachable score. `target_copy` is the retrieval floor: each target frame re-encoded as JPEG "
    "q75, so it returns the target (ID top-1 to the source ≈ 0, target retrieved ≈ 100 %), and its "
    "pose error and feature distance are the evaluators' own noise under a lossy re-encode of the "
    "same face (an unchanged copy would read 0 by construction). \"target retrieved\" is the share "
    "of queries whose top-1 is the target's own identity (group).",
    "",
]


def _retrieval_lines(header: Header) -> list[str]:
    """Header lines on the gallery and the identity groups the rates are computed with."""
    chance = header.chance_pct
    lines = [f"- ID gallery: {header.gallery_size} source identities, one held-out frame each"
             + (f" (a uniform random guess would score {chance:.2f} %; every target is in the gallery "
                "too, so a frame that keeps the target's identity retrieves the target, not chance)"
                if chance else "")]
    groups = header.run.get("identity_groups") or {}
    if groups.get("groups"):
        lines.append(f"- identity groups ({groups.get('source')}): {len(groups['groups'])} group(s) of "
                     "videos showing one person; grouped top-1 counts a retrieved group-mate of the "
                     "source as a hit")
    else:
        lines.append("- identity groups: none given (every video its own identity), so grouped top-1 = "
                     "video-level top-1; FF++ people who appear in several videos count as misses")
    return lines


def render_markdown(header: Header, rows: Sequence[Table2Row]) -> str:
    run = header.run
    lines = [f"# Table 2 reproduced: face-swap quality on FaceForensics++ ({header.protocol_id})"
             + (" — INCOMPLETE DATASET" if header.problems else ""), ""]
    lines += report_lines(header.problems)
    lines.append(f"- protocol: `{header.protocol_id}`, card fingerprint `{header.fingerprint}` "
                 f"(`mfsbench quality --protocol-card` prints it)")
    lines.append(f"- dataset: {run.get('dataset', '?')}, compression {run.get('compression', '?')}, "
                 f"subset `{run.get('subset', '?')}`, {run.get('pairs', '?')} target/source pairs, "
                 f"{header.pairs_done} of them in this store (a shard holds its share; merge the rest)")
    for metric in ("identity", "pose", "features"):
        ev = run.get("evaluators", {}).get(metric)
        if ev:
            sha = ev.get("sha256") or "none"
            lines.append(f"- {metric} evaluator: `{ev['name']}`, weights sha256 `{sha}`")
    for _metric, reason in sorted(run.get("disabled", {}).items()):
        lines.append(f"- disabled: {reason}")
    lines += _retrieval_lines(header)
    if header.substitutions:
        shown = "; ".join(header.substitutions[:10]) + (" ..." if len(header.substitutions) > 10 else "")
        lines.append(f"- no-face rule: {len(header.substitutions)} frame substitution(s): {shown}")
    for video, reason in header.gallery_missing:
        lines.append(f"- no gallery embedding for identity {video}: {reason}")
    for row in rows:
        if row.kind == "zoo":
            lines.append(f"- `{row.key}`: weights {row.weights}")
    for video, reason in header.bad_videos:
        lines.append(f"- unusable video {video} (counted, not fatal): {reason}")
    lines.append("")
    lines += markdown_lines(_display_frame(header, rows_frame(header, rows)))
    lines.append("")
    lines += CALIBRATION_NOTES
    lines.append("Paper figures are MobileFaceSwap's, as reported, measured with CosFace, Hopenet and FID on "
                 "the paper's own protocol; they compare with a row only when the same evaluators, "
                 "protocol and official checkpoints were used. Random-weight rows check the pipeline, "
                 "they are not results.")
    skipped = _skipped_frame(rows)
    if not skipped.empty:
        lines += ["", "## Frames skipped, by reason", "", *markdown_lines(skipped)]
    return "\n".join(lines) + "\n"


#: ``runtime``: what ran a swap row's frame stage (torch, onnxruntime); empty for a method row (no
#: network ran) and for rows cached before runtimes were recorded
CSV_FIELDS = ("row", "label", "kind", "model", "mode", "weights", "runtime", "protocol_id",
              "protocol_fingerprint",
              "identity_evaluator", "pose_evaluator", "features_evaluator", "id_retrieval_pct",
              "id_retrieval_grouped_pct", "target_retrieval_pct", "id_cos_mean",
              "pose_error", "feature_distance", "feature_distance_n", "frames_ok", "frames_skipped",
              "items_ok", "items_skipped", "gmacs", "paper_id", "paper_pose", "paper_fid", "paper_row",
              "dataset_problems")


def rows_frame(header: Header, rows: Sequence[Table2Row]) -> pd.DataFrame:
    """Table 2 as data: one line per row aggregated from the store, the CSV's columns, values as
    computed (floats, counts, None where a metric has no value); both the CSV and the markdown table
    are rendered from it."""
    pd = _pandas()
    evs = header.run.get("evaluators", {})
    names = {metric: (evs.get(metric) or {}).get("name", "") for metric in ("identity", "pose", "features")}
    frame = pd.DataFrame([vars(row) for row in rows], columns=[f.name for f in fields(Table2Row)],
                         dtype=object)
    papers = [row.paper for row in rows]

    def paper(attribute: str) -> list[Any]:
        return [None if p is None else getattr(p, attribute) for p in papers]

    def numbers(column: str | list[Any]) -> list[float | None]:
        values = frame[column] if isinstance(column, str) else column
        return [None if v is None else float(v) for v in values]

    table = pd.DataFrame({
        "row": frame["key"], "label": frame["label"], "kind": frame["kind"], "model": frame["model"],
        "mode": [m or "" for m in frame["mode"]], "weights": frame["weights"],
        "runtime": [r or "" for r in frame["runtime"]],
        "protocol_id": header.protocol_id, "protocol_fingerprint": header.fingerprint,
        "identity_evaluator": names["identity"], "pose_evaluator": names["pose"],
        "features_evaluator": names["features"],
        "id_retrieval_pct": numbers("id_top1_pct"),
        "id_retrieval_grouped_pct": numbers("id_top1_grouped_pct"),
        "target_retrieval_pct": numbers("target_retrieval_pct"), "id_cos_mean": numbers("id_cos"),
        "pose_error": numbers("pose_err"), "feature_distance": numbers("fd"),
        "feature_distance_n": frame["fd_n"], "frames_ok": frame["frames_ok"],
        "frames_skipped": frame["frames_skipped"], "items_ok": frame["items_ok"],
        "items_skipped": frame["items_skipped"], "gmacs": numbers("gmacs"),
        "paper_id": numbers(paper("id_retrieval")), "paper_pose": numbers(paper("pose")),
        "paper_fid": numbers(paper("fid")), "paper_row": [w or "" for w in paper("where")],
        "dataset_problems": len(header.problems),
    }, columns=list(CSV_FIELDS), index=range(len(rows)), dtype=object)
    return table


def _display_frame(header: Header, table: pd.DataFrame) -> pd.DataFrame:
    """The markdown table: :func:`rows_frame` with each figure formatted and labelled for reading."""
    pd = _pandas()

    def shown(column: str, digits: int = 2) -> list[str]:
        return [format_number(v, digits) for v in table[column]]

    def cited(column: str) -> list[str]:
        return [_paper(v) for v in table[column]]

    return pd.DataFrame({
        "Row": [f"{label} [`{key}`]" for label, key in zip(table["label"], table["row"], strict=True)],
        header.column("identity"): shown("id_retrieval_pct"),
        "ID top-1 grouped % ↑": shown("id_retrieval_grouped_pct"),
        "target retrieved %": shown("target_retrieval_pct"),
        "ID mean cos ↑": shown("id_cos_mean", 3),
        header.column("pose"): shown("pose_error"),
        header.column("features"): shown("feature_distance"),
        "N (FD/FID)": [str(v) for v in table["feature_distance_n"]],
        "frames ok": [str(v) for v in table["frames_ok"]],
        "frames skipped": [str(v) for v in table["frames_skipped"]],
        "paper Id (as reported)": cited("paper_id"),
        "paper Pose (as reported)": cited("paper_pose"),
        "paper FID (as reported)": cited("paper_fid"),
        "paper row": [w or "-" for w in table["paper_row"]],
    }, dtype=object)


def _skipped_frame(rows: Sequence[Table2Row]) -> pd.DataFrame:
    """Frames skipped per (row, reason), reasons sorted within a row, with the videos each names."""
    pd = _pandas()
    long = pd.DataFrame([(row.key, reason, n, _video_list(row.skipped_videos.get(reason, set())))
                         for row in rows for reason, n in row.skipped.items()],
                        columns=["key", "Reason", "Frames", "Videos (target_source)"], dtype=object)
    long = long[long["Frames"].astype(bool)].copy()
    long["order"] = long["key"].map({row.key: i for i, row in enumerate(rows)})
    long = long.sort_values(["order", "Reason"], kind="stable")
    long.insert(0, "Row", [f"`{key}`" for key in long["key"]])
    return long.drop(columns=["key", "order"]).reset_index(drop=True)


def render_csv(header: Header, rows: Sequence[Table2Row]) -> str:
    return csv_text(rows_frame(header, rows))


def _pandas() -> Any:
    """pandas, imported when a table is rendered (it costs ~0.5 s)."""
    import pandas

    return pandas


def plot_flops_vs_id(header: Header, rows: Sequence[Table2Row], path: Path) -> Path | None:
    """GMACs per frame (log) vs ID retrieval, one point per row with both; None when no row has both."""
    points = [r for r in rows if r.gmacs and r.id_top1_pct is not None]
    if not points:
        return None
    from mfsbench.report.plots import pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.scatter([], [], color="#2b6cb0", label="measured (this store)")
    axis.scatter([], [], color="#c05621", marker="x", label="paper (as reported)")
    for row in points:
        axis.scatter(row.gmacs, row.id_top1_pct, color="#2b6cb0")
        axis.annotate(row.label, (row.gmacs, row.id_top1_pct), fontsize=8, xytext=(4, 4),
                      textcoords="offset points")
        if row.paper and row.paper.id_retrieval is not None:
            axis.scatter(row.gmacs, row.paper.id_retrieval, color="#c05621", marker="x")
    axis.set_xscale("log")
    for row in rows:
        if row.kind in ("oracle", "copy") and row.id_top1_pct is not None:
            axis.axhline(row.id_top1_pct, ls="--", lw=0.8, color="#718096")
            axis.text(axis.get_xlim()[0], row.id_top1_pct, f" {row.label.split(' (')[0]}", fontsize=7,
                      va="bottom", color="#4a5568")
    axis.legend(loc="center right", fontsize=8)
    axis.set_xlabel("GMACs per output frame (paper convention; row's mode)")
    axis.set_ylabel(header.column("identity"))
    axis.set_title(f"FLOPs vs ID retrieval ({header.protocol_id}); x = paper figure (as reported)",
                   fontsize=9)
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_reports(store: QualityStore, out_dir: Path, fingerprint: str, evalset: str,
                  stem: str = "table2_quality") -> tuple[list[Path], list[str], Header, list[Table2Row]]:
    """Write ``<stem>.md``, ``.csv`` and ``.png``; returns paths, warnings, header and rows."""
    header, rows = collect(store, fingerprint, evalset)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    md.write_text(render_markdown(header, rows), encoding="utf-8")
    csv_path.write_text(render_csv(header, rows), encoding="utf-8")
    written, warnings = [md, csv_path], []
    try:
        png = plot_flops_vs_id(header, rows, out_dir / f"{stem}_flops_vs_id.png")
        if png is not None:
            written.append(png)
    except MissingDependencyError as exc:
        warnings.append(str(exc))
    return written, warnings, header, rows


def to_records(header: Header, rows: Sequence[Table2Row]) -> list[Record]:
    """One ``quality`` record per row (status skipped when no frame could be evaluated)."""
    records = []
    evs = header.run.get("evaluators", {})
    for row in rows:
        metrics: dict[str, float] = {"frames_ok": row.frames_ok, "frames_skipped": row.frames_skipped}
        for name, value in (("id_retrieval_pct", row.id_top1_pct),
                            ("id_retrieval_grouped_pct", row.id_top1_grouped_pct),
                            ("target_retrieval_pct", row.target_retrieval_pct), ("id_cos_mean", row.id_cos),
                            ("pose_error_deg", row.pose_err), ("feature_distance", row.fd)):
            if value is not None:
                metrics[name] = value
        if row.fd is not None:
            metrics["feature_distance_n"] = row.fd_n
        records.append(Record(
            command="quality", model=row.model, mode=row.mode, metrics=metrics,
            status="ok" if row.frames_ok else "skipped",
            error=None if row.frames_ok else "no frame evaluated: " + "; ".join(sorted(row.skipped)),
            info={"row": row.key, "label": row.label, "kind": row.kind, "weights": row.weights,
                  "random_weights": row.weights.startswith("random-weights"),
                  "protocol_id": header.protocol_id, "protocol_fingerprint": header.fingerprint,
                  "evaluators": {k: (v or {}).get("name") for k, v in evs.items()},
                  "gallery_size": header.gallery_size, "skipped": dict(row.skipped),
                  "dataset_complete": not header.problems, "dataset_problems": counts(header.problems),
                  "paper": None if row.paper is None else vars(row.paper), **_card_info(row.model),
                  **_runtime_info(row)},
        ))
    return records


def _runtime_info(row: Table2Row) -> dict[str, str]:
    """What ran a swap row's frame stage, as its plan recorded it (none for calibration and FF++ method
    rows, which run no network, nor for rows cached before runtimes were recorded)."""
    return {"runtime": row.runtime} if row.runtime else {}


def _card_info(model: str) -> dict[str, Any]:
    """A model card's row carries its card and licence id (issue 17: stamped into every record),
    read from the card file itself, so that re-rendering needs neither its weights nor the licence."""
    path = Path(model)
    if path.suffix != ".toml" or not path.is_file():
        return {}
    from mfsbench.cards.schema import parse_card, read_toml

    try:
        card = parse_card(read_toml(path), path)
    except MfsbenchError:
        return {"card": model}
    return {"card": model, "card_id": card.id, "license": card.license.id,
            "license_commercial": card.license.commercial}
