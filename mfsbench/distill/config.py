"""The distillation config: every value, whether the paper gives it, and which values change the math.

The paper (Eq. 3–7, Implementation details) gives the loss weights, the identity reweighting and the
eye-distance filter, and nothing else: no optimiser, learning rate, batch, schedule, discriminator,
perceptual layers, background labels or pair sampling (``specs/distillation.md`` §1). So every key
here carries a ``source``: ``paper`` (quoted from the paper) or ``ours`` (a documented choice). The
resolved config, with its sources, goes into every checkpoint and record, so a reader can tell a
reproduced value from a filled-in one.

Layers, later winning: defaults → ``--preset`` → ``--config FILE.toml`` → command-line flags.
Unknown sections or keys and wrong types are errors (a typo must not silently train the default).
Keys marked ``math=False`` (how long, how often to log, where to run) may change on ``--resume``;
any other difference refuses to resume, because the continued run would no longer be the one started.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomllib

from mfsbench.errors import BadInputError

#: ``paper``: quoted from the paper; ``ours``: a documented choice where the paper is silent;
#: ``beyond``: an opt-in loss from later work (OMGD, CAT, content-aware KD), off by default.
Source = Literal["paper", "ours", "beyond"]


@dataclass(frozen=True)
class Key:
    """One config value: its default, where it comes from, why, and whether it changes the result."""

    default: Any
    source: Source
    why: str
    math: bool = True
    #: added after runs existed: left out of the resume hash at its default, so those runs still resume
    late: bool = False


K = Key
SCHEMA: dict[str, dict[str, Key]] = {
    "run": {
        "seed": K(0, "ours", "seeds the student, D and the per-step batch draw"),
        "steps": K(1000, "ours", "the paper gives no iteration count", math=False),
        "log_every": K(10, "ours", "a training record every N steps", math=False),
        "eval_every": K(100, "ours", "held-out evaluation every M steps (and before step 1 and at the end)",
                        math=False),
        "ckpt_every": K(100, "ours", "atomic checkpoint every N steps", math=False),
        "eval_identity": K(True, "ours", "held-out identity cosine with dlib's ResNet descriptor, not the "
                           "training ArcFace (needs the faces extra)", math=False),
        "keep_last": K(3, "ours", "checkpoints kept", math=False),
    },
    "model": {
        "student": K("mobilefaceswap_224", "paper", "the paper's student (any zoo student or ablation)"),
        "teacher": K("simswap_224", "paper", "SimSwap 224 is the paper's released-weights teacher"),
        "teacher_weights": K([], "ours", "teacher checkpoint flags, as `mfsbench swap --checkpoint`"),
        "id_weights": K("", "ours", "ArcFace for the student's Id network, L_id and α (arcface.pdparams "
                        "or SimSwap's arcface_checkpoint.tar)"),
        "student_init": K("", "ours", "MobileFaceSwap_224.pdparams to start from instead of random"),
        "allow_random_weights": K(False, "ours", "random frozen nets only when asked: said in every record",
                                  math=False),
    },
    "data": {
        "size": K(0, "paper", "0 = the student's native size (224 with SimSwap, 256 with FaceShifter)"),
        "align": K("teacher", "paper", "'the student uses the same face alignment algorithm as the teacher'"),
        "min_eye_distance_px": K(70.0, "paper", "eyes > 70 px apart in the source image"),
        "detector": K("dlib", "ours", "the suite's default detector"),
        "holdout": K(16, "ours", "crops held out for evaluation (never trained on)"),
        "batch_size": K(8, "ours", "the paper gives none"),
        "hflip": K(True, "ours", "random horizontal flip of targets and sources"),
        "same_identity_fraction": K(0.0, "ours", "rows whose source is their own target"),
        "pairs": K("random", "ours", "'random' per step, or 'fixed' (one source per target: enables "
                   "teacher caching)"),
    },
    "loss": {
        "kd": K(True, "paper", "L_rec and L_per against the teacher (Eq. 3)"),
        "lambda_rec": K(30.0, "paper", "Eq. 7"),
        "lambda_per": K(5.0, "paper", "Eq. 7"),
        "lambda_id": K(3.0, "paper", "Eq. 7"),
        "lambda_mask": K(10.0, "paper", "Eq. 7"),
        "lambda_adv": K(1.0, "paper", "Eq. 7 adds L_adv unweighted"),
        "perceptual_layers": K(["relu1_2", "relu2_2", "relu3_3", "relu4_3"], "ours",
                               "Johnson et al.'s VGG-16 layers; the paper names none"),
        "perceptual_width": K(64, "ours", "VGG-16's first width (64 = the real network; tests shrink it)"),
        "perceptual_weights": K("", "ours", "a VGG-16 state dict (torchvision key names)"),
        "mask_source": K("ellipse", "ours", "'ellipse': background = outside a fixed face ellipse of the "
                         "aligned crop (needs no weights); 'parser': the paper's BiSeNet parse of each "
                         "target crop (needs parser_weights)"),
        "parser_weights": K("", "ours", "the public face-parsing BiSeNet checkpoint (79999_iter.pth, 19 "
                            "CelebAMask-HQ classes) for mask_source = 'parser'", late=True),
        "bg_labels": K([0, 14, 15, 16, 17, 18], "ours", "parser labels counted as background (the paper: "
                       "'the semantic labels corresponding to the background'): 0 background, 14 neck, "
                       "15 necklace, 16 cloth, 17 hair, 18 hat", late=True),
        "parser_size": K(512, "ours", "side the parser sees (the public parser's 512)", late=True),
        "parser_width": K(64, "ours", "the parser's first width (64 = the real network; tests shrink it)",
                          late=True),
        "lambda_ssim": K(0.0, "beyond", "OMGD's (1 − SSIM) to the KD reference, α-weighted (OMGD: 10); "
                         "0 = off"),
        "lambda_style": K(0.0, "beyond", "OMGD's Gram-matrix style loss on the perceptual VGG layers, "
                          "α-weighted (OMGD: 1e4); 0 = off"),
        "lambda_feature": K(0.0, "beyond", "CAT's kernel-alignment feature loss, 1 − KA between the "
                            "student's last decoder maps and the teacher's layers below (needs batch ≥ 2); "
                            "0 = off"),
        "feature_teacher_layers": K(["up3", "up2", "up1"], "beyond",
                                    "teacher modules (SimSwap's up-blocks) paired in order with the "
                                    "student's last decoder blocks for lambda_feature"),
        "kd_region": K("full", "beyond", "'face' restricts L_rec, L_per and SSIM to the face (outside the "
                       "background mask), as content-aware GAN compression does; 'full' = the paper"),
    },
    "reweight": {
        "identity": K(True, "paper", "α = cos(z_src, z_teacher)², Eq. 4"),
        "clamp_negative": K(True, "ours", "cos < 0 → 0 before squaring (an anti-similar output must not "
                            "get weight)"),
        "quality": K("off", "ours", "'off', or 'regressor': α also × Q(I'g) (Eq. 4), Q trained by `mfsbench "
                     "distill-quality` on teacher-training snapshots, which the SimSwap release lacks"),
        "quality_weights": K("", "ours", "Q's .safetensors from `mfsbench distill-quality`", late=True),
    },
    "adv": {
        "kind": K("patchgan", "ours", "the paper describes no discriminator"),
        "width": K(64, "ours", "PatchGAN first width"),
        "layers": K(3, "ours", "PatchGAN stride-2 layers"),
        "lr": K(1e-4, "ours", "D's Adam learning rate"),
        "betas": K([0.0, 0.99], "ours", "SimSwap's D betas"),
    },
    "optim": {
        "lr": K(1e-4, "ours", "student Adam learning rate"),
        "betas": K([0.5, 0.999], "ours", "student Adam betas"),
        "grad_clip": K(0.0, "ours", "0 = no clipping"),
    },
    "perf": {
        "device": K("cpu", "ours", "cpu or cuda", math=False),
        "precision": K("fp32", "ours", "fp32, or bf16 autocast for the frozen networks", math=False),
        "compile": K(False, "ours", "torch.compile the student forward and the frozen nets", math=False),
        "cache_teacher": K(False, "ours", "keep, per fixed pair, what a step computes from the pair alone: "
                           "teacher output, α, ArcFace of the source, VGG maps of the teacher output, the "
                           "teacher's maps for lambda_feature (needs pairs = fixed, hflip = false)",
                           math=False),
        "cache_gib": K(4.0, "ours", "memory the teacher cache's VGG and teacher maps may take (GiB); pairs "
                       "beyond it keep only the teacher output, α and ArcFace features", math=False),
    },
}

#: Table 2's training ablations (rows 6–10, order *inferred*, ``specs/distillation.md`` §1).
ABLATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "no_kd": {"loss": {"kd": False}, "data": {"same_identity_fraction": 0.5}},
    "no_quality_reweighting": {"reweight": {"quality": "off"}},
    "no_identity_reweighting": {"reweight": {"identity": False}},
    "no_identity_loss": {"loss": {"lambda_id": 0.0}},
    "no_mask_loss": {"loss": {"lambda_mask": 0.0}},
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    # Pure output KD with α ≡ 1: what random frozen nets can honestly test (specs/distillation.md, "trap").
    "kd_only": {"loss": {"lambda_id": 0.0, "lambda_mask": 0.0, "lambda_adv": 0.0},
                "reweight": {"identity": False}},
}


def preset_names() -> list[str]:
    return [*PRESETS, *(f"ablation:{name}" for name in ABLATIONS)]


def defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: copy.deepcopy(key.default) for k, key in keys.items()} for s, keys in SCHEMA.items()}


def _check_type(section: str, key: str, value: Any) -> Any:
    default = SCHEMA[section][key].default
    where = f"[{section}] {key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise BadInputError(f"{where} must be true or false, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInputError(f"{where} must be a number, got {value!r}")
        return float(value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInputError(f"{where} must be an integer, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise BadInputError(f"{where} must be a string, got {value!r}")
    elif isinstance(default, list) and not isinstance(value, list):
        raise BadInputError(f"{where} must be a list, got {value!r}")
    return copy.deepcopy(value)


def merge(config: dict[str, dict[str, Any]], overlay: dict[str, Any], origin: str) -> None:
    """Apply ``overlay`` onto ``config`` in place; unknown sections/keys name ``origin`` and the choices."""
    for section, values in overlay.items():
        if section not in SCHEMA:
            raise BadInputError(f"{origin}: unknown section [{section}]; use one of {', '.join(SCHEMA)}")
        if not isinstance(values, dict):
            raise BadInputError(f"{origin}: [{section}] must be a table of keys")
        for key, value in values.items():
            if key not in SCHEMA[section]:
                raise BadInputError(f"{origin}: unknown key [{section}] {key}; "
                                    f"known: {', '.join(SCHEMA[section])}")
            config[section][key] = _check_type(section, key, value)


def apply_preset(config: dict[str, dict[str, Any]], preset: str) -> None:
    if preset in PRESETS:
        merge(config, PRESETS[preset], f"preset {preset}")
        return
    name = preset.removeprefix("ablation:")
    if not preset.startswith("ablation:") or name not in ABLATIONS:
        raise BadInputError(f"unknown preset {preset!r}; choose one of {', '.join(preset_names())}")
    merge(config, ABLATIONS[name], f"preset {preset}")


def _finish_ablation(config: dict[str, dict[str, Any]], preset: str, before: str) -> None:
    """``ablation:no_quality_reweighting`` switches off a quality reweighting the file or flags turned
    on (``before``: the quality setting they left): it applies last, and refuses when there is nothing
    to switch off (the run would equal ``--preset paper``)."""
    if preset != "ablation:no_quality_reweighting":
        return
    if before == "off":
        raise BadInputError(
            "ablation:no_quality_reweighting cannot apply: image-quality reweighting is already off; "
            "turn it on with [reweight] quality = \"regressor\" and quality_weights (a Q trained by "
            "`mfsbench distill-quality`), or this run would equal --preset paper"
        )
    config["reweight"]["quality"] = "off"


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"--config {path} does not exist; check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"--config {path} is not valid TOML: {exc}") from None


def resolve(preset: str = "paper", file: Path | None = None,
            overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Defaults, then the preset, then the file, then ``overrides`` (the command-line flags)."""
    config = defaults()
    apply_preset(config, preset)
    if file is not None:
        merge(config, load_toml(file), f"--config {file}")
    if overrides:
        merge(config, overrides, "command line")
    _finish_ablation(config, preset, config["reweight"]["quality"])
    validate(config)
    return config


