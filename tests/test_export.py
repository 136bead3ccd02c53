"""Stage export to ONNX / OpenVINO / TFLite, each checked against torch in its own runtime.

The tiny ``test_mobilefaceswap`` covers every format and precision through the CLI in seconds; the
``slow`` test does the same for the real ``mobilefaceswap_224`` frame stage. int8 is calibrated on
real aligned faces from the registry photos (``tests/face_assets.py``), never on noise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mfsbench.records import read_records
from tests.face_assets import face_photos_fixture  # noqa: F401

TINY = "test_mobilefaceswap"
BACKENDS = {"onnx": "onnxscript", "openvino": "openvino", "tflite": "litert_torch"}
CALIBRATION_PHOTOS = ("obama", "obama2", "biden", "t1", "astronaut")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _needs(fmt: str, precision: str = "fp32") -> None:
    if not _has(BACKENDS[fmt]):
        pytest.skip(f"{fmt} backend not installed")
    if fmt == "tflite" and precision != "fp32" and not _has("ai_edge_quantizer"):
        pytest.skip("ai-edge-quantizer not installed")


def _calibration_paths(face_photos: dict) -> list[str]:
    if not _has("dlib"):
        pytest.skip("dlib (dlib-bin) is needed to detect faces for calibration")
    return [str(face_photos[name].path) for name in CALIBRATION_PHOTOS if name in face_photos]


def _only_record(out: Path):
    records = read_records(out / "records.jsonl")
    assert len(records) == 1
    return records[0]


@pytest.fixture(scope="module")
def tflite_conversions() -> list:
    """litert-torch fp32 conversions made in this module: (module repr, weights, inputs, file)."""
    return []


@pytest.fixture
def reused_tflite_fp32(tflite_conversions: list, tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny student's TFLite fp32, fp16 and int8 exports each start with litert-torch's fp32
    conversion of the same frame stage (same seeded weights, same example inputs): ~15 s on 2 cores
    each. The first one converts; a later one gets a copy of that file, only for a module of the same
    structure (repr), equal weights and equal example inputs; anything else converts."""
    import shutil

    import torch

    from mfsbench.export import tflite

    real_convert = tflite.convert_fp32

    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def convert(module, example_inputs, path: Path) -> None:
        state, inputs = module.state_dict(), dict(enumerate(example_inputs))
        for structure, weights, seen_inputs, file in tflite_conversions:
            if structure == repr(module) and same(weights, state) and same(seen_inputs, inputs):
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, path)
                return
        real_convert(module, example_inputs, path)
        kept = tmp_path_factory.mktemp("tflite-fp32") / "fp32.tflite"
        shutil.copyfile(path, kept)
        tflite_conversions.append((repr(module), {k: v.clone() for k, v in state.items()},
                                   {k: v.clone() for k, v in inputs.items()}, kept))

    monkeypatch.setattr(tflite, "convert_fp32", convert)


