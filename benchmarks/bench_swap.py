"""Benchmark: video-mode `mobilefaceswap_224` end to end on a 640×480 video (budget: ≥ 25 FPS).

Builds a 2-second 640×480 clip from a registry face photo (fetched into the asset cache, as the tests
do), runs the real pipeline with random weights and prints two figures per detector setting:

* **end to end**: decode → detect → align → frame network → paste-back → encode, i.e. reading the
  input file and writing the output file inside the timed loop, as ``mfsbench swap`` does;
* **per-frame pipeline, in-memory frames**: the same without decoding and encoding (frames decoded
  before the timer starts), with its per-stage split.

Settings: dlib at its default upsampling (finds small faces), without upsampling (faces as large as
a face-swap video's), and detecting every 5th frame.
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
    from mfsbench.swap.video import VideoWriter, iter_frames, probe_video
    from tests.face_assets import fetch_face_photos, make_video

    torch.set_num_threads(2)
    photos = fetch_face_photos()
    spec = get_spec("mobilefaceswap_224")
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(photos["biden"].path, Path(tmp) / "clip.mp4")
        info = probe_video(video)
        frames = list(iter_frames(video))
        for upsample, every in ((1, 1), (0, 1), (0, 5)):
            detector = get_detector("dlib", upsample=upsample)
            pipeline = SwapPipeline(spec, create_model(spec.name), detector, 224, every)
            pipeline.inject(read_image(photos["obama"].path))
            started = time.perf_counter()  # end to end: decode and encode inside the timed loop
            writer = VideoWriter(Path(tmp) / f"out_{upsample}_{every}.mp4", info)
            count = 0
            try:
                for frame in iter_frames(video):
                    writer.write(pipeline.swap_frame(frame))
                    count += 1
            finally:
                writer.close()
            e2e = count / (time.perf_counter() - started)
            pipeline.timer.clear()
            started = time.perf_counter()  # per-frame pipeline on frames already in memory
            for frame in frames:
                pipeline.swap_frame(frame)
            fps = len(frames) / (time.perf_counter() - started)
            totals = pipeline.timer.total_s()
            spent = sum(totals.values())
            split = ", ".join(f"{s} {100 * totals[s] / spent:.0f}%" for s in STAGES if s in totals)
            print(f"dlib upsample={upsample}, detect every {every} frame(s): end to end (decode + encode) "
                  f"{e2e:.1f} fps (ratio to {TARGET_FPS:.0f} fps: {e2e / TARGET_FPS:.2f}); per-frame "
                  f"pipeline, in-memory frames: {fps:.1f} fps; time split: {split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