def validate(config: dict[str, dict[str, Any]]) -> None:
    """Refuse combinations that cannot be computed (student-dependent checks live in the trainer)."""
    _validate_sources(config)
    data, loss, perf = config["data"], config["loss"], config["perf"]
    if data["pairs"] not in ("random", "fixed"):
        raise BadInputError(f"[data] pairs must be \"random\" or \"fixed\", got {data['pairs']!r}")
    if data["align"] not in ("teacher", "arcface", "simswap"):
        raise BadInputError(f"[data] align must be teacher, arcface or simswap, got {data['align']!r}")
    if not 0.0 <= data["same_identity_fraction"] <= 1.0:
        raise BadInputError("[data] same_identity_fraction must be in [0, 1]")
    if not loss["kd"] and data["same_identity_fraction"] <= 0:
        raise BadInputError("[loss] kd = false reconstructs same-identity rows only; "
                            "set [data] same_identity_fraction > 0")
    if data["batch_size"] < 1 or config["run"]["steps"] < 0:
        raise BadInputError("[data] batch_size must be ≥ 1 and [run] steps ≥ 0")
    for key in ("log_every", "eval_every", "ckpt_every", "keep_last"):
        if config["run"][key] < 1:
            raise BadInputError(f"[run] {key} must be ≥ 1")
    if perf["precision"] not in ("fp32", "bf16"):
        raise BadInputError(f"[perf] precision must be fp32 or bf16, got {perf['precision']!r}")
    if perf["cache_gib"] < 0:
        raise BadInputError(f"[perf] cache_gib must be ≥ 0, got {perf['cache_gib']}")
    if perf["cache_teacher"] and (data["pairs"] != "fixed" or data["hflip"]):
        raise BadInputError("[perf] cache_teacher needs [data] pairs = \"fixed\" and hflip = false: "
                            "otherwise the teacher sees a new input every step")
    if any(v < 0 for k, v in loss.items() if k.startswith("lambda_")):
        raise BadInputError("loss weights must be ≥ 0")
    if (loss["lambda_per"] > 0 or loss["lambda_style"] > 0) and not loss["perceptual_layers"]:
        raise BadInputError("[loss] lambda_per or lambda_style > 0 needs at least one perceptual layer")
    _validate_beyond(config)


