"""Benchmark: video-mode `mobilefaceswap_224` end to end on a 640×480 video (budget: ≥ 25 FPS).

Builds a 2-second 640×480 clip from a registry face photo (fetched into the asset cache, as the tests
do), runs the real pipeline (detect → align → frame network → paste-back) with random weights, and
prints the per-stage split: dlib at its default upsampling (finds small faces), without
upsampling (faces as large as a face-swap video's), and detecting every 5th frame.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

TARGET_FPS = 25.0


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.pipeline import STAGES, SwapPipeline
    from mfsbench.swap.video import iter_frames
    from tests.face_assets import fetch_face_photos, make_video

    torch.set_num_threads(2)
    photos = fetch_face_photos()
    spec = get_spec("mobilefaceswap_224")
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(photos["biden"].path, Path(tmp) / "clip.mp4")
        frames = list(iter_frames(video))
    for upsample, every in ((1, 1), (0, 1), (0, 5)):
        detector = get_detector("dlib", upsample=upsample)
        pipeline = SwapPipeline(spec, create_model(spec.name), detector, 224, every)
        pipeline.inject(read_image(photos["obama"].path))
        pipeline.timer.clear()
        started = time.perf_counter()
        for frame in frames:
            pipeline.swap_frame(frame)
        fps = len(frames) / (time.perf_counter() - started)
        totals = pipeline.timer.total_s()
        spent = sum(totals.values())
        split = ", ".join(f"{s} {100 * totals[s] / spent:.0f}%" for s in STAGES if s in totals)
        print(f"dlib upsample={upsample}, detect every {every} frame(s): {fps:.1f} fps "
              f"(ratio to {TARGET_FPS:.0f} fps: {fps / TARGET_FPS:.2f}); time split: {split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
