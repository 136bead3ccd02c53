"""Android records say what ran (audit B1): delegate, precision, warm-up and parity, on loopback phones."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_runners.android.parse import benchmark_model_settings
from device_runners.android.runner import (
    NO_PARITY,
    ORT_WARMUP,
    PhoneModel,
    PhoneSettings,
    run_device,
    tool_command,
)
from mfsbench.errors import BadInputError
from mfsbench.records import Record
from mfsbench.report import device_android
from tests.loopback_adb import adb_server, loopback  # noqa: F401  (fixtures)

pytestmark = pytest.mark.adb
DATA = Path(__file__).parent / "data" / "adb"
PUBLIC_LOG = DATA / "sample_benchmark_model_public_log.txt"


def _gpu_benchmark_model(path: Path, *, honours_flag: bool = True) -> Path:
    """A stand-in Android ``benchmark_model`` with the GPU delegate: it prints its GPU parameters as the
    real tool does, precision loss allowed unless told ``--gpu_precision_loss_allowed=false`` (the
    tool's default is true); ``honours_flag=False`` prints [1] whatever it is told."""
    flag = ('  --gpu_precision_loss_allowed=false) loss=0;;\n'
            '  --gpu_precision_loss_allowed=true) loss=1;;\n') if honours_flag else ""
    path.write_text('#!/bin/sh\nloss=1\nfor a in "$@"; do case "$a" in\n'
                    '  --graph=*) graph="${a#--graph=}";;\n'
                    f'{flag}'
                    'esac; done\n'
                    '[ -f "$graph" ] || { echo "ERROR: Could not open $graph" >&2; exit 1; }\n'
                    'echo "INFO: Use gpu: [1]"\necho "INFO: Allow lower precision in gpu: [$loss]"\n'
                    'echo "INFO: GPU delegate created."\n'
                    'echo "INFO: Explicitly applied GPU delegate, and the model graph will be completely '
                    'executed by the delegate."\n'
                    f"cat <<'RECORDED'\n{PUBLIC_LOG.read_text()}\nRECORDED\n")
    path.chmod(0o755)
    return path


def _model(tmp_path: Path, name: str = "mobilefaceswap_224", suffix: str = ".tflite") -> PhoneModel:
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(b"model bytes " * 50)
    return PhoneModel(name, path, 224, {})


def _run(adb_server, device, binary: Path, model: PhoneModel, settings: PhoneSettings) -> Record:  # noqa: F811
    adb_server.connect(device.serial)
    (record,) = run_device(adb_server.for_serial(device.serial), [model], binary, settings)
    assert record.status == "ok", record.error
    return record


def test_tool_flags_say_the_precision_and_never_swap_the_delegate() -> None:
    def argv(tool: str, **kwargs: object) -> list[str]:
        return tool_command(tool, "/d/bm", "/d/m", PhoneSettings(**kwargs))  # type: ignore[arg-type]

    assert "--gpu_precision_loss_allowed=false" in argv("tflite", delegate="gpu")  # fp32 by default
    assert "--gpu_precision_loss_allowed=true" in argv("tflite", delegate="gpu", gpu_precision="fp16")
    assert not any("precision" in a for a in argv("tflite", delegate="xnnpack"))
    assert argv("ort", delegate="nnapi")[1:3] == ["-e", "nnapi"]
    with pytest.raises(BadInputError, match="no GPU execution provider"):
        argv("ort", delegate="gpu")  # was silently run as "-e cpu" and recorded as gpu
    with pytest.raises(BadInputError, match="applies only to --delegate gpu"):
        argv("tflite", delegate="xnnpack", gpu_precision="fp16")


def test_gpu_precision_recorded_from_what_the_tool_printed(adb_server, loopback, tmp_path: Path) -> None:  # noqa: F811
    device = loopback()
    binary = _gpu_benchmark_model(tmp_path / "benchmark_model")
    model = _model(tmp_path)
    fp32 = _run(adb_server, device, binary, model, PhoneSettings(delegate="gpu"))
    assert "--gpu_precision_loss_allowed=false" in fp32.info["device_command"]
    assert fp32.info["precision"] == fp32.info["precision_requested"] == "fp32"
    assert fp32.info["precision_source"] == "tool output (Allow lower precision in gpu: [0])"
    assert fp32.info["delegate"] == "gpu"
    assert fp32.info["delegate_applied"] == "GPU delegate, completely executed"
    assert "precision_mismatch" not in fp32.info
    fp16 = _run(adb_server, device, binary, model, PhoneSettings(delegate="gpu", gpu_precision="fp16"))
    assert "--gpu_precision_loss_allowed=true" in fp16.info["device_command"]
    assert fp16.info["precision"] == "fp16"
    # a build that ignores the flag: the record says what it printed, and that it was not what was asked
    stubborn = _gpu_benchmark_model(tmp_path / "benchmark_model_old", honours_flag=False)
    ran = _run(adb_server, device, stubborn, model, PhoneSettings(delegate="gpu"))
    assert ran.info["precision"] == "fp16" and ran.info["precision_requested"] == "fp32"
    assert ran.info["precision_mismatch"] == "requested fp32, the tool says it ran fp16"
    # CPU delegates: the fp32 export in fp32, as requested (benchmark_model prints no precision for them)
    cpu = _run(adb_server, device, replay(tmp_path), model, PhoneSettings(delegate="xnnpack"))
    assert cpu.info["precision"] == "fp32" and cpu.info["precision_source"].startswith("requested")
    assert cpu.info["warmup"] == 1 and "--warmup_runs=1" in cpu.info["device_command"]


def replay(tmp_path: Path) -> Path:
    from tests.loopback_adb import replay_binary

    return replay_binary(tmp_path / "benchmark_model_cpu", PUBLIC_LOG)


def test_ort_warmup_is_said_not_numbered(adb_server, loopback, tmp_path: Path) -> None:  # noqa: F811
    device = loopback()
    binary = tmp_path / "onnxruntime_perf_test"
    binary.write_text("#!/bin/sh\nfor last in \"$@\"; do :; done\n[ -f \"$last\" ] || exit 2\n"
                      f"cat <<'EOF'\n{(DATA / 'onnxruntime_perf_test.txt').read_text()}EOF\n")
    settings = PhoneSettings(delegate="cpu", warmup=5, cooldown_timeout_s=0.5, cooldown_poll_s=0.1)
    record = _run(adb_server, device, binary, _model(tmp_path, "simswap_224", ".onnx"), settings)
    assert record.info["warmup"] == ORT_WARMUP == "not supported by the tool"
    assert settings.describe(binary)["warmup"] == ORT_WARMUP  # what --resume compares
    assert record.info["device_command"].split()[1:3] == ["-e", "cpu"]
    assert record.info["precision"] == "fp32" and record.info["parity"] == NO_PARITY
    with pytest.raises(BadInputError, match="no GPU execution provider"):
        run_device(adb_server.for_serial(device.serial), [_model(tmp_path, "x", ".onnx")], binary,
                   PhoneSettings(delegate="gpu"))


def test_report_shows_each_cells_delegate_precision_and_parity(adb_server, loopback, tmp_path: Path) -> None:  # noqa: F811
    device = loopback()
    model = _model(tmp_path)
    gpu = _run(adb_server, device, _gpu_benchmark_model(tmp_path / "benchmark_model"), model,
               PhoneSettings(delegate="gpu", gpu_precision="fp16"))
    cpu = _run(adb_server, device, replay(tmp_path), model, PhoneSettings(delegate="xnnpack"))
    assert gpu.info["parity"] == cpu.info["parity"] == "not checked on device"
    # a record from before: "fp32" was written whatever the GPU delegate ran
    old = Record("device-android", "mobilefaceswap_256", info={"serial": "S", "tool": "tflite",
                                                                "delegate": "gpu", "precision": "fp32"})
    md = device_android.render_markdown([gpu, cpu, old])
    assert "(fp32)" not in md and "not compared" in md
    header, *rows = [line for line in md.splitlines() if line.startswith("| ")]
    names = [c.strip() for c in header.strip("|").split("|")]
    cells = {row.split("|")[1].strip() + "/" + row.split("|")[names.index("delegate") + 1].strip():
             dict(zip(names, (c.strip() for c in row.strip("|").split("|")), strict=True)) for row in rows}
    assert cells["mobilefaceswap_224/gpu"]["precision"] == "fp16"
    assert cells["mobilefaceswap_224/xnnpack"]["precision"] == "fp32"
    assert {c["parity"] for c in cells.values()} == {"not checked on device", "not recorded"}
    assert cells["mobilefaceswap_256/gpu"]["precision"] == "not recorded"  # a record from before
    csv_head = device_android.render_csv([gpu]).splitlines()[0].split(",")
    assert "precision" in csv_head and "parity" in csv_head and "warmup" in csv_head


def test_resume_tells_gpu_precisions_apart(tmp_path: Path) -> None:
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"tool")
    fp32, fp16 = (PhoneSettings(delegate="gpu", gpu_precision=p).describe(binary) for p in ("fp32", "fp16"))
    assert fp32 != fp16 and "--gpu-precision fp16" in PhoneSettings.options(fp16)