def _validate_beyond(config: dict[str, dict[str, Any]]) -> None:
    """The opt-in extras beyond the paper: each one's preconditions."""
    data, loss = config["data"], config["loss"]
    if loss["kd_region"] not in ("full", "face"):
        raise BadInputError(f"[loss] kd_region must be \"full\" or \"face\", got {loss['kd_region']!r}")
    if loss["lambda_feature"] > 0:
        if not loss["kd"]:
            raise BadInputError("[loss] lambda_feature > 0 distils the teacher's features: "
                                "it needs kd = true")
        if data["batch_size"] < 2:
            raise BadInputError("[loss] lambda_feature > 0 (kernel alignment over the batch) needs "
                                "[data] batch_size ≥ 2: one sample's alignment is always 1")
        if not loss["feature_teacher_layers"]:
            raise BadInputError("[loss] lambda_feature > 0 needs at least one feature_teacher_layers entry")


def _validate_sources(config: dict[str, dict[str, Any]]) -> None:
    """The parser mask and the quality regressor: each needs its weights file (random parser only when
    allowed); a missing file is refused here, before faces are detected."""
    rw, loss, model = config["reweight"], config["loss"], config["model"]
    if rw["quality"] not in ("off", "regressor"):
        raise BadInputError(f"[reweight] quality must be \"off\" or \"regressor\", got {rw['quality']!r}")
    if rw["quality"] == "regressor":
        if not rw["quality_weights"]:
            raise BadInputError("[reweight] quality = \"regressor\" needs the quality regressor's weights: "
                                "train Q with `mfsbench distill-quality` and set [reweight] quality_weights "
                                "(or --quality-weights), or set quality = \"off\"")
        if not Path(rw["quality_weights"]).is_file():
            raise BadInputError(f"[reweight] quality_weights {rw['quality_weights']} not found; train Q with "
                                "`mfsbench distill-quality` or fix the path")
    if loss["mask_source"] not in ("ellipse", "parser"):
        raise BadInputError(f"[loss] mask_source must be \"ellipse\" or \"parser\", "
                            f"got {loss['mask_source']!r}")
    labels = loss["bg_labels"]
    if not labels or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 19 for v in labels):
        raise BadInputError(f"[loss] bg_labels must be a non-empty list of parser labels 0…18 (CelebAMask-HQ "
                            f"order), got {labels!r}")
    if loss["parser_size"] < 32 or loss["parser_width"] < 1:
        raise BadInputError("[loss] parser_size must be ≥ 32 and parser_width ≥ 1")
    if loss["mask_source"] == "parser":
        weights = loss["parser_weights"]
        if not weights and not model["allow_random_weights"]:
            raise BadInputError("[loss] mask_source = \"parser\" needs the face parser's weights: set [loss] "
                                "parser_weights (or --parser-weights) to the face-parsing BiSeNet checkpoint "
                                "(79999_iter.pth), or use mask_source = \"ellipse\"")
        if weights and not Path(weights).is_file():
            raise BadInputError(f"[loss] parser_weights {weights} not found; fix the path or use "
                                "mask_source = \"ellipse\"")


