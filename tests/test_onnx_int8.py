"""Static int8 ONNX (QDQ, per-channel, calibrated on real faces) that ONNX Runtime runs as int8.

The tiny student's frame stage is calibrated on the faces of some registry photos and judged on the
faces of the *other* photos (held out), in the runtime that times it; the read-back must show the
convs ORT executes as ``QLinearConv`` (int8), not int8 weights dequantised into float convs.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mfsbench.errors import BadInputError
from tests.face_assets import face_photos_fixture  # noqa: F401

TINY = "test_mobilefaceswap"
#: the photos int8 is calibrated on (as in tests/test_export.py); every other photo is held out
CALIBRATION_PHOTOS = ("obama", "obama2", "biden", "t1", "astronaut")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize(("isa", "reduce"), [
    (["avx2", "fma"], True),  # x86 without VNNI: int16 pair sums saturate
    (["avx2", "fma", "avx512f", "avx512_vnni"], False),
    (["avx2", "fma", "avx_vnni"], False),
    (["asimd", "asimddp"], False),  # Arm accumulates in int32
    (None, True),  # unknown: the safe choice
])
def test_reduce_range_follows_the_cpu(isa, reduce) -> None:
    from mfsbench.export.onnx_int8 import reduce_range_for

    chosen, why = reduce_range_for(isa)
    assert chosen is reduce and why


def test_calibration_samples_must_match_the_stage_inputs() -> None:
    from mfsbench.export.onnx_int8 import calibration_feeds

    crop = np.zeros((3, 8, 8), np.float32)
    feeds = calibration_feeds([(crop,), (crop[None],)], ("target",))
    assert [f["target"].shape for f in feeds] == [(1, 3, 8, 8), (1, 3, 8, 8)]
    with pytest.raises(BadInputError, match="2 arrays"):
        calibration_feeds([(crop, crop)], ("target",))
    with pytest.raises(BadInputError, match="calibration"):
        calibration_feeds([], ("target",))


def test_tiny_student_ort_int8_runs_int8_within_30db_on_held_out_faces(tmp_path, face_photos) -> None:
    for module_name in ("onnxscript", "onnxruntime", "onnx"):
        if not _has(module_name):
            pytest.skip(f"{module_name} not installed")
    if not _has("dlib"):
        pytest.skip("dlib (dlib-bin) is needed to detect faces for calibration")
    import torch

    from mfsbench.device.runtimes.onnxruntime import OnnxRuntime
    from mfsbench.export import get_exporter
    from mfsbench.export.compare import compare_outputs
    from mfsbench.export.stages import (
        face_crops_per_photo,
        frame_stage_inputs,
        stage_input_names,
        stage_module,
    )
    from mfsbench.faces.detectors import read_image
    from mfsbench.registry import create_model, get_spec

    spec = get_spec(TINY)
    size = spec.native_size
    torch.manual_seed(0)
    module, example = stage_module(spec, create_model(spec.name), "frame", size)
    names = stage_input_names(spec, "frame")
    photos = sorted(face_photos)
    crops = face_crops_per_photo(spec, size, [read_image(face_photos[p].path) for p in photos])
    per_photo = dict(zip(photos, crops, strict=True))
    calibration = frame_stage_inputs(spec, size,
                                     [c for p in CALIBRATION_PHOTOS for c in per_photo.get(p, [])])
    held_out = frame_stage_inputs(spec, size, [c for p, crops in per_photo.items()
                                               if p not in CALIBRATION_PHOTOS for c in crops])
    assert len(calibration) >= 5 and len(held_out) >= 2
    assert not {a[0].tobytes() for a in calibration} & {a[0].tobytes() for a in held_out}

    artifact = get_exporter("onnx").export(module, example, tmp_path, "int8", input_names=names,
                                           calibration=calibration, stem="int8")
    done = artifact.details["quantization"]
    assert (done["format"], done["per_channel"], done["calibration_method"]) == ("QDQ", True, "MinMax")
    assert done["calibration_samples"] == len(calibration)
    assert done["activation_type"].startswith("uint8") and done["weight_type"].startswith("int8")

    prepared = OnnxRuntime(compute="int8").prepare(artifact.path, 2)
    info = prepared.info
    assert info["executed_precision"] == "int8", info
    assert set(info["op_precisions"]) == {"int8"}  # every conv ORT runs is an integer kernel
    assert info["op_precisions"]["int8"] == sum(
        isinstance(m, torch.nn.Conv2d) for m in module.modules())
    assert any(name.endswith("QLinearConv") for name in info["matrix_ops"])
    assert info["dequantized_weight_ops"] == 0

    want, got = [], []
    with torch.no_grad():
        for sample in held_out:
            arrays = [np.ascontiguousarray(a[None] if a.ndim == 3 else a, dtype=np.float32)
                      for a in sample]
            want.append([t.numpy() for t in module(*(torch.from_numpy(a) for a in arrays))])
            got.append(prepared.run(dict(zip(names, arrays, strict=True))))
    parity = compare_outputs(want, got, artifact.output_names, fmt="onnx", precision="int8",
                             runtime="onnxruntime")
    assert parity.failure() is None and parity.psnr_db >= 30.0, parity
    assert parity.psnr_db < 150.0  # an int8 model that matched torch bit for bit would be no int8
