"""TorchScript cards (issue 17 item 1): converted to ONNX once, checked against the archive, cached.

A small scripted module with inswapper_128's interface (target 1×3×128×128, source 1×512) is written
at test time; its counts are the hand-derived ones of :func:`tests.cards_fixtures.inswapper_like`'s
graph (same layers, no emap). The slow test traces the zoo student's frame stage, as a user would
save their own student, and holds the card path to the zoo's outputs and counts.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mfsbench.cards.load import load_card
from mfsbench.records import read_records
from tests.cards_fixtures import (
    INSWAPPER_LIKE_MACS,
    INSWAPPER_LIKE_PARAMS,
    card_error,
    isolated_fixture,  # noqa: F401  (autouse: licence consent cleared, derived files under the test)
    write_student_card,
)
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

#: the inswapper-like graph's params without its int64 axes constant (none in the export) or emap
SCRIPTED_PARAMS = INSWAPPER_LIKE_PARAMS


class InswapperLike(torch.nn.Module):
    """The layers of ``cards_fixtures._swapper(128)``: conv 3→8 3×3, Gemm 512→8 added per channel,
    ReLU, conv 8→3 1×1, sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.style = torch.nn.Linear(512, 8)
        self.conv2 = torch.nn.Conv2d(8, 3, 1)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        mixed = self.conv1(target) + self.style(source)[:, :, None, None]
        return torch.sigmoid(self.conv2(torch.relu(mixed)))


