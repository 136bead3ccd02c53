"""Write every report that a set of records supports; used by ``flops``, ``quality`` and ``report``.

The commands call the same functions over the same records, so re-rendering ``reports/`` from the
JSONL store gives byte-identical markdown and CSV. Table 2 (quality) is the one report that records
alone cannot give: it is aggregated from the quality cache (every frame's result), so ``report``
re-renders it from the caches it finds and says in one line when a cache is missing.
A re-render never appends a record that the store already holds (:func:`unrecorded`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from mfsbench.errors import MissingDependencyError
from mfsbench.records import Record
from mfsbench.report import device, device_android, table1
from mfsbench.report.plots import plot_complexity


def table1_stem(convention: str) -> str:
    """``table1_complexity`` for the paper convention, suffixed by the convention otherwise."""
    return "table1_complexity" if convention == "paper" else f"table1_complexity_{convention}"


def render_reports(records: Sequence[Record], out_dir: Path, *,
                   quality_caches: Sequence[Path] | None = None) -> tuple[list[Path], list[str]]:
    """Table 1 for every convention present, the desktop and phone device reports and, when
    ``quality_caches`` is given (``report`` gives it, ``flops`` does not), Table 2 for every quality
    run the records hold (:func:`render_quality`).

    Returns the written paths and warnings.
    """
    written: list[Path] = []
    warnings: list[str] = []
    for convention in table1.conventions_in(records):
        rows = table1.latest_rows(records, convention)
        if not rows:
            continue
        stem = out_dir / table1_stem(convention)
        title = f"Table 1 reproduced: parameters and FLOPs ({convention} convention)"
        md = stem.with_suffix(".md")
        md.write_text(table1.render_markdown(rows, title), encoding="utf-8")
        csv_path = stem.with_suffix(".csv")
        csv_path.write_text(table1.render_csv(rows), encoding="utf-8")
        written += [md, csv_path]
        try:
            written.append(plot_complexity(rows, stem.with_suffix(".png"), convention))
        except MissingDependencyError as exc:
            warnings.append(str(exc))
    written += device.write_reports(records, out_dir)
    written += device_android.write_reports(records, out_dir)
    if quality_caches is not None:
        more, notes = render_quality(records, out_dir, quality_caches)
        written += more
        warnings += notes
    return written, warnings


def _content(record: Record) -> str:
    """What a record says, without when, where and in which run it was written."""
    fields = {k: v for k, v in vars(record).items() if k not in ("env", "run_id", "created")}
    return json.dumps(fields, sort_keys=True, default=str)


def unrecorded(stored: Iterable[Record], records: Sequence[Record]) -> list[Record]:
    """``records`` less those saying exactly what the store already says (a re-render of the same
    table: ``quality`` over a finished cache, ``--merge`` of shards already merged).

    A record is dropped when a stored record has the same content (command, model, mode, metrics,
    status, info; not its run id, time or environment); a changed figure is a new record.
    """
    seen = {_content(record) for record in stored}
    return [record for record in records if _content(record) not in seen]


def quality_stem(cache: Path) -> str:
    """The report stem ``quality`` gives a cache's table: ``table2_quality``, or
    ``table2_quality_shard-i-of-n`` for a shard's own cache (``quality_cache.shard-i-of-n.sqlite``)."""
    name = cache.name
    if name.startswith("quality_cache.shard-") and name.endswith(".sqlite"):
        return "table2_quality_" + name[len("quality_cache."):-len(".sqlite")]
    return "table2_quality"


def find_quality_caches(records: Sequence[Record], out_dir: Path, given: Sequence[Path] = ()) -> list[Path]:
    """The caches a quality re-render may read: those given, ``OUT/quality_cache*.sqlite``, and the
    ``--cache`` files the records' pipeline entries name; each once, existing files only."""
    named = [Path(str(r.info["cache"])) for r in records
             if r.command == "quality" and r.model == "pipeline" and r.info.get("cache")]
    found: dict[Path, Path] = {}
    for path in [*given, *sorted(out_dir.glob("quality_cache*.sqlite")), *named]:
        if path.is_file():
            found.setdefault(path.resolve(), path)
    return list(found.values())


def render_quality(records: Sequence[Record], out_dir: Path,
                   caches: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Table 2 for each quality run the records hold, re-aggregated from the cache that holds it.

    A cache's runs whose protocol fingerprint appears in the records are rendered, newest (by its
    last record) under the cache's stem and older ones numbered after it, as ``quality --merge``
    does. Nothing is appended to the records. A fingerprint found in no cache gives one warning:
    its Table 2 cannot be re-rendered from records alone.
    """
    order: dict[str, int] = {}
    for index, record in enumerate(records):
        fingerprint = record.info.get("protocol_fingerprint") if record.command == "quality" else None
        if fingerprint:
            order[str(fingerprint)] = index
    if not order:
        return [], []
    from mfsbench.quality.store import QualityStore
    from mfsbench.report import table2

    written: list[Path] = []
    warnings: list[str] = []
    rendered: set[tuple[str, str]] = set()
    stems: set[str] = set()
    for cache in caches:
        with QualityStore(cache) as store:
            runs = [tuple(key.split(":", 2)[1:]) for (key,) in
                    store.db.execute("SELECT key FROM meta WHERE key LIKE 'run:%'")]
            runs = sorted((run for run in runs if run[0] in order and run not in rendered),
                          key=lambda run: -order[run[0]])
            base = quality_stem(cache)
            for fingerprint, evalset in runs:
                stem = next(s for n in range(len(stems) + 1)
                            if (s := base if n == 0 else f"{base}_{n}") not in stems)
                paths, notes, _header, _rows = table2.write_reports(store, out_dir, fingerprint, evalset,
                                                                    stem)
                written += paths
                warnings += notes
                rendered.add((fingerprint, evalset))
                stems.add(stem)
    missing = [fingerprint for fingerprint in order if all(run[0] != fingerprint for run in rendered)]
    if missing:
        warnings.append(
            f"quality records of protocol fingerprint {', '.join(f[:12] for f in missing)} not re-rendered: "
            f"Table 2 is aggregated from the quality cache, not from records alone, and no cache holds it "
            f"({out_dir}/quality_cache*.sqlite or --cache FILE)")
    return written, warnings
