"""Build the student, teacher and frozen helper networks of a distillation run, with the user's weights.

Weights come only from files the user names (same safe readers and strict loader as the rest of the
suite: :mod:`mfsbench.checkpoints`). A network left at random weights is allowed only with
``allow_random_weights`` and is listed in :attr:`Nets.random` so every record can say so: a random
teacher or ArcFace trains a student that proves the pipeline runs, not that it reproduces the paper.

The face parser (``mask_source = "parser"``, :mod:`mfsbench.distill.parser`) and the quality
regressor Q (``[reweight] quality = "regressor"``, :mod:`mfsbench.distill.quality`) are built only
when a term uses them, and are recorded like the others (path, sha256). Q is never random: it exists
only as a file ``mfsbench distill-quality`` trained.

Which ArcFace is F_id (Eq. 4–5) the paper does not say; ours is the student's own Id network
(ArcFace IR-SE-101, as in SimSwap), from ``[model] id_weights``, or else copied from the teacher's Id
network when the two have the same shapes (the SimSwap teacher's ArcFace is the same network).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mfsbench.checkpoints.formats import LoadedCheckpoint, load_official
from mfsbench.checkpoints.mapping import load_strict
from mfsbench.errors import BadInputError
from mfsbench.models.mobilefaceswap import MobileFaceSwap
from mfsbench.registry import ModelSpec, create_model, get_spec

STUDENT_FAMILIES = ("mobilefaceswap", "mobilefaceswap-ablation", "test")


@dataclass
class Nets:
    """Everything a step runs. ``student`` trains (its ``swap`` part only); the rest is frozen."""

    student: MobileFaceSwap
    student_spec: ModelSpec
    teacher: nn.Module
    teacher_spec: ModelSpec
    vgg: nn.Module | None
    loaded: list[dict[str, Any]] = field(default_factory=list)
    random: list[str] = field(default_factory=list)
    #: the frozen BiSeNet face parser (``mask_source = "parser"``): run once per crop, before training
    parser: nn.Module | None = None
    #: the frozen image-quality regressor Q (``[reweight] quality = "regressor"``)
    quality: nn.Module | None = None


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _record(role: str, loaded: LoadedCheckpoint) -> dict[str, Any]:
    return {"role": role, "path": loaded.path, "sha256": loaded.sha256, "format": loaded.format,
            "keys": loaded.keys}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict from ``.safetensors`` or a weights-only torch file, never executing code."""
    if not path.is_file():
        raise BadInputError(f"weights file not found: {path}; check the path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from mfsbench.checkpoints.formats import _read_state_dict

    return _read_state_dict(path)


def _load_id_net(id_net: nn.Module, path: Path) -> LoadedCheckpoint:
    if path.suffix == ".pdparams":
        return load_official(id_net, path, "arcface_pdparams")
    if path.suffix == ".tar":
        return load_official(id_net, path, "arcface_tar")
    load_strict(id_net, read_state_dict(path), str(path))
    from mfsbench.checkpoints.digest import sha256_file

    return LoadedCheckpoint(str(path), sha256_file(path), "state_dict", len(id_net.state_dict()))


def build_student(name: str, seed: int) -> tuple[MobileFaceSwap, ModelSpec]:
    spec = get_spec(name)
    if spec.family not in STUDENT_FAMILIES:
        raise BadInputError(f"--student {name} is not a MobileFaceSwap student; use mobilefaceswap_224, "
                            "a mfs_* ablation or test_mobilefaceswap")
    torch.manual_seed(seed)
    model = create_model(name)
    if not isinstance(model, MobileFaceSwap):
        raise BadInputError(f"--student {name} does not build a MobileFaceSwap network")
    return model, spec


def _build_vgg(loss: dict[str, Any], nets: Nets) -> nn.Module:
    from mfsbench.distill.vgg import VGG16Features

    vgg = VGG16Features(list(loss["perceptual_layers"]), loss["perceptual_width"])
    if loss["perceptual_weights"]:
        path = Path(loss["perceptual_weights"])
        state = {k: v for k, v in read_state_dict(path).items() if k in vgg.state_dict()}
        load_strict(vgg, state, str(path))
        nets.loaded.append({"role": "vgg", "path": str(path), "keys": len(state)})
    else:
        nets.random.append("vgg")
    return _freeze(vgg)


def uses_background(config: dict[str, dict[str, Any]]) -> bool:
    """Whether any term reads the background mask (the mask loss, or face-region KD)."""
    return config["loss"]["lambda_mask"] > 0 or config["loss"]["kd_region"] == "face"


def _build_parser(loss: dict[str, Any], nets: Nets) -> nn.Module:
    from mfsbench.distill.parser import BiSeNet, load_parser

    if loss["parser_weights"]:
        parser, record = load_parser(loss["parser_weights"], loss["parser_width"])
        nets.loaded.append(record)
    else:
        parser = BiSeNet(19, loss["parser_width"])
        nets.random.append("parser")
    return _freeze(parser)


def _build_frozen_helpers(config: dict[str, dict[str, Any]], nets: Nets) -> None:
    """VGG (L_per), the face parser (parser background) and Q (quality reweighting), each only if used."""
    loss = config["loss"]
    if loss["lambda_per"] > 0:
        nets.vgg = _build_vgg(loss, nets)
    if uses_background(config) and loss["mask_source"] == "parser":
        nets.parser = _build_parser(loss, nets)
    if config["reweight"]["quality"] == "regressor":
        from mfsbench.distill.quality import load_quality

        nets.quality, record = load_quality(config["reweight"]["quality_weights"])
        nets.loaded.append(record)


def _card_teacher(config: dict[str, dict[str, Any]], spec: ModelSpec, student: MobileFaceSwap,
                  student_spec: ModelSpec, data_align: str) -> Nets:
    """A model card as the teacher (:mod:`mfsbench.distill.card_teacher`): ``--teacher-weights`` are
    its identity encoder's weights when that is the suite's ArcFace (as ``swap --checkpoint`` for a
    card); the student's Id network is then a copy of that encoder when the shapes agree."""
    from mfsbench.distill.card_teacher import CardTeacher

    m = config["model"]
    if config["loss"]["lambda_feature"] > 0:
        raise BadInputError(f"--teacher {m['teacher']} is a model card: its inner feature maps are not "
                            "reachable in ONNX Runtime; set [loss] lambda_feature = 0")
    size = config["data"]["size"] or student_spec.native_size
    checkpoints = list(m["teacher_weights"] or [])
    loaded = spec.card
    assert loaded is not None
    if checkpoints and (loaded.card.identity.kind == "image" or loaded.card.identity.encoder in loaded.paths):
        raise BadInputError(f"--teacher-weights: the card {loaded.card.path} brings its own identity "
                            "(its source image or its encoder graph); drop --teacher-weights")
    teacher = CardTeacher(spec, checkpoints, allow_random=True, seed=config["run"]["seed"] + 1,
                          student_size=size, data_align=data_align)
    nets = Nets(student, student_spec, teacher, spec, None)
    info = teacher.describe()
    nets.loaded.append({"role": "teacher", "path": info["card"], "sha256": info["sha256"], "format": "card",
                        "runtime": "onnxruntime", "license": info["license"]})
    if teacher.random_encoder:
        nets.random.append("teacher_encoder")
    elif teacher.encoder_info:
        nets.loaded.append({"role": "teacher_encoder", **teacher.encoder_info})
    if m["id_weights"]:
        nets.loaded.append(_record("id_net", _load_id_net(student.id_net, Path(m["id_weights"]))))
        return nets
    model = getattr(teacher.runner.encoder, "model", None)  # the suite ArcFace (None: an encoder graph)
    same = model is not None and {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in student.id_net.state_dict().items()}
    if same:
        assert model is not None
        student.id_net.load_state_dict(model.state_dict())
        if teacher.random_encoder:
            nets.random.append("id_net")
        else:
            nets.loaded.append({"role": "id_net", "path": "copied from the card's ArcFace encoder"})
    else:  # seeded random with --allow-random-weights (build_student seeded it), refused otherwise
        nets.random.append("id_net")
    return nets


def build_nets(config: dict[str, dict[str, Any]], data_align: str = "arcface") -> Nets:
    """Student (seeded), teacher, VGG; loads every named file; refuses random ones unless allowed.
    ``data_align``: the template the training crops were aligned with (a card teacher's frames)."""
    m = config["model"]
    student, student_spec = build_student(m["student"], config["run"]["seed"])
    teacher_spec = get_spec(m["teacher"])
    if teacher_spec.card is not None:
        nets = _card_teacher(config, teacher_spec, student, student_spec, data_align)
        return _finish(config, nets)
    if "identity" not in teacher_spec.stage_names or teacher_spec.family in STUDENT_FAMILIES[:2]:
        raise BadInputError(f"--teacher {m['teacher']} is not a face-swap teacher with an identity input; "
                            "use simswap_224, faceshifter_256 or test_simswap")
    torch.manual_seed(config["run"]["seed"] + 1)
    teacher = create_model(m["teacher"])
    nets = Nets(student, student_spec, teacher, teacher_spec, None)

    if m["teacher_weights"] or teacher_spec.weights_card is not None:  # a weights card loads its own files
        from mfsbench.swap.checkpoints import load_checkpoints

        nets.loaded += [_record("teacher", c) for c in load_checkpoints(teacher_spec, teacher,
                                                                          list(m["teacher_weights"]))]
    else:
        nets.random.append("teacher")
    if m["student_init"]:
        nets.loaded.append(_record("student_init", load_official(student, m["student_init"],
                                                                  "mobilefaceswap_pdparams")))
    if m["id_weights"]:
        nets.loaded.append(_record("id_net", _load_id_net(student.id_net, Path(m["id_weights"]))))
    else:
        teacher_id = getattr(teacher, "id_net", None)
        same = teacher_id is not None and {k: v.shape for k, v in teacher_id.state_dict().items()} == {
            k: v.shape for k, v in student.id_net.state_dict().items()}
        if not same:
            raise BadInputError(f"the teacher's Id network does not fit {m['student']}'s; pass "
                                "[model] id_weights (an ArcFace file for the student)")
        student.id_net.load_state_dict(teacher_id.state_dict())
        if "teacher" in nets.random:
            nets.random.append("id_net")
        else:
            nets.loaded.append({"role": "id_net", "path": "copied from the teacher's Id network"})

    return _finish(config, nets)


def _finish(config: dict[str, dict[str, Any]], nets: Nets) -> Nets:
    """The frozen helpers, the random-weights check, and every frozen network in eval mode."""
    _build_frozen_helpers(config, nets)
    if nets.random and not config["model"]["allow_random_weights"]:
        raise BadInputError(
            f"no weights given for {', '.join(nets.random)}: a student distilled from random networks "
            "proves only that the pipeline runs; pass the weights (--teacher-weights, --id-weights, "
            "--perceptual-weights, --parser-weights) or --allow-random-weights"
        )
    _freeze(nets.teacher)
    _freeze(nets.student.id_net)
    return nets
