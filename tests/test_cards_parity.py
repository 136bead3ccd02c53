"""A card for the zoo student's own ONNX export runs its frame stage like the zoo entry (issue 17).

The student's frame stage is exported with one source identity injected, as video mode runs it (as
``swap --runtime onnxruntime`` exports it; :func:`export_student_card`), and a card points at that
file. On the same aligned face crop, the card path (the card's ONNX graph in ONNX Runtime, fed by
:class:`~mfsbench.swap.runners.OnnxCardRunner` from the card's normalisation) and the zoo path (the
torch frame network the swap pipeline builds) must agree within fp32 parity: 1e-4 on the network's
outputs, at most one 8-bit level on the decoded crop.

``benchmarks/bench_card_parity.py`` runs the same comparison on ``mobilefaceswap_224`` (also on the
deployed export), compares the counts, and goes through ``mfsbench swap`` end to end.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cards_fixtures import write_student_card
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

#: fp32 parity of the network output (values in [0, 1])
TOLERANCE = 1e-4

#: What a card adds to crop and paste as the zoo student does (``tests/test_cards_fit_mask.py``): the
#: zoo's 6-DoF least-squares fit with a zero border, and the fusion-mask output blended as ``paste_back``.
ZOO_PIPELINE = """[target.warp]
fit = "affine"
border = "zero"
[run.paste]
mask = ["output"]
output = "output_1"
"""


def export_student_card(runner: Any, name: str, folder: Path, *, deployed: bool = False,
                        zoo_pipeline: bool = False) -> Path:
    """Export ``runner``'s injected frame network (a :class:`~mfsbench.swap.runners.TorchRunner` after
    ``inject``: the model's frame stage with the runner's identity) and write a card for it; returns
    the card's path.

    ``deployed=False`` exports the network as written (unfolded batch norms, the zoo entry's own
    modules); ``deployed=True`` as ``mfsbench export`` and the
    device sweep do: the exact ``export_ready`` rewrites, then the exact optimiser, which change the
    work done (fewer MACs), never the outputs beyond rounding. ``zoo_pipeline=True`` adds
    :data:`ZOO_PIPELINE` (the zoo's affine fit and fusion-mask paste); without it the card crops and
    pastes with the schema's defaults (similarity fit, ``box`` mask).

    Why by hand and not ``mfsbench card init``: the draft needs a graph with an identity input, and
    the student's frame stage has none (its identity is injected as weights); the card says which
    normalisation the student takes (RGB in [0, 1]) and that its output is RGB in [0, 1].
    """
    from mfsbench.export.onnx import export_onnx
    from mfsbench.export.stages import FlatOutputs, export_ready

    # the network as the model defines it: the runner's own frame_net has its batch norms folded
    # (a swap-speed rewrite), which would drop their parameters from the count the card is compared on
    with torch.no_grad():
        written = runner.model.frame_stage(runner.identity)
    frame = copy.deepcopy(written).to(memory_format=torch.contiguous_format).eval()
    if hasattr(frame, "inplace_activations"):
        frame.inplace_activations = False  # the graph as written goes to ONNX
    size = runner.size
    example = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    module = export_ready(frame) if deployed else frame
    with torch.no_grad():
        outputs = module(example)
    count = len(outputs) if isinstance(outputs, tuple) else 1
    stem = f"{name}_{'deployed' if deployed else 'as_written'}{'_zoo_pipeline' if zoo_pipeline else ''}"
    path = folder / f"{stem}.onnx"
    export_onnx(FlatOutputs(module), [example], path, ["target"], [f"output_{i}" for i in range(count)],
                optimize=deployed)
    return write_student_card(folder / f"{stem}.toml", path, card_id=stem, size=size,
                              description=f"the zoo student's frame stage ({name}, seeded weights) with one "
                                          "source identity injected",
                              extra=ZOO_PIPELINE if zoo_pipeline else "")


def injected_student(face_photos: Any) -> tuple[Any, Any, np.ndarray]:
    """The tiny zoo student (seed 0) as the swap pipeline runs it, with biden's identity injected; the
    detector and obama2's photo (the target) beside it."""
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.runners import TorchRunner

    spec = get_spec("test_mobilefaceswap")
    torch.manual_seed(0)
    zoo = TorchRunner(spec, create_model(spec.name), spec.native_size)
    detector = get_detector("dlib")
    source, target = read_image(face_photos["biden"].path), read_image(face_photos["obama2"].path)
    zoo.inject(zoo.align_source(source, detector.detect(source)[0].landmarks5))
    return zoo, detector, target


def frame_outputs(result: Any) -> list[np.ndarray]:
    """A frame stage's raw outputs (torch tensors or ONNX Runtime arrays) as float32 arrays."""
    parts = result if isinstance(result, (tuple, list)) else [result]
    return [np.asarray(p.detach().numpy() if hasattr(p, "detach") else p, np.float32) for p in parts]


@pytest.mark.slow  # the ONNX export alone takes 5-12 s on 2 loaded cores
def test_card_frame_stage_equals_the_zoo_frame_stage_on_a_face_crop(face_photos, tmp_path: Path) -> None:
    from mfsbench.registry import get_spec
    from mfsbench.swap.runners import card_runner

    zoo, detector, target = injected_student(face_photos)
    card = export_student_card(zoo, "test_mobilefaceswap", tmp_path)

    card_spec = get_spec(str(card))
    runner = card_runner(card_spec, [], allow_random=True)  # the encoder runs, the graph ignores it
    crop, _ = zoo.align_target(target, detector.detect(target)[0].landmarks5)
    want = frame_outputs(zoo.run_frame(crop))
    got = frame_outputs(runner.run_frame(crop))
    assert [g.shape for g in got] == [w.shape for w in want] == [(1, 3, 64, 64), (1, 1, 64, 64)]
    errors = [float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)]
    assert max(errors) <= TOLERANCE, errors
    assert float(np.abs(want[0] - crop[:, :, ::-1].transpose(2, 0, 1)[None] / 255.0).max()) > 0.05  # it swaps
    card_crop, _ = runner.decode(runner.run_frame(crop))
    zoo_crop, _ = zoo.decode(zoo.run_frame(crop))
    assert np.abs(card_crop.astype(int) - zoo_crop.astype(int)).max() <= 1  # rounding at most
