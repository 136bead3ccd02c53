"""`mfsbench swap` and `mfsbench quality` with a model card: the card's ONNX graph in ONNX Runtime.

The graphs are built at test time (:mod:`tests.cards_fixtures` and the small ones below) with
inswapper_128's names and shapes; the faces are real photos (:mod:`tests.face_assets`). A pass-through
swapper (output = its target input) pins alignment, normalisation, de-normalisation, colour order and
paste-back together: the pasted face must come back as the photo's own pixels.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mfsbench.cards import license as card_license
from mfsbench.records import read_records
from tests.cards_fixtures import (
    inswapper_like,
    no_consent,  # noqa: F401  (autouse fixture)
)
from tests.face_assets import FacePhoto, face_photos_fixture, make_video  # noqa: F401 - registers the fixture

cv2 = pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

pytestmark = pytest.mark.cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cards"




def _save(nodes: list, inputs: list, outputs: list, initializers: list, path: Path) -> Path:
    model = helper.make_model(helper.make_graph(nodes, path.stem, inputs, outputs, initializers),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def passthrough_swapper(path: Path, size: int = 128) -> Path:
    """``output = target + 0·sum(source)``: inswapper's interface, returns its target unchanged."""
    return _save(
        [helper.make_node("ReduceSum", ["source"], ["s"], keepdims=1),
         helper.make_node("Mul", ["s", "zero"], ["z"]),
         helper.make_node("Unsqueeze", ["z", "axes"], ["z4"]),
         helper.make_node("Add", ["target", "z4"], ["output"])],
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, size, size]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
        [numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"),
         numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
         numpy_helper.from_array(np.eye(512, dtype=np.float32), "emap")],
        path)


def tiny_encoder(path: Path) -> Path:
    """An ArcFace-shaped encoder (``input`` 1×3×112×112 → 1×512): channel means through a Gemm."""
    weight = np.random.default_rng(1).standard_normal((512, 3)).astype(np.float32)
    return _save(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("Gemm", ["flat", "w"], ["embedding"], transB=1)],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 512])],
        [numpy_helper.from_array(weight, "w")], path)


def _card(folder: Path, *, swapper: str = "inswapper_128.onnx", edits: dict[str, str] | None = None,
          encoder_file: bool = False) -> Path:
    """The shipped inswapper_128 example card pointed at ``swapper`` in ``folder`` (no sha256 line)."""
    text = (EXAMPLES / "inswapper_128.toml").read_text()
    text = text.replace("${MFS_MODELS}/inswapper_128.onnx", swapper)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("sha256"))
    if encoder_file:
        tiny_encoder(folder / "encoder.onnx")
        text = text.replace('encoder = "arcface_w600k_r50"', 'encoder = "encoder"')
        text += '\n\n[files.encoder]\npath = "encoder.onnx"\n'
    for old, new in (edits or {}).items():
        assert old in text, old
        text = text.replace(old, new, 1)
    card = folder / "card.toml"
    card.write_text(text)
    return card


def _swap(run_cli, card: Path, source: Path, target: Path, out: Path, *extra: str):
    return run_cli("swap", "--model", str(card), "--source", str(source), "--target", str(target),
                   "--out", str(out), "--records", str(out.parent / "r.jsonl"), *extra)


def test_image_swap_with_a_card_changes_only_the_face_and_records_the_card(run_cli, face_photos,
                                                                             tmp_path: Path) -> None:
    inswapper_like(tmp_path / "inswapper_128.onnx")
    card = _card(tmp_path)
    target, out = face_photos["obama2"].path, tmp_path / "out.png"
    result = _swap(run_cli, card, face_photos["biden"].path, target, out, "--allow-random-weights",
                   "--accept-license")
    assert result.code == 0, result.err
    assert "random weights" in result.err
    before, after = cv2.imread(str(target)), cv2.imread(str(out))
    assert before.shape == after.shape
    changed = np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 0
    assert 0.01 < changed.mean() < 0.5  # the face region changed, most of the photo did not
    ys, xs = np.nonzero(changed)
    assert xs.min() > 0 and ys.min() > 0 and ys.max() < before.shape[0] - 1  # pasted inside, not everywhere
    record = read_records(tmp_path / "r.jsonl")[0]
    info = record.info
    assert record.model == "inswapper_128" and record.input_shapes == {"frame": [1, 3, 128, 128]}
    assert info["runtime"] == "onnxruntime" and info["card"] == str(card)
    assert info["files"]["swapper"]["sha256"] == card_sha(tmp_path / "inswapper_128.onnx")
    assert info["license"] == "LicenseRef-InsightFace-NonCommercial" and info["license_commercial"] is False
    encoder = info["identity_encoder"]
    assert encoder["encoder"] == "arcface_irse101" and encoder["card_encoder"] == "arcface_w600k_r50"
    assert encoder["weights"] == "random-weights:0" and info["random_weights"] is True
    assert record.metrics["frames_swapped"] == 1 and record.metrics["frame_network_ms"] > 0


