"""Tables 1 and 2 rendered from DataFrames (issue 19 item 5) print what the hand-written loops printed.

The expected texts below were produced by the row-loop implementation this one replaced, on records
chosen to reach every branch: a newer record replacing an older one (keeping its place), an error, a
cited row, a stage-only model, a NaN figure, a skipped mode, another convention, a non-flops record;
for Table 2, skipped frames, a paper row, NaN and -0 figures, a disabled evaluator, quoting.
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


# ---------------------------------------------------------------------------------------------- Table 2


def _table2_store() -> tuple[object, list]:
    from mfsbench.report import table2

    run = {"evaluators": {"identity": {"name": "cosface", "sha256": "ab"}, "pose": None,
                          "features": {"name": "fd_x"}}, "disabled": {"pose": "no hopenet"},
           "dataset": "mini", "pairs": 3}
    header = table2.Header("prot", "fp", "ev", run, 5, [("v1", "bad")], [("v2", "none")], 2, ["s1"])
    ours = table2.Table2Row("mobilefaceswap_224", "Ours", "zoo", "mobilefaceswap_224", "image", "sha", 8.07,
                            10, 2, 3, 1, 95.5, 96.0, 1.0, 0.81234, float("nan"), -1e-9, 4)
    ours.runtime = "onnxruntime"
    ours.skip("no face in frame 12", "000", "003", 2)
    ours.skip("decode error 000_003 frames 4-9", "000", "003", 1)
    ours.skip("no face in frame 13", "001", "004", 3)
    method = table2.Table2Row("ffpp:Deepfakes", "DF", "method", "deepfakes_64", None, "-", None)
    oracle = table2.Table2Row("test_x", 'T, "quoted"', "oracle", "x", "video", "random-weights:0", 2)
    oracle.skipped["zero"] = 0  # a reason that skipped nothing is not listed
    return header, [ours, method, oracle]


#: What the hand-written csv.writer / row loops printed for :func:`_table2_store`.
EXPECTED_TABLE2_CSV = (
    'row,label,kind,model,mode,weights,runtime,protocol_id,protocol_fingerprint,identity_eval'
    'uator,pose_evaluator,features_evaluator,id_retrieval_pct,id_retrieval_grouped_pc'
    't,target_retrieval_pct,id_cos_mean,pose_error,feature_distance,feature_distance_'
    'n,frames_ok,frames_skipped,items_ok,items_skipped,gmacs,paper_id,paper_pose,pape'
    'r_fid,paper_row,dataset_problems\n'
    'mobilefaceswap_224,Ours,zoo,mobilefaceswap_224,image,sha,onnxruntime,prot,fp,cosface,,fd_x,9'
    '5.5,96.0,1.0,0.81234,nan,-1e-09,4,10,2,3,1,8.07,95.98,1.32,6.79,"Table 2 row 12,'
    ' Ours (SimSwap teacher)",0\n'
    'ffpp:Deepfakes,DF,method,deepfakes_64,,-,,prot,fp,cosface,,fd_x,,,,,,,0,0,0,0,0,,,,,,0\n'
    'test_x,"T, ""quoted""",oracle,x,video,random-weights:0,,prot,fp,cosface,,fd_x,,,,'
    ',,,0,0,0,0,0,2.0,,,,,0\n'
)
EXPECTED_TABLE2_TABLES = [
    '| Row | ID retrieval % ↑ (cosface) | ID top-1 grouped % ↑ | target retrieved % |'
    ' ID mean cos ↑ | Pose error ↓ (disabled) | FD ↓ (fd_x, not FID) | N (FD/FID) | f'
    'rames ok | frames skipped | paper Id (as reported) | paper Pose (as reported) | '
    'paper FID (as reported) | paper row |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    '| Ours [`mobilefaceswap_224`] | 95.50 | 96.00 | 1.00 | 0.812 | nan | 0.00 | 4 | '
    '10 | 2 | 95.98 | 1.32 | 6.79 | Table 2 row 12, Ours (SimSwap teacher) |',
    '| DF [`ffpp:Deepfakes`] | - | - | - | - | - | - | 0 | 0 | 0 | - | - | - | - |',
    '| T, "quoted" [`test_x`] | - | - | - | - | - | - | 0 | 0 | 0 | - | - | - | - |',
    '| Row | Reason | Frames | Videos (target_source) |',
    '|---|---|---|---|',
    '| `mobilefaceswap_224` | decode error <target>_<source> frame(s) N | 1 | 000_003 |',
    '| `mobilefaceswap_224` | no face in frame(s) N | 5 | 000_003, 001_004 |',
]


def test_table2_from_frames_equals_the_row_loop_output() -> None:
    from mfsbench.report import table2

    header, rows = _table2_store()
    assert table2.render_csv(header, rows) == EXPECTED_TABLE2_CSV
    markdown = table2.render_markdown(header, rows)
    assert [line for line in markdown.splitlines() if line.startswith("|")] == EXPECTED_TABLE2_TABLES
    empty = table2.render_markdown(header, [])
    assert "## Frames skipped" not in empty and table2.render_csv(header, []).count("\n") == 1