@pytest.mark.parametrize(
    ("fmt", "precision"),
    [("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "fp16"), ("tflite", "fp32"), ("tflite", "fp16")],
)
@pytest.mark.usefixtures("reused_tflite_fp32")
def test_tiny_frame_stage_exports_within_tolerance(run_cli, tmp_path, fmt, precision) -> None:
    _needs(fmt, precision)
    result = run_cli("export", "--model", TINY, "--format", fmt, "--precision", precision,
                        "--stage", "frame", "--out", str(tmp_path))
    assert result.code == 0, result.err
    record = _only_record(tmp_path)
    assert record.command == "export" and record.status == "ok" and record.stage == "frame"
    assert Path(record.info["path"]).is_file()
    assert record.info["output_names"] == ["output_0", "output_1"]  # swapped face, mask
    if precision == "fp32":
        assert record.metrics["max_abs_err"] <= 1e-4
    else:
        assert record.metrics["psnr_db"] >= 40.0


def test_tiny_identity_stage_exports_to_onnx(run_cli, tmp_path) -> None:
    _needs("onnx")
    result = run_cli("export", "--model", TINY, "--format", "onnx", "--stage", "identity",
                        "--out", str(tmp_path))
    assert result.code == 0, result.err
    record = _only_record(tmp_path)
    assert record.input_shapes == {"source": [1, 3, 112, 112]}
    assert record.metrics["max_abs_err"] <= 1e-4  # scaled by each kernel's peak


@pytest.mark.usefixtures("reused_tflite_fp32")
def test_tiny_int8_tflite_calibrated_on_real_faces(run_cli, tmp_path, face_photos) -> None:
    _needs("tflite", "int8")
    photos = _calibration_paths(face_photos)
    result = run_cli("export", "--model", TINY, "--format", "tflite", "--precision", "int8",
                        "--out", str(tmp_path), "--calibration", *photos)
    assert result.code == 0, result.err
    record = _only_record(tmp_path)
    assert record.metrics["psnr_db"] >= 30.0
    # audit A6: parity on face crops of photos the calibration never saw, and no noise inputs
    assert record.info["parity_inputs"].startswith("held out:"), record.info["parity_inputs"]
    assert record.info["weights"] == "random, seed 0"


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--format", "caffe"), "choose one of onnx, openvino, tflite"),
        (("--format", "onnx", "--precision", "fp16"), "choose one of fp32, int8"),
        (("--format", "tflite", "--precision", "fp8"), "choose one of fp32, fp16, int8"),
        (("--format", "tflite", "--precision", "int8"), "--calibration"),
        (("--format", "onnx", "--stage", "decoder"), "choose one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, flags, needle) -> None:
    result = run_cli("export", "--model", TINY, "--out", str(tmp_path), *flags)
    assert result.code == 2
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "records.jsonl").exists()


def test_missing_backend_names_the_extra_and_the_pip_package(monkeypatch) -> None:
    import builtins

    from mfsbench.errors import MissingDependencyError
    from mfsbench.optional import require

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(__import__("sys").modules, "openvino", raising=False)
    with pytest.raises(MissingDependencyError) as info:
        require("openvino", "openvino", "OpenVINO export")
    message = str(info.value)  # the extra comes from the installed metadata (pyproject), not a table
    assert "\n" not in message and "pip install 'mfsbench[export]'" in message
    assert "pip install openvino" in message


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "precision"), [("onnx", "fp32"), ("openvino", "fp32"),
                                                pytest.param("tflite", "int8", id="tflite-fp32+int8")])
def test_mobilefaceswap_224_frame_stage_exports(tmp_path, face_photos, monkeypatch, fmt: str,
                                                precision: str) -> None:
    """The real student frame network: fp32 parity ≤ 1e-4 in all three runtimes, int8 ≥ 30 dB on crops
    held out from calibration (one format per test: the TFLite conversions take most of a minute).

    TFLite int8 quantizes litert-torch's fp32 conversion of the same module: the tflite test exports fp32,
    checks it, and hands that very file to the int8 export instead of converting the network twice."""
    from mfsbench.export import get_exporter
    from mfsbench.export.parity import check_parity
    from mfsbench.export.stages import (
        face_crops_per_photo,
        frame_stage_inputs,
        random_inputs,
        stage_input_names,
        stage_module,
    )
    from mfsbench.faces.detectors import read_image
    from mfsbench.registry import create_model, get_spec

    _needs(fmt, precision)
    spec = get_spec("mobilefaceswap_224")
    module, example = stage_module(spec, create_model(spec.name), "frame", 224)
    names = stage_input_names(spec, "frame")
    converted = []
    if fmt == "tflite":
        from mfsbench.export import tflite

        real_convert = tflite.convert_fp32

        def converting(job_module, example_inputs, path: Path) -> None:
            converted.append((job_module, example_inputs))
            real_convert(job_module, example_inputs, path)

        monkeypatch.setattr(tflite, "convert_fp32", converting)
    artifact = get_exporter(fmt).export(module, example, tmp_path, "fp32", input_names=names, stem=fmt)
    parity = check_parity(module, artifact, [example, random_inputs([example[0].shape], seed=1)])
    assert parity.max_abs_err <= 1e-4, (fmt, parity)
    if precision == "fp32":
        return
    import shutil

    import torch

    ((fp32_module, fp32_inputs),), fp32_path = converted, artifact.path

    def converted_above(job_module, example_inputs, path: Path) -> None:
        """The int8 export's fp32 step: the file made above, after checking it converted this job's
        module (same class, same weights) on the same example inputs."""
        assert type(job_module) is type(fp32_module) and len(example_inputs) == len(fp32_inputs)
        assert all(torch.equal(a, b) for a, b in zip(example_inputs, fp32_inputs, strict=True))
        mine, theirs = job_module.state_dict(), fp32_module.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
        shutil.copyfile(fp32_path, path)

    monkeypatch.setattr(tflite, "convert_fp32", converted_above)
    photos = _calibration_paths(face_photos)
    per_photo = [c for c in face_crops_per_photo(spec, 224, [read_image(p) for p in photos]) if c]
    # audit A6: calibrate on every other photo and check parity on the photos held out
    calibration = frame_stage_inputs(spec, 224, [crop for crops in per_photo[0::2] for crop in crops])
    held_out = frame_stage_inputs(spec, 224, [crop for crops in per_photo[1::2] for crop in crops])
    assert len(calibration) >= 2 and len(held_out) >= 2
    artifact = get_exporter(fmt).export(
        module, example, tmp_path, precision, input_names=names, calibration=calibration, stem=precision
    )
    parity = check_parity(module, artifact, held_out)
    assert parity.psnr_db >= 30.0, parity


