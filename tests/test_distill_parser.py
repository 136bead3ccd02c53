"""The weak mask loss against a BiSeNet face parse (Eq. 6, ``[loss] mask_source = "parser"``).

No real parser weights are available here, so the checkpoints are built at test time from the module
itself (random values, the official key names and shapes) and saved with ``torch.save``: they prove the
loader's strictness and that the parse is what the objective reads, never that the parse is good.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from mfsbench.distill import config as cfg
from mfsbench.distill.objective import objective
from mfsbench.distill.parser import BiSeNet, background_masks, load_parser, parse_labels
from mfsbench.distill.session import Session
from mfsbench.errors import BadInputError
from tests.distill_faces import TEST_MIN_EYE_PX, write_face_folder
from tests.face_assets import face_photos_fixture  # noqa: F401

#: Names and shapes of the public face-parsing checkpoint (79999_iter.pth), read from its model.py/resnet.py.
OFFICIAL = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.layer1.0.conv1.weight": (64, 64, 3, 3),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer2.0.downsample.1.running_var": (128,),
    "cp.resnet.layer4.1.bn2.weight": (512,),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm32.conv.conv.weight": (128, 512, 3, 3),
    "cp.arm32.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm32.bn_atten.running_mean": (128,),
    "cp.conv_head32.conv.weight": (128, 128, 3, 3),
    "cp.conv_head16.bn.weight": (128,),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.conv.weight": (64, 128, 3, 3),
    "conv_out16.conv_out.weight": (19, 64, 1, 1),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


def _tiny_checkpoint(path: Path, width: int = 4, seed: int = 0) -> dict[str, Tensor]:
    torch.manual_seed(seed)
    net = BiSeNet(19, width)
    for module in net.modules():  # non-trivial BN statistics, as a trained file has
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = net.state_dict()
    torch.save(state, path)
    return state


def test_parser_has_the_public_checkpoint_names_and_shapes() -> None:
    state = BiSeNet(19).state_dict()
    for key, shape in OFFICIAL.items():
        assert tuple(state[key].shape) == shape, key
    assert {k.split(".")[0] for k in state} == {"cp", "ffm", "conv_out", "conv_out16", "conv_out32"}
    params = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert 13.0e6 < params < 13.5e6  # the public file is ~53 MB of float32


def test_parser_checkpoint_loads_strictly_and_refuses_wrong_files(tmp_path: Path) -> None:
    path = tmp_path / "79999_iter.pth"
    state = _tiny_checkpoint(path)
    parser, record = load_parser(str(path), 4)
    assert all(torch.equal(parser.state_dict()[k], v) for k, v in state.items())
    assert record["role"] == "parser" and len(record["sha256"]) == 64 and record["classes"] == 19
    bad = dict(state)
    del bad["ffm.conv1.weight"]
    torch.save(bad, tmp_path / "missing.pth")
    with pytest.raises(BadInputError, match=r"1 missing: ffm\.conv1\.weight"):
        load_parser(str(tmp_path / "missing.pth"), 4)
    torch.save(state, tmp_path / "wide.pth")
    with pytest.raises(BadInputError, match="mis-shaped"):
        load_parser(str(tmp_path / "wide.pth"), 8)  # a checkpoint for another width
    bad = dict(state)
    bad["cp.resnet.conv1.weight"] = torch.full_like(bad["cp.resnet.conv1.weight"], float("nan"))
    torch.save(bad, tmp_path / "nan.pth")
    with pytest.raises(BadInputError, match="non-finite"):
        load_parser(str(tmp_path / "nan.pth"), 4)
    with pytest.raises(BadInputError, match="not found"):
        load_parser(str(tmp_path / "absent.pth"), 4)


class RedIsHair(nn.Module):
    """A stand-in parser with a known label map: 17 (hair) where the red channel is high, else 1 (skin)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        red = x[:, :1] > 0  # ImageNet-normalised: red > 0.485
        logits = torch.zeros(x.shape[0], 19, *x.shape[2:])
        logits[:, 17:18][red] = 1.0
        logits[:, 1:2][~red] = 1.0
        return logits * self.scale


def test_background_is_the_parsers_background_labels() -> None:
    crops = torch.zeros(3, 3, 64, 64, dtype=torch.uint8)
    crops[:, 0, :20] = 255  # a "hair" band at the top
    crops[1, 0, 40:, 50:] = 255
    expected = (crops[:, :1] == 255).to(torch.uint8)
    assert torch.equal(background_masks(RedIsHair(), crops, [0, 17], 64), expected)
    assert not background_masks(RedIsHair(), crops, [0, 18], 64).any()  # hair not counted: no background
    assert torch.equal(parse_labels(RedIsHair(), crops.float() / 255, 64)[1, 50, 55], torch.tensor(17))


def test_parser_mask_needs_weights_or_permission(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="parser_weights"):
        cfg.resolve("paper", None, {"loss": {"mask_source": "parser"}})
    with pytest.raises(BadInputError, match="not found"):
        cfg.resolve("paper", None, {"loss": {"mask_source": "parser", "parser_weights": str(tmp_path / "x")}})
    allowed = cfg.resolve("paper", None, {"loss": {"mask_source": "parser"},
                                          "model": {"allow_random_weights": True}})
    assert allowed["loss"]["mask_source"] == "parser"  # a random parser, listed as random in the records
    with pytest.raises(BadInputError, match="bg_labels"):
        cfg.resolve("paper", None, {"loss": {"bg_labels": [0, 19]}})
    with pytest.raises(BadInputError, match="mask_source"):
        cfg.resolve("paper", None, {"loss": {"mask_source": "bisenet"}})
    before = cfg.resolve("paper")
    same = cfg.resolve("paper", None, {"loss": {"bg_labels": [0, 14, 15, 16, 17, 18]}})
    assert cfg.math_hash(before) == cfg.math_hash(same)  # a run from before the key existed still resumes
    assert cfg.sources(before)["loss.bg_labels"] == "ours"