def test_benchmark_model_settings_both_spellings() -> None:
    old = ("Use gpu : [1]\nAllow lower precision in gpu : [1]\n"
           "Applied GPU delegate, and the model graph will be completely executed w/ the delegate.\n")
    new = ("INFO: Use gpu: [1]\nINFO: Allow lower precision in gpu: [0]\nINFO: Explicitly applied GPU "
           "delegate, and the model graph will be partially executed by the delegate w/ 3 kernels.\n")
    assert benchmark_model_settings(old) == {"gpu_precision_loss_allowed": True,
                                             "delegate_applied": "GPU delegate, completely executed"}
    assert benchmark_model_settings(new) == {"gpu_precision_loss_allowed": False,
                                             "delegate_applied": "GPU delegate, partially executed"}
    assert benchmark_model_settings(PUBLIC_LOG.read_text()) == {}  # a CPU run says neither


@pytest.mark.cli
def test_cli_refuses_ort_gpu_before_any_phone_work(adb_server, loopback, run_cli, tmp_path: Path) -> None:  # noqa: F811
    device = loopback()
    adb_server.connect(device.serial)
    ort = tmp_path / "onnxruntime_perf_test"
    ort.write_text("#!/bin/sh\nexit 0\n")
    out = tmp_path / "out"
    base = ("device", "--adb", "--serial", device.serial, "--models", "test_frame_only", "--out", str(out))
    refused = run_cli(*base, "--benchmark-binary", str(ort), "--delegate", "gpu")
    assert refused.code == 2
    (line,) = [x for x in refused.err.splitlines() if x.strip()]  # one clear line, nothing exported
    assert "--delegate gpu with onnxruntime_perf_test" in line and "no GPU execution provider" in line
    fp16 = run_cli(*base, "--benchmark-binary", str(replay(tmp_path)), "--gpu-precision", "fp16")
    assert fp16.code == 2 and "--gpu-precision fp16 applies only to --delegate gpu" in fp16.err
    assert device.commands == [] and not out.exists()  # the phone was never touched