def card_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_passthrough_card_gives_the_photo_back(run_cli, face_photos, tmp_path: Path) -> None:
    """Template fit, ImageNet normalisation + denorm, RGB order and the box paste round-trip exactly
    enough that a swapper returning its input leaves the face as it was (only resampling error)."""
    passthrough_swapper(tmp_path / "pass.onnx")
    card = _card(tmp_path, swapper="pass.onnx", encoder_file=True, edits={
        "mean = [0.0, 0.0, 0.0], std = [1.0, 1.0, 1.0]":
            "mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225]",
        "denorm = false": "denorm = true",
    })
    card.write_text(card.read_text().replace("commercial = false", "commercial = true"))  # no consent needed
    target, out = face_photos["obama2"].path, tmp_path / "out.png"
    result = _swap(run_cli, card, face_photos["biden"].path, target, out)
    assert result.code == 0, result.err
    assert "random weights" not in result.err  # the card's own encoder file: no untrained network ran
    before, after = cv2.imread(str(target)).astype(int), cv2.imread(str(out)).astype(int)
    diff = np.abs(before - after)
    touched = diff.sum(axis=2) > 0
    assert touched.any()  # it did paste (bilinear resampling changes some pixels)
    # measured: median 2, p90 9 (a 128 px crop resampled twice); a card with denorm off gives 33/82 and
    # with the output's colour order swapped 11/96, so these bounds catch either mistake
    assert np.percentile(diff[touched], 50) <= 4 and np.percentile(diff[touched], 90) <= 20
    info = read_records(tmp_path / "r.jsonl")[0].info
    assert info["identity_encoder"]["runtime"] == "onnxruntime"
    assert info["identity_encoder"]["weights"]["sha256"] == card_sha(tmp_path / "encoder.onnx")


