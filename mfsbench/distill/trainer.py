"""The distillation loop: one plain PyTorch loop, two optimisers, exact resume, timed by component.

Why plain PyTorch (no Lightning or Accelerate): exact resume needs control of every RNG and of the
batch draw, the GAN step is manual anyway, and the time split by component (teacher, identity nets,
perceptual, student forward, backward, discriminator, optimiser, data) needs to see each call.

Each step: draw the batch from ``(seed, step)`` → teacher and α under ``no_grad`` (or from the cache)
→ student forward → Eq. 7 → backward into the student's trainable part (``MobileFaceSwap.swap``:
IIN + output head + mask head; the Id network stays frozen) → Adam → D step (hinge) when L_adv is on.
Under ``torchrun`` every rank draws the same global batch, takes its own rows, and the gradients are
averaged with one all-reduce per step (the teacher is frozen and never wrapped).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.distill import checkpoint as ckpt
from mfsbench.distill.config import math_hash, sources
from mfsbench.distill.data import CropSet, background_mask, draw_batch, fixed_sources, to_float
from mfsbench.distill.discriminator import PatchDiscriminator, d_hinge_loss
from mfsbench.distill.evaluate import HeldOutIdentity, image_metrics, plot_curves, write_grid
from mfsbench.distill.nets import Nets
from mfsbench.distill.objective import Batch, Parts, TeacherView, id_input, objective, pair_view, run_teacher
from mfsbench.distill.pair_cache import Dependencies, PairCache
from mfsbench.distill.student import student_forward
from mfsbench.distill.sync_norm import globalize_batchnorm
from mfsbench.errors import BadInputError, MissingDependencyError
from mfsbench.records import Record, append_records, environment, new_run_id, stamp

SECTIONS = ("data", "cache", "teacher", "identity", "quality", "perceptual", "student_forward", "backward",
            "discriminator", "optimizer")


class Timer:
    """Wall time per named section, summed over a logging window (CUDA synchronised at the edges)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.totals: dict[str, float] = defaultdict(float)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.totals[name] += time.perf_counter() - start

    def take(self) -> dict[str, float]:
        out = dict(self.totals)
        self.totals.clear()
        return out


class Autocast(nn.Module):
    """Run a frozen network under bf16 autocast and hand back fp32 (tuples too)."""

    def __init__(self, inner: nn.Module, device_type: str) -> None:
        super().__init__()
        self.inner = inner
        self.device_type = device_type

    def forward(self, *args: Tensor) -> Any:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.inner(*args)
        if isinstance(out, tuple | list):  # ArcFace's (embedding, map), VGG's list of maps
            return type(out)(o.float() for o in out)
        return out.float()


