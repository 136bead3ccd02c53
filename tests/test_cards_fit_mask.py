"""A card's alignment fit (``target.warp``) and graph-output paste mask (``run.paste``), issue 17.

The schema half runs on a hand-built two-output graph (a crop and a one-channel mask, identity baked
in): the new fields are accepted, defaults leave old cards as they were, and every bad value or an
output name the graph lacks is one line naming the field through ``mfsbench card check`` (rc 2).

The swap half exports the tiny zoo student (seeded weights, one identity injected) as a card with
``fit = "affine"``, ``border = "zero"`` and ``mask = ["output"]`` (the student's fusion-mask head) and
checks that ``mfsbench swap --model CARD`` gives the zoo pipeline's whole photo within one 8-bit level,
and that ``mfsbench card init`` drafts those fields for the export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli_in_process
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture

onnx = pytest.importorskip("onnx")

CARD = """schema = 1
id = "two_outputs"
family = "custom"
[license]
id = "MIT"
commercial = true
[files.swapper]
path = "two_outputs.onnx"
[io]
target = {{ name = "target", shape = [1, 3, 32, 32] }}
source = {{ name = "source", shape = [1, 512] }}
output = {{ index = 0, range = [0.0, 1.0], color = "RGB", denorm = false }}
[target]
template = "arcface_112_v2"
size = 32
{warp}
[identity]
kind = "embedding"
[run]
{paste}
"""


def _two_output_graph(path: Path, mask_shape: tuple[int, ...] = (1, 1, 32, 32)) -> Path:
    """``target`` 1×3×32×32 → ``swapped`` (1×3×32×32) and ``fusion_mask`` (sigmoid of a 1×1 conv)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)
               for name, shape in (("w_out", (3, 3, 1, 1)), ("w_mask", (mask_shape[1], 3, 1, 1)))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["target", "w_out"], ["c_out"]),
         helper.make_node("Sigmoid", ["c_out"], ["swapped"]),
         helper.make_node("Conv", ["target", "w_mask"], ["c_mask"]),
         helper.make_node("Sigmoid", ["c_mask"], ["fusion_mask"])],
        "two_outputs", [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("swapped", TensorProto.FLOAT, [1, 3, 32, 32]),
         helper.make_tensor_value_info("fusion_mask", TensorProto.FLOAT, list(mask_shape))], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _card(folder: Path, warp: str = "", paste: str = "", **graph: tuple[int, ...]) -> Path:
    _two_output_graph(folder / "two_outputs.onnx", **graph)
    card = folder / "two_outputs.toml"
    card.write_text(CARD.format(warp=warp, paste=paste), encoding="utf-8")
    return card


def _check(card: Path) -> tuple[int, str]:
    result = cli_in_process("card", "check", str(card))
    return result.code, (result.out + result.err).strip()


def test_defaults_keep_old_cards_as_they_were(tmp_path: Path) -> None:
    from mfsbench.cards.load import load_card

    card = load_card(_card(tmp_path, paste='paste = { mask = ["box"], blur = 0.3 }')).card
    assert (card.fit, card.border, card.paste_mask, card.paste_output) == ("similarity", "replicate",
                                                                          ("box",), None)
    assert _check(_card(tmp_path))[0] == 0


def test_affine_fit_and_output_mask_are_accepted(tmp_path: Path) -> None:
    from mfsbench.cards.load import load_card

    path = _card(tmp_path, 'warp = { fit = "affine", border = "zero" }',
                 'paste = { mask = ["output"], output = "fusion_mask" }')
    card = load_card(path).card
    assert (card.fit, card.border, card.paste_mask, card.paste_output) == ("affine", "zero", ("output",),
                                                                          "fusion_mask")
    code, text = _check(path)
    assert code == 0, text