def test_the_identity_is_the_emap_projected_normalised_embedding(tmp_path: Path) -> None:
    """latent = normalize(normalize(emb) @ emap), emap read from the graph's last initializer."""
    from mfsbench.cards.load import load_card
    from mfsbench.swap.runners import IdentityEncoder, OnnxCardRunner

    inswapper_like(tmp_path / "inswapper_128.onnx")
    loaded = load_card(_card(tmp_path))
    embedding = np.random.default_rng(3).standard_normal(512).astype(np.float32) * 7.0

    class Fixed(IdentityEncoder):
        def align(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
            return image  # inject() is given an aligned crop: no alignment runs

        def embed(self, crop: np.ndarray) -> np.ndarray:
            return embedding

    runner = OnnxCardRunner(loaded, Fixed("fixed"))
    runner.inject(np.zeros((224, 224, 3), np.uint8))
    emap = numpy_helper.to_array(onnx.load(str(tmp_path / "inswapper_128.onnx")).graph.initializer[-1])
    latent = (embedding / np.linalg.norm(embedding)) @ emap
    np.testing.assert_allclose(runner.source[0], latent / np.linalg.norm(latent), rtol=1e-5, atol=1e-6)
    assert runner.source.shape == (1, 512) and runner.source.dtype == np.float32


@pytest.mark.slow
def test_video_swap_with_a_card_runs_the_identity_once(run_cli, face_photos, tmp_path: Path) -> None:
    inswapper_like(tmp_path / "inswapper_128.onnx")
    card = _card(tmp_path, encoder_file=True)
    target = make_video(face_photos["obama2"].path, tmp_path / "target.mp4", seconds=0.4, fps=25,
                        size=(320, 240))
    out = tmp_path / "out.mp4"
    result = _swap(run_cli, card, face_photos["biden"].path, target, out, "--accept-license")
    assert result.code == 0, result.err
    assert "identity" in result.out and "(1 calls)" in result.out.split("identity")[1].splitlines()[0]
    record = read_records(tmp_path / "r.jsonl")[0]
    assert record.mode == "video" and record.info["runtime"] == "onnxruntime"
    assert record.metrics["frames"] == 10 and record.metrics["frames_swapped"] == 10
    assert record.info["license"] == "LicenseRef-InsightFace-NonCommercial"
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 10


def _one_line_error(result) -> str:
    assert result.code == 2, (result.code, result.err)
    lines = [line for line in result.err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    return lines[0]


def test_sha256_mismatch_is_one_line_and_nothing_is_written(run_cli, face_photos, tmp_path: Path) -> None:
    inswapper_like(tmp_path / "inswapper_128.onnx")
    card = _card(tmp_path)
    card.write_text(card.read_text().replace('path = "inswapper_128.onnx"',
                                             'path = "inswapper_128.onnx"\nsha256 = "' + "0" * 64 + '"'))
    out = tmp_path / "out.png"
    line = _one_line_error(_swap(run_cli, card, face_photos["biden"].path, face_photos["obama2"].path, out,
                                 "--allow-random-weights", "--accept-license"))
    assert "does not match `files.swapper.sha256`" in line and str(card) in line
    assert not out.exists()


def test_non_commercial_card_needs_accept_license(run_cli, face_photos, tmp_path: Path) -> None:
    inswapper_like(tmp_path / "inswapper_128.onnx")
    card = _card(tmp_path)
    out = tmp_path / "out.png"
    line = _one_line_error(_swap(run_cli, card, face_photos["biden"].path, face_photos["obama2"].path, out,
                                 "--allow-random-weights"))
    assert "--accept-license" in line and "LicenseRef-InsightFace-NonCommercial" in line
    assert not out.exists()


def test_card_with_a_wrong_input_name_is_one_line(run_cli, face_photos, tmp_path: Path) -> None:
    inswapper_like(tmp_path / "inswapper_128.onnx")
    card = _card(tmp_path, edits={'target = { name = "target"': 'target = { name = "img"'})
    line = _one_line_error(_swap(run_cli, card, face_photos["biden"].path, face_photos["obama2"].path,
                                 tmp_path / "out.png", "--allow-random-weights", "--accept-license"))
    assert "`io.target.name`" in line and "'img'" in line


def test_card_without_encoder_weights_or_random_flag_is_one_line(run_cli, face_photos,
                                                                 tmp_path: Path) -> None:
    inswapper_like(tmp_path / "inswapper_128.onnx")
    card = _card(tmp_path)
    line = _one_line_error(_swap(run_cli, card, face_photos["biden"].path, face_photos["obama2"].path,
                                 tmp_path / "out.png", "--accept-license"))
    assert "--allow-random-weights" in line and "arcface" in line.lower()


@pytest.mark.slow
def test_quality_gives_a_card_a_table2_row(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mfsbench.quality.mini import build_mini_ffpp

    try:
        root = build_mini_ffpp(tmp_path / "tree", people=2, frames=6)
    except RuntimeError as exc:  # registry unreachable: no real faces, no test (never fake data)
        pytest.skip(f"face photos unavailable: {exc}")
    inswapper_like(tmp_path / "inswapper_128.onnx")
    card = _card(tmp_path)
    monkeypatch.setenv(card_license.ACCEPT_ENV, "LicenseRef-InsightFace-NonCommercial")
    out = tmp_path / "out"
    # the packaged protocol at 2 frames per video (its own fingerprint): one pair, both directions
    protocol = tmp_path / "ffpp_small.toml"
    packaged = Path(__file__).resolve().parents[1] / "mfsbench" / "quality" / "protocols" / "ffpp_v1.toml"
    text = packaged.read_text()
    assert "frames_per_video = 10" in text
    protocol.write_text(text.replace("frames_per_video = 10", "frames_per_video = 2"))
    result = run_cli("quality", "--dataset", "ffpp", "--protocol", str(protocol), "--root", str(root),
                     "--splits-dir", str(root / "splits"),
                     "--evaluators", "offline", "--out", str(out), "--no-progress", "--models", str(card),
                     "--methods", "none", "--allow-random-weights")
    assert result.code == 0, result.err
    with (out / "table2_quality.csv").open(encoding="utf-8") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    row = rows[str(card)]
    assert row["kind"] == "zoo" and int(row["frames_ok"]) > 0 and row["id_retrieval_pct"] != ""
    assert float(row["pose_error"]) > 0
    # the suite ArcFace's random weights, and the swapper's own digest (an edited ONNX is a new row)
    assert row["weights"].startswith("random-weights:0+card:") and row["runtime"] == "onnxruntime"
    (record,) = [r for r in read_records(out / "records.jsonl") if r.model == str(card)]
    assert record.info["card"] == str(card)
    assert record.info["license"] == "LicenseRef-InsightFace-NonCommercial"


def test_a_converter_projection_and_a_crop_through_the_simswap_card(tmp_path: Path) -> None:
    """SimSwap's card: the raw embedding through the converter graph, then L2; the target crop is
    ImageNet-normalised RGB; the swapper's [0, 1] RGB output comes back as BGR uint8."""
    from mfsbench.cards.load import load_card
    from mfsbench.swap.runners import IdentityEncoder, OnnxCardRunner
    from tests.cards_fixtures import converter, simswap_like

    simswap_like(tmp_path / "simswap_256.onnx")
    converter(tmp_path / "crossface_simswap.onnx")  # an identity matrix: output = input
    card = tmp_path / "simswap_256.toml"
    card.write_text((EXAMPLES / "simswap_256.toml").read_text().replace("${MFS_MODELS}/", ""))
    embedding = np.random.default_rng(5).standard_normal(512).astype(np.float32) * 3.0

    class Fixed(IdentityEncoder):
        def align(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
            return image  # inject() is given an aligned crop: no alignment runs

        def embed(self, crop: np.ndarray) -> np.ndarray:
            return embedding

    runner = OnnxCardRunner(load_card(card), Fixed("fixed"))
    runner.inject(np.zeros((224, 224, 3), np.uint8))
    np.testing.assert_allclose(runner.source[0], embedding / np.linalg.norm(embedding), rtol=1e-5, atol=1e-6)
    crop = np.zeros((256, 256, 3), np.uint8)
    crop[..., 2] = 255  # pure red in BGR
    tensor = runner._pixels(crop)
    np.testing.assert_allclose(tensor[0, :, 0, 0], (np.array([1.0, 0.0, 0.0]) - (0.485, 0.456, 0.406))
                               / np.array((0.229, 0.224, 0.225)), rtol=1e-5)
    swapped, mask = runner.decode(runner.run_frame(crop))
    assert swapped.shape == (256, 256, 3) and swapped.dtype == np.uint8 and mask.shape == (256, 256)
    assert mask[128, 128] == pytest.approx(1.0) and mask[0, 0] < 0.05  # the box mask: edges fade out
    raw = runner.run_frame(crop)[0][0].transpose(1, 2, 0)[:, :, ::-1]  # RGB → BGR
    np.testing.assert_array_equal(swapped, np.round(np.clip(raw, 0, 1) * 255).astype(np.uint8))


@pytest.mark.slow
def test_zoo_model_with_runtime_onnxruntime_matches_torch_and_reuses_its_export(
        run_cli, face_photos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MFSBENCH_SWAP_CACHE", str(tmp_path / "cache"))
    source, target = face_photos["biden"].path, face_photos["obama2"].path
    outs = {}
    torch = pytest.importorskip("torch")
    for runtime in ("torch", "onnxruntime", "onnxruntime"):
        torch.manual_seed(0)  # the same random weights each run (in-process CLI): one cache key
        out = tmp_path / f"{runtime}.png"
        result = run_cli("swap", "--model", "test_mobilefaceswap", "--source", str(source), "--target",
                         str(target), "--out", str(out), "--allow-random-weights", "--size", "224",
                         "--runtime", runtime, "--records", str(tmp_path / "r.jsonl"))
        assert result.code == 0, result.err
        outs[runtime] = cv2.imread(str(out)).astype(int)
    torch_run, first, again = read_records(tmp_path / "r.jsonl")
    assert torch_run.info["runtime"] == "torch"
    assert first.info["runtime"] == again.info["runtime"] == "onnxruntime"
    assert first.info["onnx_exports"] == 1 and again.info["onnx_exports"] == 0  # the cached export
    assert first.info["frame_stage_onnx"] == again.info["frame_stage_onnx"]
    assert Path(first.info["frame_stage_onnx"]).parent == tmp_path / "cache"
    assert first.info["parity_max_abs"] < 1e-4
    assert np.abs(outs["torch"] - outs["onnxruntime"]).max() <= 1  # fp32 parity, rounding at most
    assert np.abs(outs["torch"] - cv2.imread(str(target)).astype(int)).max() > 10  # it did swap


def test_an_image_identity_card_feeds_the_aligned_source_crop(tmp_path: Path) -> None:
    """``identity.kind = "image"``: no encoder; the source crop, normalised like the target, is the
    graph's source input on every frame."""
    from mfsbench.swap.runners import card_runner

    _save([helper.make_node("Add", ["target", "source"], ["sum"]),
           helper.make_node("Mul", ["sum", "half"], ["output"])],
          [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
           helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 3, 128, 128])],
          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
          [numpy_helper.from_array(np.array(0.5, np.float32), "half")], tmp_path / "blend.onnx")
    card = _card(tmp_path, swapper="blend.onnx", edits={
        'source = { name = "source", shape = [1, 512], dtype = "float32" }':
            'source = { name = "source", shape = [1, 3, 128, 128], dtype = "float32" }',
        'kind = "embedding"': 'kind = "image"',
        'projection = { kind = "initializer", index = -1 }': "",
    })
    card_license.accept_licenses()
    from mfsbench.registry import get_spec

    spec = get_spec(str(card))
    assert spec.stage_names == ("frame",)  # no separable identity stage
    runner = card_runner(spec, [], allow_random=False)
    source = np.full((128, 128, 3), 200, np.uint8)
    runner.inject(runner.align_source(source, runner.points))  # landmarks on the template: the crop itself
    swapped, _ = runner.decode(runner.run_frame(np.full((128, 128, 3), 100, np.uint8)))
    assert np.abs(swapped.astype(int) - 150).max() <= 1  # (target + source) / 2
    assert runner.describe()["identity_kind"] == "image" and "identity_encoder" not in runner.describe()