def math_view(config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only the keys that change what is computed: what a resume must match.

    A beyond-paper key at its (off) default, or a key added later (``late``) at its default, is left
    out, so a run started before that key existed hashes, and resumes, as it did.
    """
    return {s: {k: v for k, v in values.items()
                if SCHEMA[s][k].math and not ((SCHEMA[s][k].source == "beyond" or SCHEMA[s][k].late)
                                              and v == SCHEMA[s][k].default)}
            for s, values in config.items()}


def math_hash(config: dict[str, dict[str, Any]]) -> str:
    blob = json.dumps(math_view(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def math_differences(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    a, b = math_view(old), math_view(new)
    keys = {(s, k) for view in (a, b) for s in view for k in view[s]}

    def value(view: dict[str, dict[str, Any]], s: str, k: str) -> Any:
        return view.get(s, {}).get(k, SCHEMA[s][k].default if s in SCHEMA and k in SCHEMA[s] else None)

    return [f"[{s}] {k}: {value(a, s, k)!r} → {value(b, s, k)!r}"
            for s, k in sorted(keys) if value(a, s, k) != value(b, s, k)]


def sources(config: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``"section.key" → "paper" | "ours" | "beyond"``, for records and the report."""
    return {f"{s}.{k}": SCHEMA[s][k].source for s in config for k in config[s]}


def describe() -> str:
    """A TOML listing of every key with its default, source and reason (``--print-config``)."""
    lines = []
    for section, keys in SCHEMA.items():
        lines.append(f"[{section}]")
        for key, spec in keys.items():
            value = json.dumps(spec.default)
            lines.append(f"{key} = {value}  # {spec.source}: {spec.why}")
        lines.append("")
    return "\n".join(lines)