@pytest.mark.parametrize(("warp", "paste", "field", "says"), [
    ('warp = { fit = "homography" }', "", "target.warp.fit", "choose one of similarity, affine"),
    ('warp = { border = "reflect" }', "", "target.warp.border", "choose one of replicate, zero"),
    ('warp = { fit = "affine", interp = "area" }', "", "target.warp.interp", "unknown field"),
    ("", 'paste = { mask = ["output"], output = "mask" }', "run.paste.output", "fusion_mask"),
    ("", 'paste = { mask = ["output"], output = "swapped" }', "run.paste.output", "swapped crop itself"),
    ("", 'paste = { mask = ["output"] }', "run.paste.output", "is missing"),
    ("", 'paste = { mask = ["box", "output"], output = "fusion_mask" }', "run.paste.mask", "alone"),
    ("", 'paste = { mask = ["output"], output = "fusion_mask", blur = 0.3 }', "run.paste.blur", "remove"),
    ("", 'paste = { mask = ["box"], output = "fusion_mask" }', "run.paste.output", "add mask"),
    ("", 'paste = { mask = ["output"], output = 1 }', "run.paste.output", "graph output"),
])
def test_bad_fit_or_mask_is_one_line_rc_2(tmp_path: Path, warp: str, paste: str, field: str,
                                          says: str) -> None:
    code, text = _check(_card(tmp_path, warp, paste))
    assert code == 2, text
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    assert f"`{field}`" in text and says in text, text


def test_a_mask_output_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = _card(tmp_path, "", 'paste = { mask = ["output"], output = "fusion_mask" }',
                 mask_shape=(1, 3, 32, 32))
    code, text = _check(path)
    assert code == 2 and "`run.paste.output`" in text and "N×1×32×32" in text, text


@pytest.mark.slow  # two ONNX exports of the tiny student and three swaps: ~20-40 s on 2 loaded cores
def test_zoo_pipeline_card_swaps_the_photo_as_the_zoo_does(face_photos, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from mfsbench.cards.load import load_card
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.pipeline import SwapPipeline
    from tests.test_cards_parity import export_student_card

    name = "test_mobilefaceswap"
    spec = get_spec(name)
    source_path, target_path = face_photos["biden"].path, face_photos["obama2"].path
    target = read_image(target_path)
    torch.manual_seed(0)
    detector = get_detector("dlib")
    zoo = SwapPipeline(spec, create_model(name), detector, spec.native_size)
    zoo.inject(read_image(source_path))
    want = zoo.swap_frame(target.copy())

    photos = {}
    for zoo_pipeline in (True, False):
        card = export_student_card(zoo.runner, name, tmp_path, zoo_pipeline=zoo_pipeline)
        out = tmp_path / f"card_{zoo_pipeline}.png"
        result = cli_in_process("swap", "--model", str(card), "--source", str(source_path), "--target",
                                str(target_path), "--out", str(out), "--records",
                                str(tmp_path / "swap.jsonl"), "--allow-random-weights")
        assert result.code == 0, result.err
        photos[zoo_pipeline] = read_image(out)
    # `card init` recognises the student's export and drafts the same fit and mask
    graph = tmp_path / f"{name}_as_written_zoo_pipeline.onnx"
    drafted = tmp_path / "drafted.toml"
    result = cli_in_process("card", "init", str(graph), "--out", str(drafted))
    assert result.code == 0, result.err
    assert _check(drafted)[0] == 0, _check(drafted)[1]
    card_spec = load_card(drafted).card
    assert (card_spec.family, card_spec.fit, card_spec.border, card_spec.paste_output) == (
        "mobilefaceswap", "affine", "zero", "output_1")
    assert card_spec.template == "arcface_112_v2" and card_spec.pixel.scale == 255.0

    diff = np.abs(photos[True].astype(int) - want.astype(int)).max(axis=2)
    assert int(diff.max()) <= 1, (int(diff.max()), int((diff > 1).sum()))
    assert int(np.abs(want.astype(int) - target.astype(int)).max()) > 10  # the zoo did swap the face
    # the schema's defaults (similarity fit, box mask) are a different pipeline: the photo is not the zoo's
    assert int(np.abs(photos[False].astype(int) - want.astype(int)).max()) > 1
