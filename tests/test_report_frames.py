"""Table 1 rendered from the records DataFrame (issue 19 item 5) prints what the hand-written loops printed.

The expected texts below were produced by the row-loop implementation this one replaced, on records
chosen to reach every branch: a newer record replacing an older one (keeping its place), an error, a
cited row, a stage-only model, a NaN figure, a skipped mode, another convention, a non-flops record.
"""

from __future__ import annotations

import csv
import io
import json

import pandas as pd

from mfsbench.records import Record
from mfsbench.report import table1
from mfsbench.report.frames import csv_text, fixed_width, json_text, markdown_lines
from mfsbench.results import records_frame


def _flops(model: str, *, mode: str | None = None, stage: str | None = None, status: str = "ok",
           convention: str | None = "paper", metrics: dict | None = None, info: dict | None = None,
           error: str | None = None, command: str = "flops") -> Record:
    return Record(command, model, stage=stage, mode=mode, convention=convention, status=status,
                  metrics=metrics or {}, info=info or {}, error=error)


BASE = {"display_name": "A net", "paper_row": "Row A", "provenance": "port", "size": 224,
        "paper": {"params_m": 10, "gflops": 2.5}, "params_definition": "all weights",
        "convention_description": "paper rules", "notes": ["a note"]}


def _records() -> list[Record]:
    return [
        _flops("a", stage="identity", info={**BASE, "unsupported_ops": {"aten::foo": 2}}),
        _flops("a", mode="image", metrics={"params_m": 9.87654, "gmacs": 2.0, "params_stored_m": 9.9},
               info=BASE),
        _flops("a", mode="video", status="error", error="boom, with comma", info={**BASE, "size": 256}),
        _flops("a", mode="image", metrics={"params_m": 9.5, "gmacs": float("nan")},
               info={k: v for k, v in BASE.items() if k != "size"}),
        _flops("b", stage="frame",
               info={"display_name": "B", "provenance": "reimplementation", "paper_row": "B row"}),
        _flops("c", mode="video", convention=None, status="skipped",
               info={"cited_only": True, "display_name": "C", "paper": {"params_m": 1.0}}),
        _flops("d", mode="image", convention="fvcore", metrics={"params_m": 0.5, "gmacs": 0.25},
               info={"display_name": "D"}),
        _flops("e", mode="image", metrics={}, info={"display_name": "E", "size": 64}),
        _flops("e", mode="video", status="skipped", error="no video", info={"display_name": "E"}),
        _flops("x", mode="image", command="device", metrics={"p50_ms": 3}),
    ]