@pytest.fixture(scope="module")
def faces(face_photos: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(photo folder, aligned-crop cache), detected here once so each test times only its own work."""
    from mfsbench.distill.data import PrepSettings, prepare
    from mfsbench.distill.session import teacher_alignment
    from mfsbench.registry import get_spec

    root = tmp_path_factory.mktemp("parser_faces")
    photos = write_face_folder(face_photos, root / "photos")
    tiny = {"model": {"teacher": "test_simswap", "student": "test_mobilefaceswap"}}
    config = cfg.resolve("kd_only", None, tiny)
    size = get_spec("test_mobilefaceswap").native_size
    prepare(photos, root / "cache", PrepSettings(size, teacher_alignment(config), TEST_MIN_EYE_PX,
                                                 config["data"]["detector"]))
    return photos, root / "cache"


@pytest.mark.slow
def test_distill_masks_come_from_the_parser_once(faces: tuple[Path, Path], tmp_path: Path) -> None:
    """The cached parse of each target crop is the background the mask loss reads, and runs are labelled."""
    weights = tmp_path / "79999_iter.pth"
    _tiny_checkpoint(weights)
    parser, _ = load_parser(str(weights), 4)
    over = {"model": {"teacher": "test_simswap", "student": "test_mobilefaceswap",
                      "allow_random_weights": True},
            "data": {"min_eye_distance_px": TEST_MIN_EYE_PX, "batch_size": 4, "hflip": False},
            "loss": {"perceptual_width": 8, "lambda_mask": 10.0, "mask_source": "parser",
                     "parser_weights": str(weights), "parser_width": 4, "parser_size": 64},
            "run": {"steps": 1, "log_every": 1, "eval_every": 1000, "ckpt_every": 1000}}
    config = cfg.resolve("kd_only", None, over)
    session = Session(config, "kd_only", faces[0], tmp_path / "run", cache=faces[1])
    distiller = session.distiller
    masks = distiller.parser_masks
    assert masks is not None and masks.shape == (len(session.crops), 1, 64, 64)
    assert torch.equal(masks, background_masks(parser, session.crops.train, config["loss"]["bg_labels"], 64))
    assert 0 < float(masks.float().mean()) < 1  # this random parser gives labels 15 and 16 and others
    batch = distiller.batch(0)
    from mfsbench.distill.data import draw_batch

    targets = draw_batch(len(session.crops), 4, 0, 0, same_fraction=0.0, hflip=False, pairs="random")[0]
    assert torch.equal(batch.background, masks[targets].float())
    _, terms, extras = objective(config, distiller.parts, batch)
    expected = (extras["mask"] * masks[targets]).sum() / masks[targets].sum()
    assert float(terms["mask"].detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert distiller.mask_info["cache"].startswith("wrote")
    again = Session(config, "kd_only", faces[0], tmp_path / "again", cache=faces[1]).distiller
    assert again.mask_info["cache"].startswith("read") and torch.equal(again.parser_masks, masks)
    entry = distiller.train_step()
    assert entry["loss_mask"] > 0
    distiller.record("train", distiller.log_window([entry], entry["step_s"]))
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    info = records[-1]["info"]
    assert "parser" not in info["random_weights"]
    entry = next(w for w in info["weights"] if w["role"] == "parser")
    assert len(entry["sha256"]) == 64 and info["background_mask"]["source"] == "parser"
    assert info["config_sources"]["loss.bg_labels"] == "ours"


@pytest.mark.slow
def test_cli_refuses_a_wrong_parser_checkpoint_in_one_line(faces: tuple[Path, Path], tmp_path: Path,
                                                           run_cli) -> None:
    weights = tmp_path / "parser.pth"
    _tiny_checkpoint(weights, width=4)
    toml = tmp_path / "small.toml"
    toml.write_text("[loss]\nperceptual_width = 8\nparser_width = 8\nparser_size = 64\n")
    base = ("distill", "--teacher", "test_simswap", "--student", "test_mobilefaceswap",
            "--data", str(faces[0]), "--cache", str(faces[1]), "--min-eye-distance", str(TEST_MIN_EYE_PX),
            "--allow-random-weights", "--config", str(toml), "--steps", "1")
    wrong = run_cli(*base, "--out", str(tmp_path / "r"), "--parser-weights", str(weights))
    assert wrong.code == 2 and "mis-shaped" in wrong.err and "parser_weights" in wrong.err
    errors = [line for line in wrong.err.splitlines() if line.startswith("mfsbench distill: error")]
    assert len(errors) == 1 and "Traceback" not in wrong.err
    assert errors[0] == wrong.err.strip().splitlines()[-1]
    missing = run_cli(*base, "--out", str(tmp_path / "m"), "--parser-weights", str(tmp_path / "none.pth"))
    assert missing.code == 2 and "not found" in missing.err