class ThreeInputs(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return a + b.mean() + c.mean()


CARD = """schema = 1
id = "scripted_swapper"
family = "inswapper"
format = "torchscript"
[license]
id = "MIT"
commercial = true
[files.swapper]
path = "{file}"
[io]
target = {{ name = "target", shape = [1, 3, 128, 128] }}
source = {{ name = "source", shape = [1, 512] }}
output = {{ index = 0, range = [0.0, 1.0], color = "RGB" }}
[target]
template = "arcface_128"
size = 128
[identity]
kind = "embedding"
encoder = "arcface_w600k_r50"
"""


def _scripted(folder: Path, module: torch.nn.Module, name: str = "swapper.pt") -> Path:
    torch.manual_seed(0)
    path = folder / name
    torch.jit.script(module).save(str(path))
    return path


def _card(folder: Path, file: str = "swapper.pt") -> Path:
    card = folder / "scripted.toml"
    card.write_text(CARD.format(file=file), encoding="utf-8")
    return card


def test_converted_once_checked_and_cached(tmp_path: Path, isolated: Path) -> None:
    archive = _scripted(tmp_path, InswapperLike())
    loaded = load_card(_card(tmp_path))
    made = loaded.derived
    assert made is not None and made.path.is_relative_to(isolated) and made.path.suffix == ".onnx"
    assert loaded.swapper_path == made.path and loaded.paths["swapper"] == archive
    assert made.details["parity_max_abs"] <= 1e-4 and made.details["cache"].startswith("written")
    assert "TorchScript exporter" in made.details["converter"]
    # the graph is the archive's: same outputs on other inputs than the check's
    import onnxruntime as ort

    module = torch.jit.load(str(archive))
    target, source = torch.rand(1, 3, 128, 128), torch.rand(1, 512)
    got = ort.InferenceSession(str(made.path)).run(None, {"target": target.numpy(), "source": source.numpy()})
    assert float(np.abs(got[0] - module(target, source).detach().numpy()).max()) <= 1e-5
    # records name the user's archive by its sha256 and the graph that ran by its own
    info = loaded.record_info()
    assert info["card_format"] == "torchscript" and info["files"]["swapper"]["path"] == str(archive)
    assert info["converted_graph"]["sha256"] == loaded.graph_sha256 != info["files"]["swapper"]["sha256"]
    # found again in the cache; a cached graph changed behind our back is made again
    again = load_card(_card(tmp_path))
    assert again.derived is not None and again.derived.details["cache"].startswith("reused")
    made.path.write_bytes(made.path.read_bytes() + b"\0")
    redone = load_card(_card(tmp_path))
    assert redone.derived is not None and redone.derived.details["cache"].startswith("written")
    assert redone.graph_sha256 == loaded.graph_sha256  # the same conversion gives the same bytes


def test_bad_torchscript_cards_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_bytes(b"not a zip archive at all")
    assert "is not a TorchScript archive" in card_error(_card(tmp_path, "notes.pt"))
    _scripted(tmp_path, ThreeInputs(), "three.pt")
    assert "forward takes 3 inputs" in card_error(_card(tmp_path, "three.pt"))
    _scripted(tmp_path, InswapperLike())
    card = _card(tmp_path)
    card.write_text(card.read_text().replace("[1, 3, 128, 128] }", "[1, 3, 128, 128], dtype = \"float16\" }"))
    assert "converted in float32" in card_error(card)
    card.write_text(CARD.format(file="swapper.pt").replace("shape = [1, 512]", "shape = [1, 256]"))
    assert "fails on inputs of the card's shapes" in card_error(card)
    card.write_text(CARD.format(file="swapper.pt").replace('format = "torchscript"', 'format = "pt"'))
    assert "field `format`" in card_error(card) and "torchscript" in card_error(card)


def test_card_check_and_flops_count_the_converted_graph(run_cli, tmp_path: Path) -> None:
    _scripted(tmp_path, InswapperLike())
    card = _card(tmp_path)
    checked = run_cli("card", "check", str(card))
    assert checked.code == 0, checked.err
    assert "converted  torchscript ->" in checked.out and "TorchScript exporter" in checked.out
    out = tmp_path / "out"
    result = run_cli("flops", "--models", str(card), "--out", str(out), "--format", "json")
    assert result.code == 0, result.err
    rows = {r["mode"]: r for r in json.loads(result.out) if r["model"] == "scripted_swapper"}
    assert rows["video"]["gmacs"] == pytest.approx(INSWAPPER_LIKE_MACS / 1e9)
    assert rows["video"]["params_m"] == pytest.approx(SCRIPTED_PARAMS / 1e6)
    records = [r for r in read_records(out / "records.jsonl") if r.model == "scripted_swapper"]
    assert records and all(r.info["card_format"] == "torchscript" for r in records)
    assert all(r.info["converted_graph"]["parity_max_abs"] <= 1e-4 for r in records)


@pytest.mark.slow  # traces and converts the tiny student's frame stage (a few seconds)
def test_traced_student_card_runs_and_counts_like_the_zoo(face_photos, tmp_path: Path) -> None:
    """The zoo student's frame stage saved with ``torch.jit.trace`` (one identity injected) runs through
    the card path within fp32 parity of the zoo's frame stage, and counts the zoo's video-mode MACs."""
    from mfsbench.cards.count import count_stages
    from mfsbench.device.macs import executed_macs
    from mfsbench.registry import get_spec
    from mfsbench.swap.runners import card_runner
    from tests.test_cards_parity import ZOO_PIPELINE, frame_outputs, injected_student

    zoo, detector, target = injected_student(face_photos)
    with torch.no_grad():
        frame = zoo.model.frame_stage(zoo.identity).eval()
    example = torch.rand(1, 3, zoo.size, zoo.size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated; users still save students with it
        torch.jit.trace(frame, (example,)).save(str(tmp_path / "student.pt"))
    card = write_student_card(tmp_path / "student.toml", tmp_path / "student.pt", card_id="student_ts",
                              size=zoo.size, description="the tiny student traced", extra=ZOO_PIPELINE)
    card.write_text(card.read_text().replace('family = "mobilefaceswap"',
                                             'family = "mobilefaceswap"\nformat = "torchscript"'))
    card_spec = get_spec(str(card))
    assert card_spec.card is not None and card_spec.card.derived is not None
    runner = card_runner(card_spec, [], allow_random=True)  # the encoder runs, the graph ignores it
    crop, _ = zoo.align_target(target, detector.detect(target)[0].landmarks5)
    want, got = frame_outputs(zoo.run_frame(crop)), frame_outputs(runner.run_frame(crop))
    assert [g.shape for g in got] == [w.shape for w in want]
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)) <= 1e-4
    card_crop, _ = runner.decode(runner.run_frame(crop))
    zoo_crop, _ = zoo.decode(zoo.run_frame(crop))
    assert np.abs(card_crop.astype(int) - zoo_crop.astype(int)).max() <= 1
    count, _shapes = count_stages(card_spec.card)["frame"]
    assert count.macs == executed_macs(frame, (example,))