EXPECTED_CSV = (
    'model,method,mode,size,provenance,convention,status,params_m,params_stored_m,gmacs,paper_p'
    'arams_m,paper_gflops,delta_params_pct,delta_gmacs_pct,error\n'
    'a,Row A,image,256,port,paper,ok,9.5,,nan,10,2.5,-5.0,nan,\n'
    'a,Row A,video,256,port,paper,error,,,,10,2.5,,,"boom, with comma"\n'
    'c,C,video,,,,skipped,,,,1.0,,,,\n'
    'd,D,image,,,fvcore,ok,0.5,,0.25,,,,,\n'
    'e,E,image,64,,paper,ok,,,,,,,,\n'
    'e,E,video,64,,paper,skipped,,,,,,,,no video\n'
)
EXPECTED_TERMINAL = (
    'Method  Model  Size  Kind              I Params (M)  paper  Δ      I FLOPs (G)  paper  Δ  '
    '    V Params (M)  paper  Δ  V FLOPs (G)  paper  Δ\n'
    '------  -----  ----  ----------------  ------------  -----  -----  -----------  -----  ---'
    '--  ------------  -----  -  -----------  -----  -\n'
    'Row A   a      256   port              9.50          10.0   -5.0%  -            2.50   +na'
    'n%  error         10.0   -  error        2.50   -\n'
    'B       b      -     reimplementation  not run       -      -      not run      -      -  '
    '    not run       -      -  not run      -      -\n'
    'C       c      -                       not run       -      -      not run      -      -  '
    '    cited         1.00   -  cited        -      -\n'
    'D       d      -                       0.50          -      -      0.25         -      -  '
    '    not run       -      -  not run      -      -\n'
    'E       e      64                      -             -      -      -            -      -  '
    '    -             -      -  -            -      -'
)
EXPECTED_MARKDOWN = (
    '# T\n'
    '\n'
    '| Method | Model | Size | Kind | I Params (M) | paper | Δ | I FLOPs (G) | paper | Δ | V Pa'
    'rams (M) | paper | Δ | V FLOPs (G) | paper | Δ |\n'
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
    '| Row A | a | 256 | port | 9.50 | 10.0 | -5.0% | - | 2.50 | +nan% | error | 10.0 | - | err'
    'or | 2.50 | - |\n'
    '| B | b | - | reimplementation | not run | - | - | not run | - | - | not run | - | - | not'
    ' run | - | - |\n'
    '| C | c | - |  | not run | - | - | not run | - | - | cited | 1.00 | - | cited | - | - |\n'
    '| D | d | - |  | 0.50 | - | - | 0.25 | - | - | not run | - | - | not run | - | - |\n'
    '| E | e | 64 |  | - | - | - | - | - | - | - | - | - | - | - | - |\n'
    '\n'
    '## Notes\n'
    '\n'
    '- Convention `paper`: paper rules.\n'
    '- FLOPs are fvcore "flops", i.e. multiply-accumulates, as in the paper; image mode = ident'
    'ity stage + frame stage, video mode = frame stage only (identity computed once per source)'
    '.\n'
    '- Params (image: all weights) — a.\n'
    '- Params (video: all weights) — a.\n'
    '- Ops with no fvcore handle, counted as 0 (recorded, not dropped): aten::foo ×2.\n'
    '- "cited": the paper\'s figures only; no public architecture exists to measure.\n'
    '- **a (video)**: error — boom, with comma\n'
    '- **a**: a note\n'
)


def test_table1_from_the_frame_equals_the_row_loop_output() -> None:
    rows = table1.latest_rows(_records())
    assert table1.render_csv(rows) == EXPECTED_CSV
    assert table1.render_terminal(rows) == EXPECTED_TERMINAL
    assert table1.render_markdown(rows, "T") == EXPECTED_MARKDOWN
    assert json.loads(table1.render_json(rows))[0]["paper_params_m"] == 10  # an int stays an int


def test_a_convention_keeps_its_own_rows_and_the_unconvened_ones() -> None:
    fvcore = table1.latest_rows(_records(), "fvcore")
    assert [r.model for r in fvcore] == ["c", "d"]
    paper = table1.latest_rows(_records(), "paper")
    assert [r.model for r in paper] == ["a", "b", "c", "e"]
    assert list(paper[0].cells) == ["image", "video"] and paper[0].cells["image"].metrics["params_m"] == 9.5
    assert table1.latest_rows([]) == [] and table1.render_csv([]) == ",".join(table1.CSV_FIELDS) + "\n"


def test_the_one_writer_matches_the_csv_module_and_keeps_recorded_numbers() -> None:
    frame = records_frame(_records(), exact_numbers=True)
    assert frame["info.paper.params_m"].tolist()[:2] == [10, 10]  # as recorded, not 10.0
    assert records_frame(_records())["info.paper.params_m"].dtype == "float64"
    small = pd.DataFrame({"model": ["a", "a", "b"], "error": [None, "boom, with comma", 'say "x"'],
                          "x": [2.0, None, float("nan")], "n": [306, None, 0.1 + 0.2]}, dtype=object)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([small.columns, *(["" if v is None else v for v in row]
                                       for row in small.itertuples(index=False, name=None))])
    assert csv_text(small) == buffer.getvalue()
    assert csv_text(small).splitlines()[1:] == ["a,,2.0,306", 'a,"boom, with comma",,',
                                                'b,"say ""x""",nan,0.30000000000000004']
    assert json.loads(json_text(small.head(2))) == [
        {"model": "a", "error": None, "x": 2.0, "n": 306},
        {"model": "a", "error": "boom, with comma", "x": None, "n": None},
    ]
    text = frame[["model", "status"]].head(2)
    assert markdown_lines(text) == ["| model | status |", "|---|---|", "| a | ok |", "| a | ok |"]
    assert fixed_width(text) == "model  status\n-----  ------\na      ok\na      ok"
