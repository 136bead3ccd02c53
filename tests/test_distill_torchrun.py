"""``mfsbench distill`` under a 2-process ``torchrun`` on CPU (gloo) takes a step and writes one run.

What this does not check yet: equality with a single process. Each rank normalises its BatchNorm
layers (predictor, output and mask heads) over its own half of the batch, so a 2-rank step is not the
1-process step of the full batch; it equals one with per-half statistics.
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
    data = write_face_folder(face_photos, tmp_path / "photos")
    toml = tmp_path / "small.toml"
    toml.write_text("[loss]\nperceptual_width = 8\n[run]\nlog_every = 1\nckpt_every = 1\n")
    out = tmp_path / "run"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--standalone", "-m", "mfsbench.cli", "distill",
           "--teacher", "test_simswap", "--student", "test_mobilefaceswap", "--data", str(data),
           "--min-eye-distance", str(TEST_MIN_EYE_PX), "--preset", "kd_only", "--out", str(out),
           "--steps", "2", "--batch-size", "4", "--config", str(toml), "--allow-random-weights"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    train = [r for r in records if r["stage"] == "train"]
    assert len(train) == 2  # rank 0 alone writes records
    assert all(r["info"]["world_size"] == 2 for r in records)
    assert sorted(p.name for p in (out / "checkpoints").glob("ckpt-*.pt")) == ["ckpt-00000001.pt",
                                                                               "ckpt-00000002.pt"]
