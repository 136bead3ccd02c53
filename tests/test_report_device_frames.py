"""The device reports rendered from DataFrames (issue 19 item 5), and their host column.

The expected texts below were printed by the hand-written row loops that the frame code replaced
(commit 9519448), on records chosen to reach every branch: an older run left out, a re-measured cell
keeping its place, ok / unstable / too-few-runs / skipped / error cells, native yes / no / unknown,
held-out and in-sample parity crops, numbers small, large, integer and missing, a ``|`` in a phone
name, a phone record from before precision was recorded. One difference is deliberate: the markdown
header escapes the ``|`` of ``max |err|``, which split the column in every markdown renderer.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mfsbench.records import Record
from mfsbench.report import device, device_android

CPU = {"model": "AMD EPYC 7B13", "isa": ["avx2", "fma", "f16c"]}
ENV = {"cpu": CPU, "cpu_count": 2, "platform": "Linux-6.1-x86_64", "host": "alpha"}
PEAKS = {"fp32": {"macs_per_s": 8.25e10, "method": "torch matmul, best of 9"},
         "int8": {"macs_per_s": None, "reason": "no VNNI"}}
FULL = {"p50_ms": 12.3456, "min_ms": 11.0, "p90_ms": 140.7, "mean_ms": 12.9, "std_ms": 0.0042,
        "fps_p50": 81.0, "cv": 0.05, "runs": 30, "init_ms": 250.5, "first_run_ms": 31.25,
        "peak_rss_mb": 512.75,
        "max_abs_err": 3.2e-06, "gmacs": 0.0, "efficiency": 0.123, "efficiency_best": 0.15, "threads": 2.0}


def desk(model: str, backend: str, precision: str, *, run: str = "r2", status: str = "ok",
         error: str | None = None, metrics: dict | None = None, info: dict | None = None,
         env: dict | None = None, size: int = 64) -> Record:
    """One desktop cell as ``mfsbench device`` records it (the fields the report reads)."""
    base = {"backend": backend, "precision": precision, "size": size, "weights": "random, seed 0",
            "parity_inputs": "8 aligned crops", "peaks": PEAKS}
    return Record("device", model, stage="frame", mode="video", metrics=dict(metrics or {}),
                  info={**base, **(info or {})}, env=dict(env or ENV), run_id=run,
                  status=status, error=error)  # type: ignore[arg-type]


def desktop_records() -> list[Record]:
    return [
        desk("old_model", "onnxruntime", "fp32", run="r1", metrics={"p50_ms": 1.0}),
        desk("test_mobilefaceswap", "onnxruntime", "fp32", metrics={"p50_ms": 99.0, "runs": 3},
             info={"native": True, "executed_precision": "fp32"}),
        desk("test_mobilefaceswap", "openvino", "int8", metrics={**FULL, "psnr_db": 41.5, "unstable": 1.0},
             info={"native": False, "executed_precision": "int8", "gmacs_paper": 306,
                   "parity_crops": {"parity_crops": 8, "held_out": True},
                   "native_note": "no VNNI: two-step multiply-adds",
                   "peak_remeasured": {"was": 5e10, "now": 9e10}, "peak_precision": "int8"}),
        desk("test_mobilefaceswap", "torch-eager", "fp32", metrics={**FULL, "too_few_runs": 1.0},
             info={"executed_precision": "fp32", "parity_crops": {"parity_crops": 4, "held_out": False},
                   "op_profile": {"total_ms": 2.0, "tool": "torch", "runs": 5,
                                  "by_op_type": [["Conv", 1.5], ["Add", 0.5]],
                                  "top_nodes": [["conv1", "Conv", 0.9]]}}),
        desk("simswap_224", "litert", "fp16", status="skipped", error="no fp16 arithmetic | on this CPU",
             size=224),
        desk("test_mobilefaceswap", "onnxruntime", "fp32", metrics={**FULL, "p50_ms": 10.0},
             info={"native": True, "executed_precision": "fp32", "gmacs_paper": 1.25,
                   "parity_crops": {"parity_crops": 8, "held_out": True}}),
        desk("mobilefaceswap_224", "onnxruntime", "fp32", metrics={"p50_ms": 5.0, "threads": 2.0}, size=224,
             info={"card": "cards/x.toml", "license": "MIT", "license_commercial": True,
                   "parity_reference": "onnxruntime fp32", "identity_input": "seeded",
                   "macs_source": "the card", "op_profile_error": "boom"}),
        desk("simswap_224", "onnxruntime", "fp32", metrics={"p50_ms": 400.0}, size=224),
        desk("simswap_224", "benchmark_app", "fp32", status="error", error="parity 1e-2 > 1e-4", size=224),
        Record("flops", "test_mobilefaceswap", mode="image", metrics={"gmacs": 1.0}, info={"size": 64}),
    ]


def phone_info(serial: str, **info: object) -> dict:
    base = {"serial": serial, "tool": "tflite", "delegate": "xnnpack", "precision": "fp32",
            "precision_source": "benchmark_model", "threads": 4, "warmup": 2,
            "parity": "not checked on device",
            "device": {"model": "Pixel|7", "soc": "unavailable", "platform": "gs201"},
            "state_before": {"battery_temp_c": 31.2, "thermal_status": 0},
            "state_after": {"battery_temp_c": 33.0}}
    return base | info


def phone_records(env: dict | None = None, other: dict | None = None) -> list[Record]:
    env, other = dict(env or ENV), dict(other or env or ENV)
    return [
        Record("device-android", "mobilefaceswap_224", metrics={
            "p50_ms": 51.891, "mean_ms": 52.5, "fps_p50": 19.27, "fps_mean": 19.05, "init_ms": 119.515,
            "first_run_ms": 300.25, "runs": 50}, info=phone_info("S1"), env=env),
        Record("device-android", "simswap_224", status="error", error="device gone",
               info=phone_info("S1", delegate="gpu", precision="fp16"), env=env),
        Record("device-android", "mobilefaceswap_256", env=other,
               info={"serial": "S2", "tool": "tflite", "delegate": "gpu", "precision": "fp32"}),
        Record("device-android", "mobilefaceswap_224", metrics={"p50_ms": 50.0, "runs": 50, "fps_p50": 20.0},
               info=phone_info("S1", device={"model": "P", "hardware": "hw"}), env=env),
        Record("device", "x", info={"backend": "onnxruntime"}),
    ]


EXPECTED_TERMINAL = (
    'run  model                size  runtime        precision  executed  native  status        p50 ms'
    '  fastest ms  p90 ms  mean ms  std ms   FPS at p50  CV    runs  cold init ms  cold first ms  cel'
    'l peak RSS MB  max |err|  PSNR dB  parity crops  GMACs run  paper GFLOPs  eff. p50  eff. fastest'
    '\n'
    '---  -------------------  ----  -------------  ---------  --------  ------  ------------  ------'
    '  ----------  ------  -------  -------  ----------  ----  ----  ------------  -------------  ---'
    '-------------  ---------  -------  ------------  ---------  ------------  --------  ------------'
    '\n'
    'r2   test_mobilefaceswap  64    onnxruntime    fp32       fp32      yes     ok            10    '
    '  11          141     12.9     4.2e-03  81          0.05  30    250           31.2           513'
    '               3.2e-06    -        8             0          1.25          0.123     0.15\n'
    'r2   test_mobilefaceswap  64    openvino       int8       int8      no      unstable      12.3  '
    '  11          141     12.9     4.2e-03  81          0.05  30    250           31.2           513'
    '               3.2e-06    41.5     8 held out    0          306           0.123     0.15\n'
    'r2   test_mobilefaceswap  64    torch-eager    fp32       fp32      -       too few runs  12.3  '
    '  11          141     12.9     4.2e-03  81          0.05  30    250           31.2           513'
    '               3.2e-06    -        4             0          -             0.123     0.15\n'
    'r2   simswap_224          224   litert         fp16       -         -       skipped       -     '
    '  -           -       -        -        -           -     -     -             -              -  '
    '               -          -        -             -          -             -         -\n'
    'r2   mobilefaceswap_224   224   onnxruntime    fp32       -         -       ok            5     '
    '  -           -       -        -        -           -     -     -             -              -  '
    '               -          -        -             -          -             -         -\n'
    'r2   simswap_224          224   onnxruntime    fp32       -         -       ok            400   '
    '  -           -       -        -        -           -     -     -             -              -  '
    '               -          -        -             -          -             -         -\n'
    'r2   simswap_224          224   benchmark_app  fp32       -         -       error         -     '
    '  -           -       -        -        -           -     -     -             -              -  '
    '               -          -        -             -          -             -         -\n'
    '\n'
    'SimSwap / MobileFaceSwap video-mode latency (onnxruntime, fp32): 80× (paper, on a Dimensity 1100'
    ' phone: 40×)'
)
EXPECTED_CSV = (
    'run_id,model,size,backend,precision,executed_precision,native,status,p50_ms,min_ms,p90_ms,mean_m'
    's,std_ms,fps_p50,cv,runs,init_ms,first_run_ms,peak_rss_mb,max_abs_err,psnr_db,parity_crops,gmacs'
    ',gmacs_paper,efficiency,efficiency_best,error\n'
    'r2,test_mobilefaceswap,64,onnxruntime,fp32,fp32,yes,ok,10.0,11.0,140.7,12.9,0.0042,81.0,0.05,30,'
    '250.5,31.25,512.75,3.2e-06,,8,0.0,1.25,0.123,0.15,\n'
    'r2,test_mobilefaceswap,64,openvino,int8,int8,no,unstable,12.3456,11.0,140.7,12.9,0.0042,81.0,0.0'
    '5,30,250.5,31.25,512.75,3.2e-06,41.5,8 held out,0.0,306,0.123,0.15,\n'
    'r2,test_mobilefaceswap,64,torch-eager,fp32,fp32,,too few runs,12.3456,11.0,140.7,12.9,0.0042,81.'
    '0,0.05,30,250.5,31.25,512.75,3.2e-06,,4,0.0,,0.123,0.15,\n'
    'r2,simswap_224,224,litert,fp16,,,skipped,,,,,,,,,,,,,,,,,,,no fp16 arithmetic | on this CPU\n'
    'r2,mobilefaceswap_224,224,onnxruntime,fp32,,,ok,5.0,,,,,,,,,,,,,,,,,,\n'
    'r2,simswap_224,224,onnxruntime,fp32,,,ok,400.0,,,,,,,,,,,,,,,,,,\n'
    'r2,simswap_224,224,benchmark_app,fp32,,,error,,,,,,,,,,,,,,,,,,,parity 1e-2 > 1e-4\n'
)
EXPECTED_MARKDOWN_TABLE = (
    '| run | model | size | runtime | precision | executed | native | status | p50 ms | fastest ms | '
    'p90 ms | mean ms | std ms | FPS at p50 | CV | runs | cold init ms | cold first ms | cell peak RS'
    'S MB | max \\|err\\| | PSNR dB | parity crops | GMACs run | paper GFLOPs | eff. p50 | eff. fastest'
    ' |\n'
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---'
    '|---|---|\n'
    '| r2 | test_mobilefaceswap | 64 | onnxruntime | fp32 | fp32 | yes | ok | 10 | 11 | 141 | 12.9 | '
    '4.2e-03 | 81 | 0.05 | 30 | 250 | 31.2 | 513 | 3.2e-06 | - | 8 | 0 | 1.25 | 0.123 | 0.15 |\n'
    '| r2 | test_mobilefaceswap | 64 | openvino | int8 | int8 | no | unstable | 12.3 | 11 | 141 | 12.'
    '9 | 4.2e-03 | 81 | 0.05 | 30 | 250 | 31.2 | 513 | 3.2e-06 | 41.5 | 8 held out | 0 | 306 | 0.123 '
    '| 0.15 |\n'
    '| r2 | test_mobilefaceswap | 64 | torch-eager | fp32 | fp32 | - | too few runs | 12.3 | 11 | 141'
    ' | 12.9 | 4.2e-03 | 81 | 0.05 | 30 | 250 | 31.2 | 513 | 3.2e-06 | - | 4 | 0 | - | 0.123 | 0.15 |'
    '\n'
    '| r2 | simswap_224 | 224 | litert | fp16 | - | - | skipped | - | - | - | - | - | - | - | - | - |'
    ' - | - | - | - | - | - | - | - | - |\n'
    '| r2 | mobilefaceswap_224 | 224 | onnxruntime | fp32 | - | - | ok | 5 | - | - | - | - | - | - | '
    '- | - | - | - | - | - | - | - | - | - | - |\n'
    '| r2 | simswap_224 | 224 | onnxruntime | fp32 | - | - | ok | 400 | - | - | - | - | - | - | - | -'
    ' | - | - | - | - | - | - | - | - | - |\n'
    '| r2 | simswap_224 | 224 | benchmark_app | fp32 | - | - | error | - | - | - | - | - | - | - | - '
    '| - | - | - | - | - | - | - | - | - | - |\n'
)
EXPECTED_PHONE_CSV = (
    'model,serial,device,soc,tool,delegate,precision,threads,warmup,status,p50_ms,mean_ms,fps_p50,fps'
    '_mean,init_ms,first_run_ms,runs,battery_c_before,battery_c_after,thermal_before,parity,paper_fps'
    '_as_reported,error\n'
    'mobilefaceswap_224,S1,P,hw,tflite,xnnpack,fp32,4,2,ok,50.0,,20.0,,,,50,31.2,33.0,0,not checked o'
    'n device,25.6,\n'
    'simswap_224,S1,Pixel|7,gs201,tflite,gpu,fp16,4,2,error,,,,,,,,31.2,33.0,0,not checked on device,'
    '0.64,device gone\n'
    'mobilefaceswap_256,S2,,unavailable,tflite,gpu,not recorded,,,ok,,,,,,,,,,,not recorded,19.7,\n'
)
EXPECTED_PHONE_TABLE = (
    '| model | serial | device | soc | tool | delegate | precision | threads | warmup | status | p50_'
    'ms | mean_ms | fps_p50 | fps_mean | init_ms | first_run_ms | runs | battery_c_before | battery_c'
    '_after | thermal_before | parity | paper_fps_as_reported | error |\n'
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
    '| mobilefaceswap_224 | S1 | P | hw | tflite | xnnpack | fp32 | 4 | 2 | ok | 50 | - | 20 | - | - '
    '| - | 50 | 31.2 | 33 | 0 | not checked on device | 25.6 | - |\n'
    '| simswap_224 | S1 | Pixel/7 | gs201 | tflite | gpu | fp16 | 4 | 2 | error | - | - | - | - | - |'
    ' - | - | 31.2 | 33 | 0 | not checked on device | 0.64 | device gone |\n'
    '| mobilefaceswap_256 | S2 | - | unavailable | tflite | gpu | not recorded | - | - | ok | - | - |'
    ' - | - | - | - | - | - | - | - | not recorded | 19.7 | - |\n'
)


def test_desktop_report_from_the_frame_equals_the_row_loop_output() -> None:
    records = desktop_records()
    assert device.render_terminal(records) == EXPECTED_TERMINAL
    assert device.render_csv(records) == EXPECTED_CSV
    markdown = device.render_markdown(records)
    assert "\n".join(line for line in markdown.splitlines() if line.startswith("|")) + "\n" == \
        EXPECTED_MARKDOWN_TABLE
    assert "Machine: AMD EPYC 7B13 × 2 CPUs; ISA: avx2 fma f16c, no int8" in markdown
    assert "host" not in EXPECTED_CSV.splitlines()[0].split(",")  # one host: no host column
    # JSON: the CSV's rows, each value as recorded (an int stays an int, a missing value is null)
    rows = json.loads(device.render_json(records))
    table = list(csv.DictReader(io.StringIO(EXPECTED_CSV)))
    assert [list(row) for row in rows] == [list(row) for row in table]
    assert [row["model"] for row in rows] == [row["model"] for row in table]
    assert rows[1]["gmacs_paper"] == 306 and rows[1]["parity_crops"] == "8 held out"
    assert rows[0]["p50_ms"] == 10.0 and rows[0]["psnr_db"] is None and rows[3]["error"].startswith("no fp16")
    assert device.speed_ratios(records) == [("onnxruntime", "fp32", 80.0, True)]
    assert [r.info["backend"] for r in device.latest_cells(records)][:3] == ["onnxruntime", "openvino",
                                                                             "torch-eager"]
    assert device.newest_run(records) == "r2" and device.latest_cells(records, "r1")[0].model == "old_model"


def test_phone_report_from_the_frame_equals_the_row_loop_output() -> None:
    records = phone_records()
    assert device_android.render_csv(records) == EXPECTED_PHONE_CSV
    markdown = device_android.render_markdown(records)
    assert "\n".join(line for line in markdown.splitlines() if line.startswith("|")) + "\n" == \
        EXPECTED_PHONE_TABLE
    assert [r.metrics.get("p50_ms") for r in device_android.latest(records)] == [50.0, None, None]
    assert device_android.render_csv([]) == ",".join(device_android.COLUMNS) + "\n"


def _two_hosts() -> list[Record]:
    """One run whose cells ran on two machines (``device --engine ray``): alpha timed the student on
    both runtimes and the teacher on OpenVINO, beta the teacher on ONNX Runtime."""
    beta = {"cpu": {"model": "Intel Xeon 8480+", "isa": ["avx2", "avx512f", "amx_int8"]}, "cpu_count": 8,
            "platform": "Linux-5.15-x86_64", "host": "beta"}
    beta_peaks = {"fp32": {"macs_per_s": 3.0e11, "method": "torch matmul on beta"}}
    timed = {"p50_ms": 10.0, "threads": 2.0}
    return [
        desk("mobilefaceswap_224", "onnxruntime", "fp32", metrics=timed, size=224),
        desk("simswap_224", "onnxruntime", "fp32", metrics={"p50_ms": 300.0, "threads": 8.0}, size=224,
             env=beta, info={"peaks": beta_peaks}),
        desk("mobilefaceswap_224", "openvino", "fp32", metrics={"p50_ms": 8.0, "threads": 2.0}, size=224),
        desk("simswap_224", "openvino", "fp32", metrics={"p50_ms": 480.0, "threads": 2.0}, size=224),
    ]


def test_cells_from_several_hosts_get_a_host_column_and_a_machine_line_each() -> None:
    records = _two_hosts()
    terminal = device.render_terminal(records).splitlines()
    assert terminal[0].split()[:3] == ["run", "host", "model"]
    assert [line.split()[1] for line in terminal[2:6]] == ["alpha", "beta", "alpha", "alpha"]
    assert next(csv.reader(io.StringIO(device.render_csv(records))))[:3] == ["run_id", "host", "model"]
    hosts = [row["host"] for row in json.loads(device.render_json(records))]
    assert hosts == ["alpha", "beta", "alpha", "alpha"]
    markdown = device.render_markdown(records)
    assert "| r2 | beta | simswap_224 | 224 | onnxruntime | fp32 |" in markdown
    assert "its cells measured on 2 hosts" in markdown
    assert ("- Host alpha: Machine: AMD EPYC 7B13 × 2 CPUs; ISA: avx2 fma f16c, no int8 dot-product "
            "instructions (VNNI, AMX, dotprod, i8mm); Linux-6.1-x86_64; threads per cell: 2.") in markdown
    assert ("- Host beta: Machine: Intel Xeon 8480+ × 8 CPUs; ISA: avx2 avx512f amx_int8; "
            "Linux-5.15-x86_64; threads per cell: 8.") in markdown
    # each host's own peaks; a latency ratio pairs two cells of one machine only
    assert "## Peaks of each host" in markdown
    assert "- alpha, fp32: 82.5 GMAC/s" in markdown and "- beta, fp32: 300.0 GMAC/s" in markdown
    assert device.speed_ratios(records) == [("openvino", "fp32", 60.0, True)]
    assert "(openvino, fp32, host alpha): 60×" in markdown and "(onnxruntime, fp32" not in markdown


def test_one_host_or_none_recorded_prints_no_host_column() -> None:
    alone = [r for r in _two_hosts() if r.env["host"] == "alpha"]
    assert "host" not in device.render_terminal(alone).splitlines()[0].split()
    markdown = device.render_markdown(alone)
    assert "Host alpha" not in markdown and "## Peaks of this machine" in markdown
    assert device.speed_ratios(alone) == [("openvino", "fp32", 60.0, True)]
    alone[0].env.pop("host")  # one host and a cell that did not record one: still one machine
    markdown = device.render_markdown(alone)
    assert "Host " not in markdown and markdown.count("Machine: AMD EPYC 7B13") == 1
    assert "host" not in device.render_csv(alone).splitlines()[0].split(",")
    unrecorded = desktop_records()
    for record in unrecorded:
        record.env.pop("host", None)  # records from before hosts were recorded
    assert device.render_terminal(unrecorded) == EXPECTED_TERMINAL


def test_phones_on_several_hosts_get_a_host_column() -> None:
    beta = {**ENV, "host": "beta"}
    records = phone_records(ENV, beta)
    header = device_android.render_csv(records).splitlines()[0].split(",")
    assert header[:3] == ["model", "host", "serial"]
    rows = [line for line in device_android.render_markdown(records).splitlines() if line.startswith("| ")]
    assert [row.split("|")[2].strip() for row in rows[1:]] == ["alpha", "alpha", "beta"]
    assert device_android.render_csv(phone_records(ENV, ENV)) == EXPECTED_PHONE_CSV


def test_the_roofline_has_one_panel_per_host_each_under_its_own_peaks(tmp_path: Path) -> None:
    """A cluster sweep's cells are drawn against the peak of the machine each ran on, never one host's."""
    records = _two_hosts()
    for record in records:
        record.metrics.update(gmacs=0.3, fps_p50=1000.0 / record.metrics["p50_ms"])
    panels = device.roofline_panels(records)
    assert [(host, [r.info["backend"] for r in cells]) for host, cells, _ in panels] == [
        ("alpha", ["onnxruntime", "openvino", "openvino"]), ("beta", ["onnxruntime"])]
    assert panels[0][2] == PEAKS and panels[1][2]["fp32"]["macs_per_s"] == 3.0e11
    alpha = [r for r in records if r.env["host"] == "alpha"]
    assert [host for host, _, _ in device.roofline_panels(alpha)] == [None]  # one machine: no host title
    from PIL import Image

    for name, shown in (("two.png", records), ("one.png", alpha)):
        path = device.plot_roofline(shown, tmp_path / name)
        assert path is not None
    assert Image.open(tmp_path / "two.png").width > 1.8 * Image.open(tmp_path / "one.png").width
