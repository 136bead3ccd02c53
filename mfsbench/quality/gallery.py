"""The ID-retrieval gallery, retrieval itself, and identity groups.

**Gallery** (``gallery = one_per_source_identity``): one identity embedding per source identity of
the *whole subset* (every shard computes the same gallery, so shards score identically), from a
held-out frame (``gallery_frame = first_held_out``): the first frame of the video, in frame order,
with a face that no sampled index or substitution window can use — usually frame 0, since bin
centres leave the frames before the first sample unused. Target frames never use it.

**Retrieval** (``id_similarity = cosine``): each swapped face's embedding against the gallery by
cosine; the stored result is the gallery identity it retrieved (ties go to the lower index, as
``argmax``), so the report derives video-level top-1 (retrieved == source), identity-grouped top-1
(retrieved in the source's group, spec §1.3) and the target-retrieval rate (retrieved in the
target's group) from one stored value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mfsbench.device.timing import StageTimer
from mfsbench.quality.card import evaluator_key
from mfsbench.quality.plan import PREPARE_ROW
from mfsbench.quality.prepare import VideoPreparer, gallery_candidates
from mfsbench.quality.store import GALLERY_ROW


@dataclass(frozen=True)
class Gallery:
    """Gallery identities (video ids) and their embeddings, one row each."""

    ids: list[str]
    embeddings: np.ndarray

    def retrieve(self, embedding: np.ndarray, source: str) -> tuple[str, bool, float]:
        """``(retrieved identity, retrieved == source, cosine to the source's entry)``: the same
        argmax as :func:`~mfsbench.quality.evaluators.id_retrieval` (ties to the lower index)."""
        from mfsbench.quality.evaluators import _unit_rows

        truth = self.ids.index(source)
        cosine = (_unit_rows(np.asarray(embedding)[None], "query embedding")
                  @ _unit_rows(self.embeddings, "gallery embeddings").T)[0]
        best = int(np.argmax(cosine))
        return self.ids[best], best == truth, float(cosine[truth])


def group_map(groups: Iterable[Sequence[str]], videos: Iterable[str] = ()) -> dict[str, str]:
    """Video id -> identity-group name (the group's smallest id); a video in no group is its own."""
    out = {v: v for v in videos}
    for group in groups:
        name = min(group)
        out.update(dict.fromkeys(group, name))
    return out


class GalleryBuilder(VideoPreparer):
    """Stage 3 of a run: the gallery embeddings (cached, one commit per identity)."""

    def build_gallery(self, sources: list[str]) -> Gallery:
        if self.evaluators.identity is None:
            return Gallery([], np.zeros((0, 1)))
        ids, rows = [], []
        for video in self._bar(sources, len(sources), "gallery"):
            value, _ = self.gallery_embedding(video)
            if value is not None:
                ids.append(video)
                rows.append(value)
        return Gallery(ids, np.stack(rows) if rows else np.zeros((0, 1)))

    def gallery_embedding(self, video: str) -> tuple[np.ndarray | None, str | None]:
        """One identity embedding per source identity, from a held-out frame (cached, one commit)."""
        identity = self.evaluators.identity
        key = evaluator_key(identity)
        chosen = self.store.selection(self.fp, video, "gallery")
        if chosen is not None and chosen["frame"] is None:
            return None, chosen["reason"]
        if chosen is not None:
            value = self.store.output(self.fp, GALLERY_ROW, key, target=video, source="",
                                      frame=chosen["frame"], kind="embedding")
            if value is not None:
                return value, None
        from mfsbench.quality.frames import VideoError, sample_indices, video_frame_count

        path = self.tree.original_video(video)
        timer = StageTimer()
        try:
            n_frames = video_frame_count(path)
        except (VideoError, OSError) as exc:
            reason = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            with self.store.transaction():
                self.store.put_selection(self.fp, video, "gallery", {"frame": None, "reason": reason})
            return None, reason
        sampled = sample_indices(n_frames, self.protocol.frames_per_video)
        cached = self.store.detections(self.fp, video)
        frames: dict[int, np.ndarray] = {}
        with self.store.transaction():
            for index in gallery_candidates(sampled, n_frames):
                face = self._face(video, path, index, frames=frames, cached=cached, timer=timer)
                if face is None:
                    continue
                frame = frames.get(index)
                if frame is None:
                    frame = self._read(path, [index], timer)[index]
                with timer.time("eval_identity"):
                    value = identity.embed(frame, face)
                self.store.put_selection(self.fp, video, "gallery", {"frame": index, "reason": None})
                self.store.put_output(self.fp, GALLERY_ROW, key, target=video, source="", frame=index,
                                      kind="embedding", value=value)
                self._put_item(PREPARE_ROW, key, target=video, source="gallery", status="ok",
                               reason=None, results=[], timings=timer.items())
                return np.asarray(value, np.float64), None
            reason = "no held-out frame with a face"
            self.store.put_selection(self.fp, video, "gallery", {"frame": None, "reason": reason})
        return None, reason