def test_export_ready_commutes_upsample_and_pointwise_exactly() -> None:
    """Up ×2 → 1×1 (narrowing) → BN becomes 1×1 → BN → up ×2: same output, original untouched."""
    import torch
    from torch import nn

    from mfsbench.export.stages import export_ready

    torch.manual_seed(0)
    head = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                         nn.Conv2d(16, 4, 1), nn.BatchNorm2d(4), nn.LeakyReLU(0.1),
                         nn.Conv2d(4, 4, 3, padding=1))
    widen = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(4, 8, 1))
    net = nn.Sequential(head, widen).eval()
    with torch.no_grad():
        head[2].running_mean.uniform_(-1, 1)
        head[2].running_var.uniform_(0.5, 2)
        x = torch.randn(2, 16, 9, 7)
        want = net(x)
        ready = export_ready(net)
        got = ready(x)
    assert [type(m).__name__ for m in ready[0]][:3] == ["Conv2d", "BatchNorm2d", "Upsample"]
    assert isinstance(ready[1][0], nn.Upsample)  # a widening 1×1 stays after the upsample
    assert isinstance(net[0][0], nn.Upsample)  # the original is not modified
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    plain = nn.Sequential(nn.Conv2d(3, 3, 1)).eval()
    assert export_ready(plain) is plain  # nothing to rewrite: no copy


@pytest.mark.parametrize("overrides", [{}, {"fusion_mask": False}, {"pointwise": "adain"}])
def test_student_deployment_form_is_exact_and_leaves_the_stage_alone(overrides: dict) -> None:
    """sigmoid(2z) for (1 + tanh z)/2 and the folded blend: same outputs, the torch stage untouched."""
    import dataclasses

    import torch
    from torch import nn

    from mfsbench.export.stages import export_ready
    from mfsbench.models.arcface import ArcFaceIRSE
    from mfsbench.models.mobilefaceswap import MobileFaceSwap
    from mfsbench.models.tiny import TINY_STUDENT

    torch.manual_seed(0)
    id_net = ArcFaceIRSE(layers=(1, 1, 1, 1), widths=(4, 8, 8, 16), embedding_dim=16)
    model = MobileFaceSwap(dataclasses.replace(TINY_STUDENT, **overrides), id_net).eval()
    source, target = torch.rand(1, 3, 112, 112), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        stage = model.frame_stage(model.identity_stage()(source)).eval()
        want = stage(target)
        ready = export_ready(stage)
        got = ready(target)
    assert ready is not stage and ready.deployment_form and not stage.deployment_form
    assert isinstance(ready.final[-1], nn.Sigmoid) and isinstance(stage.final[-1], nn.Tanh)
    assert isinstance(model.swap.final[-1], nn.Tanh)  # the shared head of the model is not touched
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=2e-6, rtol=1e-5)
    with torch.no_grad():
        ready.rewrite_for_deployment()  # idempotent: a second call must not scale the conv again
        torch.testing.assert_close(ready(target)[0], want[0], atol=2e-6, rtol=1e-5)
