"""``mfsbench distill`` under a 2-process ``torchrun`` on CPU (gloo) takes steps, writes one run, and
agrees with one process on the same global batch.

Agreement needs batch norm over the global batch: each rank holds half the rows, and a plain
``BatchNorm2d`` would normalise each half with its own statistics
(:mod:`mfsbench.distill.sync_norm` all-reduces them; ``SyncBatchNorm`` refuses CPU tensors).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.distill_faces import TEST_MIN_EYE_PX, write_face_folder
from tests.face_assets import face_photos_fixture  # noqa: F401


@pytest.mark.slow
def test_two_process_torchrun_takes_steps(face_photos: dict, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = Path(shutil.which("torchrun") or "torchrun")
    # unrotated photos and their mirrors (24 files, not 48): 4 held out + 2 steps of 4 need 12 crops
    data = write_face_folder(face_photos, tmp_path / "photos", rotated=False)
    toml = tmp_path / "small.toml"
    # 4 held-out crops, not 16: each evaluation (before step 1 and at the end, in every process) runs dlib's
    # descriptor on the held-out swaps, ~15 s a process for 16 on 2 cores; the runs' agreement is in training
    toml.write_text("[loss]\nperceptual_width = 8\n[run]\nlog_every = 1\nckpt_every = 1\n"
                    "[data]\nholdout = 4\n")
    out = tmp_path / "run"
    distill = ["-m", "mfsbench.cli", "distill", "--teacher", "test_simswap",
               "--student", "test_mobilefaceswap", "--data", str(data),
               "--min-eye-distance", str(TEST_MIN_EYE_PX), "--preset", "kd_only",
               "--steps", "2", "--batch-size", "4", "--config", str(toml), "--allow-random-weights"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--standalone", *distill, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    single = tmp_path / "single"
    alone = subprocess.run([sys.executable, *distill, "--out", str(single), "--cache", str(out / "faces")],
                           capture_output=True, text=True, timeout=300, env=env, check=False)
    assert alone.returncode == 0, alone.stderr[-3000:]
    _same_training(out, single)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    train = [r for r in records if r["stage"] == "train"]
    assert len(train) == 2  # rank 0 alone writes records
    assert all(r["info"]["world_size"] == 2 for r in records)
    assert sorted(p.name for p in (out / "checkpoints").glob("ckpt-*.pt")) == ["ckpt-00000001.pt",
                                                                               "ckpt-00000002.pt"]


def _same_training(ranks: Path, single: Path) -> None:
    """The 2-rank run against the 1-process run of the same global batches.

    Step 1 runs on the same weights: its losses (logged over the global batch) and gradient norm must
    match to float rounding. Batch-norm running statistics must match too (global statistics). Adam's
    first steps move every weight by about ±lr whatever its gradient's size, so a weight whose gradient
    is rounding noise may move either way: the weights are compared at that bound, the losses of step
    2 closely."""
    import torch

    def train(run: Path) -> list[dict[str, float]]:
        lines = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        return [r["metrics"] for r in lines if r["stage"] == "train"]

    two, one = train(ranks), train(single)
    keys = [k for k in one[0] if k.startswith("loss_") or k in ("grad_norm", "alpha_mean")]
    for step, tolerance in ((0, 1e-5), (1, 1e-3)):
        for key in keys:
            a, b = two[step][key], one[step][key]
            assert abs(a - b) <= tolerance * max(1e-3, abs(b)), (step + 1, key, a, b)
    def student(run: Path, step: int) -> dict[str, torch.Tensor]:
        return torch.load(run / "checkpoints" / f"ckpt-{step:08d}.pt", weights_only=False)["student"]

    lr = json.loads((single / "records.jsonl").read_text().splitlines()[0])["info"]["config"]["optim"]["lr"]
    after_one, after_two = (student(ranks, 1), student(single, 1)), (student(ranks, 2), student(single, 2))
    for name in after_one[0]:
        if "running" in name:  # step 1's statistics, of the same inputs through the same weights
            gap = float((after_one[0][name].float() - after_one[1][name].float()).abs().max())
            assert gap <= 1e-5, (name, gap)
        else:  # two Adam steps move a weight by at most about lr each
            gap = float((after_two[0][name].float() - after_two[1][name].float()).abs().max())
            assert gap <= 2.5 * 2 * lr, (name, gap)
