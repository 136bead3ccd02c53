"""Benchmark: what `mfsbench swap` keeps of a video (issue 16: faceless bit-exact, size within 10 %).

Generates two 640×480 clips with a 440 Hz AAC audio track through PyAV (H.264 at x264's default
CRF 23, as a phone or an editor would deliver), runs ``mfsbench swap`` on each end to end (decode,
pipeline, encode, mux; ``mobilefaceswap_224`` with random weights: the output container, not the
swap quality, is measured) and prints per clip:

* output size ÷ input size;
* frames: bit-exact (the decoded BGR frames equal) or the PSNR against the input; for the face
  clip, also the PSNR of a border band the face never reaches (what a re-encode costs pixels the
  swap did not touch);
* the audio stream: present, same codec, same duration, same packets (a copy) or not;
* encode ms/frame: libx264 at the default CRF 18/veryfast on the clip's frames alone, next to
  OpenCV's mp4v writer that the swap used before (its size and PSNR on the faceless clip too).

Run: ``.venv/bin/python benchmarks/bench_swap_output.py``. Timings depend on the machine's load.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SIZE = (640, 480)
FPS = 25
SECONDS = 3.0


def _wall(count: int) -> Iterator[np.ndarray]:
    import cv2

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (SIZE[1], SIZE[0] + 2 * count, 3), dtype=np.uint8)
    wall = cv2.GaussianBlur(noise, (7, 7), 0)
    for i in range(count):
        yield np.ascontiguousarray(wall[:, 2 * i:2 * i + SIZE[0]])


def _face(photo: Path, count: int) -> Iterator[np.ndarray]:
    import cv2

    image = cv2.imread(str(photo))
    scale = min(SIZE[0] / image.shape[1], SIZE[1] / image.shape[0]) * 0.6
    for i in range(count):
        matrix = np.array([[scale, 0, (SIZE[0] - scale * image.shape[1]) / 2 + i],
                           [0, scale, (SIZE[1] - scale * image.shape[0]) / 2]])
        yield cv2.warpAffine(image, matrix, SIZE, borderMode=cv2.BORDER_REPLICATE)


def _frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _audio(path: Path) -> tuple[str, float, list[bytes]] | None:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.dts is not None]
        seconds = sum(p.duration for p in packets) * float(stream.time_base)
        return stream.codec_context.name, seconds, [bytes(p) for p in packets]


def _swap(source: Path, target: Path, out: Path) -> float:
    from mfsbench.cli.main import main

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["swap", "--model", "mobilefaceswap_224", "--source", str(source),
                     "--target", str(target), "--out", str(out), "--allow-random-weights",
                     "--records", str(out.with_suffix(".jsonl"))])
    if code != 0:
        raise RuntimeError(f"mfsbench swap failed ({code}): {err.getvalue()}")
    return time.perf_counter() - started


def _report(name: str, target: Path, out: Path, seconds: float) -> None:
    before, after = _frames(target), _frames(out)
    same = len(before) == len(after)
    exact = same and all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    psnr = min(_psnr(a, b) for a, b in zip(before, after, strict=False))
    band = min(_psnr(np.concatenate([a[:48], a[-48:]]), np.concatenate([b[:48], b[-48:]]))
               for a, b in zip(before, after, strict=False))
    audio_in, audio_out = _audio(target), _audio(out)
    audio = ("missing" if audio_out is None else
             f"{audio_out[0]} {audio_out[1]:.3f} s (input {audio_in[0]} {audio_in[1]:.3f} s), "
             + ("packets identical (stream copy)" if audio_out[2] == audio_in[2] else "packets differ"))
    ratio = out.stat().st_size / target.stat().st_size
    from mfsbench.records import read_records

    record = read_records(out.with_suffix(".jsonl"))[-1]
    how = "stream copy" if record.info["stream_copy"] else f"re-encoded {record.info['encoding']}"
    print(f"{name}: {record.metrics['frames_swapped']} of {len(after)}/{len(before)} frames swapped, {how}, "
          f"size ratio {ratio:.3f} (target ≤ 1.10 faceless), "
          f"frames {'bit-exact' if exact else f'min PSNR {psnr:.1f} dB'}, border-band min PSNR "
          f"{band:.1f} dB, audio: {audio}; `mfsbench swap` wall time {seconds:.1f} s (model setup included)")


def _encode_cost(frames: list[np.ndarray], tmp: Path) -> None:
    import cv2

    from mfsbench.swap.av_io import EncodeSettings, VideoOutput

    out = tmp / "encode_only.mp4"
    writer = VideoOutput(out, EncodeSettings(), width=SIZE[0], height=SIZE[1], fps=FPS)
    started = time.perf_counter()
    for index, frame in enumerate(frames):
        writer.write(frame, index)
    writer.close()
    x264_ms = 1000 * (time.perf_counter() - started) / len(frames)
    x264_psnr = min(_psnr(a, b) for a, b in zip(frames, _frames(out), strict=True))
    old = tmp / "opencv_mp4v.mp4"
    cv_writer = cv2.VideoWriter(str(old), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    started = time.perf_counter()
    for frame in frames:
        cv_writer.write(frame)
    cv_writer.release()
    mp4v_ms = 1000 * (time.perf_counter() - started) / len(frames)
    mp4v_psnr = min(_psnr(a, b) for a, b in zip(frames, _frames(old), strict=True))
    print(f"encode only, faceless frames: libx264 CRF 18 veryfast {x264_ms:.1f} ms/frame, "
          f"{out.stat().st_size / 1024:.0f} KiB, min PSNR {x264_psnr:.1f} dB; OpenCV mp4v (before) "
          f"{mp4v_ms:.1f} ms/frame, {old.stat().st_size / 1024:.0f} KiB, min PSNR {mp4v_psnr:.1f} dB")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from mfsbench.swap.av_clips import write_clip
    from tests.face_assets import fetch_face_photos

    torch.set_num_threads(2)
    photos = fetch_face_photos()
    count = round(SECONDS * FPS)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        wall = write_clip(tmp / "wall.mp4", _wall(count), FPS, audio_seconds=SECONDS, codec="libx264")
        face = write_clip(tmp / "face.mp4", _face(photos["biden"].path, count), FPS, audio_seconds=SECONDS)
        for name, target in (("faceless clip", wall), ("face clip", face)):
            out = tmp / f"out_{target.name}"
            _report(name, target, out, _swap(photos["obama"].path, target, out))
        _encode_cost(_frames(wall), tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