class Distiller:
    """Owns the networks, optimisers, data and outputs of one run directory."""

    def __init__(self, config: dict[str, Any], nets: Nets, data: CropSet, out: Path, *,
                 rank: int = 0, world: int = 1) -> None:
        self.config, self.nets, self.data, self.out = config, nets, data, out
        self.rank, self.world = rank, world
        perf, loss = config["perf"], config["loss"]
        if perf["device"] == "cuda" and not torch.cuda.is_available():
            raise BadInputError("--device cuda: no CUDA device here; use --device cpu")
        self.device = torch.device(perf["device"])
        student = nets.student
        if loss["lambda_mask"] > 0 and not student.config.fusion_mask:
            raise BadInputError(f"{nets.student_spec.name} has no fusion mask: the mask loss cannot apply; "
                                "set [loss] lambda_mask = 0 (or --preset ablation:no_mask_loss)")
        student.to(self.device)
        nets.teacher.to(self.device)
        if nets.vgg is not None:
            nets.vgg.to(self.device)
        if world > 1 and config["data"]["batch_size"] % world:
            raise BadInputError(f"--batch-size {config['data']['batch_size']} does not split into {world} "
                                "equal shares; use a multiple of the number of processes")
        student.swap.train()
        if world > 1:  # every rank normalises its rows with the global batch's statistics
            globalize_batchnorm(student.swap)
        student.id_net.eval()
        torch.manual_seed(config["run"]["seed"] + 2)
        self.disc: nn.Module | None = None
        self.d_opt: torch.optim.Optimizer | None = None
        if loss["lambda_adv"] > 0:
            adv = config["adv"]
            self.disc = PatchDiscriminator(adv["width"], adv["layers"]).to(self.device)
            self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=adv["lr"], betas=tuple(adv["betas"]))
        optim = config["optim"]
        self.params = [p for p in student.swap.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=optim["lr"], betas=tuple(optim["betas"]))
        self.parts = self._parts()
        self.background = background_mask(data.train.shape[-1]).to(self.device)
        #: per-crop background masks from the face parser (N×1×S×S uint8), made once here, never per step
        self.parser_masks: Tensor | None = None
        self.mask_info: dict[str, Any] = {"source": "parser" if nets.parser is not None else "ellipse"}
        if nets.parser is not None:
            self._parse_crops()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.evals: list[dict[str, float]] = []
        #: ``[perf] cache_teacher``: what a step computes from a fixed pair alone (see pair_cache)
        self.cache = PairCache(int(perf["cache_gib"] * 2**30))
        self._cache_depends = Dependencies(self._frozen_nets, lambda: self.data.train, config)
        self.timer = Timer(self.device)
        self.run_id = new_run_id()
        self._eval_teacher: Tensor | None = None
        self._id_eval: HeldOutIdentity | bool | None = None  # False: unavailable (dlib missing)
        self._id_teacher: float | None = None
        #: the --preset name, for records (the resolved config says what it changed)
        self.preset = "paper"

    # ------------------------------------------------------------------ setup
    def _parse_crops(self) -> None:
        """Run the frozen parser once over every training crop (eval, no_grad) and keep the masks; with
        parser weights from a file, the masks are cached beside the crops (bit-packed), keyed by the
        weights' sha256, the labels, the parser settings and the crops, so a resume does not parse again."""
        from mfsbench.distill.parser import background_masks

        loss, parser = self.config["loss"], self.nets.parser
        assert parser is not None
        start = time.perf_counter()
        cache = self._parse_cache()
        shape = (len(self.data.train), 1, *self.data.train.shape[2:])
        if cache is not None and cache.is_file():
            packed = np.load(cache)
            masks = np.unpackbits(packed, axis=-1, count=shape[-1]).reshape(shape)
            self.parser_masks = torch.from_numpy(np.ascontiguousarray(masks))
            self.mask_info["cache"] = f"read {cache}"
        else:
            parser.to(self.device)
            self.parser_masks = background_masks(parser, self.data.train, list(loss["bg_labels"]),
                                                 loss["parser_size"])
            parser.cpu()
            if cache is not None and self.rank == 0:
                tmp = cache.with_name(cache.name + ".tmp.npy")
                np.save(tmp, np.packbits(self.parser_masks.numpy(), axis=-1))
                tmp.replace(cache)
                self.mask_info["cache"] = f"wrote {cache}"
        self.mask_info.update({"bg_labels": list(loss["bg_labels"]), "parse_s": time.perf_counter() - start,
                               "background_fraction": float(self.parser_masks.float().mean())})

    def _parse_cache(self) -> Path | None:
        """Where this parse is cached: None for a random parser or crops without a cache folder."""
        folder = getattr(self.data, "folder", None)
        sha = next((w.get("sha256") for w in self.nets.loaded if w.get("role") == "parser"), None)
        if folder is None or sha is None:
            return None
        loss = self.config["loss"]
        key = json.dumps({"sha256": sha, "labels": sorted(set(loss["bg_labels"])),
                          "size": loss["parser_size"], "width": loss["parser_width"],
                          "crops": self.data.names[-len(self.data.train):],
                          "shape": list(self.data.train.shape)}, sort_keys=True)
        return Path(folder) / f"parse-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"

    def _parts(self) -> Parts:
        perf, nets = self.config["perf"], self.nets
        teacher, id_net, vgg = nets.teacher, nets.student.id_net, nets.vgg
        card = getattr(teacher, "takes_source_crop", False)  # a card teacher: fp32 ONNX Runtime as it is
        if perf["precision"] == "bf16":
            kind = self.device.type
            teacher, id_net = teacher if card else Autocast(teacher, kind), Autocast(id_net, kind)
            vgg = Autocast(vgg, kind) if vgg is not None else None
        student_fn: Any = student_forward
        if perf["compile"]:
            teacher, id_net = teacher if card else torch.compile(teacher), torch.compile(id_net)
            vgg = torch.compile(vgg) if vgg is not None else None
            student_fn = torch.compile(student_forward)
        quality = nets.quality.to(self.device) if nets.quality is not None else None
        return Parts(nets.student, teacher, id_net, vgg, self.disc, student_fn, quality)

    # ------------------------------------------------------------------ data
    def batch(self, step: int) -> Batch:
        d = self.config["data"]
        targets, srcs, same, flip_t, flip_s = draw_batch(
            len(self.data), d["batch_size"], self.config["run"]["seed"], step,
            same_fraction=d["same_identity_fraction"], hflip=d["hflip"], pairs=d["pairs"])
        rows = slice(self.rank, None, self.world)
        return self._make_batch(*(t[rows] for t in (targets, srcs, same, flip_t, flip_s)))

    def _make_batch(self, targets: Tensor, srcs: Tensor, same: Tensor, flip_t: Tensor | None = None,
                    flip_s: Tensor | None = None) -> Batch:
        target = to_float(self.data.train[targets], flip_t).to(self.device)
        source = to_float(self.data.train[srcs], flip_s).to(self.device)
        if self.parser_masks is not None:
            background = to_float(self.parser_masks[targets] * 255, flip_t).to(self.device)
        else:
            background = self.background.expand(len(targets), -1, -1, -1)
        pair_ids = targets + len(self.data) * same.long()
        return Batch(source, target, background, same.to(self.device), pair_ids)

    def _frozen_nets(self) -> list[nn.Module | None]:
        nets = self.nets
        return [nets.teacher, nets.student.id_net, nets.vgg, nets.quality]

    def _cached_view(self, batch: Batch) -> TeacherView | None:
        """The pair-only part of the step from the cache. A batch with a row not cached yet is computed
        whole, exactly as the uncached step computes it (a smaller sub-batch can take other kernels and
        differ in the last bits), and its new rows are kept."""
        if not self.config["perf"]["cache_teacher"]:
            return None
        assert batch.pair_ids is not None
        with self.timer.section("cache"):
            self.cache.validate(self._cache_depends.stamp())
            ids = batch.pair_ids.tolist()
            missing = self.cache.missing(ids, self.config["loss"]["lambda_feature"] > 0)
        if missing:
            view = pair_view(self.config, self.parts, batch, self.timer.section)
            with self.timer.section("cache"):
                self.cache.store(ids, view)
            return view
        with self.timer.section("cache"):
            return self.cache.view(ids)

    def fill_cache(self) -> int:
        """Compute and keep every pair ``pairs = "fixed"`` can draw (each target with its fixed source,
        and with itself when same-identity rows are on), a batch at a time; returns the pairs held.
        Training fills the cache lazily anyway; this makes every step after it a fully cached one."""
        if not self.config["perf"]["cache_teacher"]:
            raise BadInputError("fill_cache needs [perf] cache_teacher = true")
        n, d = len(self.data), self.config["data"]
        targets = torch.arange(n)
        sources = fixed_sources(targets, n, self.config["run"]["seed"])
        groups = [(targets, sources, torch.zeros(n, dtype=torch.bool))]
        if d["same_identity_fraction"] > 0:
            groups.append((targets, targets, torch.ones(n, dtype=torch.bool)))
        for t, s, same in groups:
            for start in range(0, n, d["batch_size"]):
                part = slice(start, start + d["batch_size"])
                self._cached_view(self._make_batch(t[part], s[part], same[part]))
        self.timer.take()
        return len(self.cache.entries)

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        step_start = time.perf_counter()
        with self.timer.section("data"):
            batch = self.batch(self.step)
        cached = self._cached_view(batch)
        # D's weight gradients from the student's loss would be discarded (the D step zeroes them
        # first): D is frozen for the student's pass, which then only carries gradients through it
        if self.disc is not None:
            self.disc.requires_grad_(False)
        try:
            total, terms, extras = objective(self.config, self.parts, batch, cached, self.timer.section)
            self.opt.zero_grad(set_to_none=True)
            with self.timer.section("backward"):
                total.backward()
        finally:
            if self.disc is not None:
                self.disc.requires_grad_(True)
        with self.timer.section("optimizer"):
            grad_norm = self._sync_and_clip()
            self.opt.step()
        d_loss = None
        if self.disc is not None and self.d_opt is not None:
            with self.timer.section("discriminator"):
                self.d_opt.zero_grad(set_to_none=True)
                loss_d = d_hinge_loss(self.disc, batch.target, extras["output"].detach())
                loss_d.backward()
                self._allreduce(list(self.disc.parameters()))
                self.d_opt.step()
                d_loss = float(loss_d.detach())
        self.step += 1
        logged = self._global_batch({"loss_total": total.detach(),
                                     **{f"loss_{k}": v.detach() for k, v in terms.items()}},
                                    extras["alpha"].detach().float())
        entry = {"step": float(self.step), "grad_norm": grad_norm, **logged,
                 "step_s": time.perf_counter() - step_start}
        if d_loss is not None:
            entry["loss_d"] = d_loss
        self.history.append(entry)
        return entry

    def _global_batch(self, means: dict[str, Tensor], alpha: Tensor) -> dict[str, float]:
        """The step's loss terms and α statistics over the global batch: under torchrun each rank holds
        its rows, and a record must describe the step that ran, not rank 0's half of it."""
        stats = {**means, "alpha_mean": alpha.mean(), "alpha_frac_below_0_1": (alpha < 0.1).float().mean()}
        low = alpha.min()
        if self.world > 1:
            import torch.distributed as dist

            flat = torch.stack([v.float().reshape(()) for v in stats.values()])
            dist.all_reduce(flat)  # equal rows per rank: the mean of the ranks' means
            stats = dict(zip(stats, flat / self.world, strict=True))
            low = low.clone()
            dist.all_reduce(low, op=dist.ReduceOp.MIN)
        return {**{k: float(v) for k, v in stats.items()}, "alpha_min": float(low)}

    def _allreduce(self, params: list[nn.Parameter]) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset: offset + g.numel()].view_as(g).clone()
            offset += g.numel()

    def _sync_and_clip(self) -> float:
        self._allreduce(self.params)
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads \
            else torch.zeros(())
        clip = self.config["optim"]["grad_clip"]
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, clip)
        return float(norm)

    # ------------------------------------------------------------------ evaluation
    def _eval_pairs(self) -> tuple[Tensor, Tensor]:
        held = self.data.heldout
        target = to_float(held).to(self.device)
        source = to_float(held.roll(-1, dims=0)).to(self.device)
        return source, target

    @torch.no_grad()
    def evaluate(self, write_samples: bool = True) -> dict[str, float]:
        source, target = self._eval_pairs()
        if self._eval_teacher is None:
            self._eval_teacher = run_teacher(self.nets.teacher, source, target)
        student = self.nets.student
        student.swap.eval()
        try:
            result, _ = student_forward(student, id_input(source), target)
        finally:
            student.swap.train()
        metrics = image_metrics(result, self._eval_teacher)
        metrics.update(self._identity_metrics(source, result))
        metrics["step"] = float(self.step)
        self.evals.append(metrics)
        if write_samples and self.rank == 0:
            shown = range(min(4, len(target)))
            rows = [[source[i], target[i], self._eval_teacher[i], result[i]] for i in shown]
            write_grid(self.out / "samples" / f"step_{self.step:08d}.png", rows)
        return metrics

    def _identity_metrics(self, source: Tensor, result: Tensor) -> dict[str, float]:
        """Mean identity cosine to the source of the student's and the teacher's held-out swaps, with
        an evaluator other than the training ArcFace (:class:`HeldOutIdentity`); {} when off or when
        dlib is missing (said once)."""
        if not self.config["run"]["eval_identity"] or self._id_eval is False:
            return {}
        if self._id_eval is None:
            try:
                self._id_eval = HeldOutIdentity()
            except MissingDependencyError as exc:
                sys.stderr.write(f"distill: no held-out identity cosine: {exc}\n")
                self._id_eval = False
                return {}
        assert self._eval_teacher is not None
        if self._id_teacher is None:
            self._id_teacher = float(self._id_eval.cosines(source, self._eval_teacher).mean())
        return {"id_cos_student": float(self._id_eval.cosines(source, result).mean()),
                "id_cos_teacher": self._id_teacher}

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "student": self.nets.student.swap.state_dict(),
            "disc": self.disc.state_dict() if self.disc is not None else {},
            "opt": self.opt.state_dict(),
            "d_opt": self.d_opt.state_dict() if self.d_opt is not None else {},
            "rng": ckpt.rng_state(),
            "config": self.config,
            "config_hash": math_hash(self.config),
            "git_commit": environment().get("git_commit"),
            "teacher_key": getattr(self.nets.teacher, "cache_key", None),
            "history": self.history,
            "evals": self.evals,
        }

    def save(self) -> Path | None:
        if self.rank != 0:
            return None
        return ckpt.save(self.out / "checkpoints", self.state(), self.config["run"]["keep_last"])

    def restore(self, payload: dict[str, Any]) -> None:
        key = getattr(self.nets.teacher, "cache_key", None)
        if key is not None and payload.get("teacher_key") != key:
            raise BadInputError(f"--resume: the teacher card {self.config['model']['teacher']} (or its "
                                "encoder weights) changed since the checkpoint was written; resuming would "
                                "not continue that run: restore the card or start a new --out")
        self.nets.student.swap.load_state_dict(payload["student"])
        if self.disc is not None:
            self.disc.load_state_dict(payload["disc"])
        self.opt.load_state_dict(payload["opt"])
        if self.d_opt is not None:
            self.d_opt.load_state_dict(payload["d_opt"])
        ckpt.set_rng_state(payload["rng"])
        self.step = int(payload["step"])
        self.history = list(payload["history"])
        self.evals = list(payload["evals"])

    # ------------------------------------------------------------------ records
    def _info(self) -> dict[str, Any]:
        return {
            "step": self.step, "teacher": self.nets.teacher_spec.name, "preset": self.preset,
            **({"teacher_card": self.nets.teacher.describe()} if hasattr(self.nets.teacher, "cache_key")
               else {}),
            "config": self.config,
            "config_sources": sources(self.config), "config_hash": math_hash(self.config),
            "random_weights": list(self.nets.random), "weights": self.nets.loaded,
            "train_faces": len(self.data), "heldout_faces": len(self.data.heldout), "world_size": self.world,
            "background_mask": self.mask_info,
            **({"pair_cache": {"holds": self.cached_parts(), **self.cache.info()}}
               if self.config["perf"]["cache_teacher"] else {}),
        }

    def cached_parts(self) -> list[str]:
        """What ``cache_teacher`` keeps per pair under this config (records say it)."""
        loss, rw = self.config["loss"], self.config["reweight"]
        kd = loss["kd"] and (loss["lambda_rec"] > 0 or loss["lambda_per"] > 0)
        parts = ["id_features(source)"]
        if kd:
            parts += ["teacher_output", "alpha"]
            if rw["identity"]:
                parts.append("arcface(teacher_output) via alpha")
            if rw["quality"] == "regressor":
                parts.append("quality(teacher_output) via alpha")
            if loss["lambda_feature"] > 0:
                parts.append("teacher_feature_maps")
        if loss["lambda_per"] > 0 or loss["lambda_style"] > 0:
            parts.append("vgg(teacher_output)" if loss["kd"] else "vgg(target)")
        return parts

    def record(self, stage: str, metrics: dict[str, float]) -> None:
        if self.rank != 0:
            return
        size = self.data.train.shape[-1]
        rec = Record("distill", self.nets.student_spec.name, stage=stage, metrics=metrics,
                     input_shapes={"target": [self.config["data"]["batch_size"], 3, size, size]},
                     info=self._info())
        append_records(self.out / "records.jsonl", stamp([rec], self.run_id))

    def log_window(self, window: list[dict[str, float]], wall: float) -> dict[str, float]:
        """Mean of each training signal over the window, plus the time split and images/s."""
        keys = {k for e in window for k in e if k != "step"}
        metrics = {k: sum(e.get(k, 0.0) for e in window) / len(window) for k in sorted(keys)}
        times = self.timer.take()
        for name in SECTIONS:
            metrics[f"time_{name}_s"] = times.get(name, 0.0) / len(window)
        counted = sum(times.values()) / len(window)
        metrics["time_uncounted_s"] = max(wall / len(window) - counted, 0.0)
        metrics["images_per_s"] = self.config["data"]["batch_size"] * len(window) / wall if wall > 0 else 0.0
        metrics["step"] = float(self.step)
        return metrics

    # ------------------------------------------------------------------ the loop
    def run(self, steps: int) -> None:
        run = self.config["run"]
        if not self.evals:
            self.record("eval", self.evaluate())
        window: list[dict[str, float]] = []
        wall_start = time.perf_counter()
        try:
            while self.step < steps:
                window.append(self.train_step())
                if self.step % run["log_every"] == 0 or self.step == steps:
                    metrics = self.log_window(window, time.perf_counter() - wall_start)
                    self.record("train", metrics)
                    self._progress(metrics, steps)
                    window, wall_start = [], time.perf_counter()
                if self.step % run["eval_every"] == 0 and self.step < steps:
                    self.record("eval", self.evaluate())
                if self.step % run["ckpt_every"] == 0:
                    self.save()
        except KeyboardInterrupt:
            path = self.save()
            sys.stderr.write(f"\ndistill: interrupted at step {self.step}; saved {path} "
                             "(continue with --resume)\n")
            raise
        if not self.evals or self.evals[-1]["step"] != self.step:
            self.record("eval", self.evaluate())
        self.save()

    def _progress(self, metrics: dict[str, float], steps: int) -> None:
        if self.rank != 0:
            return
        terms = " ".join(f"{k.removeprefix('loss_')} {v:.4g}" for k, v in metrics.items()
                         if k.startswith("loss_") and k != "loss_total")
        sys.stderr.write(f"distill: step {self.step}/{steps} loss {metrics['loss_total']:.4g} ({terms}) "
                         f"α {metrics['alpha_mean']:.3f} {metrics['images_per_s']:.1f} img/s\n")

    # ------------------------------------------------------------------ outputs
    def export(self) -> dict[str, str]:
        """The trained student: safetensors of ``MobileFaceSwap.swap`` (official key names), the curves
        plot, and the official ``.pdparams`` layout when the student is the released architecture."""
        if self.rank != 0:
            return {}
        from safetensors.torch import save_file

        from mfsbench.models.mobilefaceswap import StudentConfig

        out: dict[str, str] = {}
        state = {k: v.detach().cpu().contiguous() for k, v in self.nets.student.swap.state_dict().items()}
        path = self.out / "student.safetensors"
        save_file(state, str(path), metadata={"student": self.nets.student_spec.name, "step": str(self.step),
                                             "config_hash": math_hash(self.config)})
        out["safetensors"] = str(path)
        if self.nets.student.config == StudentConfig():
            from mfsbench.checkpoints.formats import write_official

            pd = write_official(self.nets.student.cpu(), self.out / "MobileFaceSwap_224.pdparams",
                                "mobilefaceswap_pdparams")
            self.nets.student.to(self.device)
            out["pdparams"] = str(pd)
        plot = plot_curves(self.out / "curves.png", self.history, self.evals)
        if plot is not None:
            out["curves"] = str(plot)
        return out
