"""Faces followed from frame to frame between detections, each person keeping one track id.

Detection is the costly step of a video swap (dlib HOG: ~120 ms per 640×480 frame on 2 cores,
against ~1 ms of optical flow and ~2 ms of landmarks per face), and detecting every frame anew is
also what made the swapped person change between frames. So faces are detected every few frames,
and in between each face is carried by optical flow:

* **propagate** (every frame): pyramidal Lucas–Kanade (``cv2.calcOpticalFlowPyrLK``) on the five
  landmarks plus a 4×4 grid inside the face box, checked forward and backward (a point that does
  not come back within :data:`FB_MAX_PX` is dropped). A RANSAC similarity fitted to the surviving
  points moves the box and the landmarks. For the faces about to be swapped, a detector that
  predicts landmarks inside a box (dlib's 68-point model,
  :meth:`~mfsbench.faces.detectors.DlibDetector.landmarks_in_box`) then gives fresh landmarks in the
  moved box (:meth:`FaceTracker.refine`), exactly as after a detection. Fewer than half the points surviving,
  an implausible scale step, or the box leaving the frame marks the track **lost**, which makes the
  caller detect on this same frame.
* **associate** (on a detection): detections are matched to the propagated tracks greedily by box
  IoU (≥ :data:`IOU_MATCH`), then by centre distance (under half the track's box width) for faces
  that moved or grew fast. A matched track takes the detection's box, score and landmarks; an
  unmatched detection starts a new track; a track missed by :data:`MAX_MISSED` + 1 detections in a
  row, or lost and not re-found, ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mfsbench.faces.align import cv2_module
from mfsbench.faces.types import Face

#: Default ``--detect-every``. Between detections faces are tracked (flow for every face, landmarks
#: for the swapped ones: a few ms a face), so a detection every 10 frames (0.4 s at 25 fps) costs a
#: tenth of one per frame; a face entering the frame is found at most 9 frames late, and a lost track
#: triggers a detection on that same frame.
DEFAULT_DETECT_EVERY = 10
#: A point whose backward flow misses its start by more than this (pixels) is not trusted.
FB_MAX_PX = 1.0
#: Box IoU from which a detection is taken as the same face as a track.
IOU_MATCH = 0.3
#: Detections in a row that may miss a tracked face (HOG misses turned heads) before the track ends.
MAX_MISSED = 1
#: Scale change per frame beyond which a flow fit is taken as a failure, not a zoom.
MAX_SCALE_STEP = 1.25
LK_PARAMS = {"winSize": (21, 21), "maxLevel": 3,
             "criteria": (3, 20, 0.03)}  # cv2.TERM_CRITERIA_EPS | COUNT, 20 iterations, 0.03 px

LandmarksInBox = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(eq=False)
class Track:
    """One person followed through the video."""

    id: int
    face: Face
    born: int  # frame index of its first detection
    detections: int = 1  # detections matched to it
    missed: int = 0  # detections in a row that did not find it
    lost: bool = False  # the last propagation failed
    detected_now: bool = True  # its face comes from a detection on the current frame
    refined: bool = True  # its landmarks are a detector's (not only moved by the flow fit)
    distances: list[float] = field(default_factory=list)  # identity distances measured (selection)


def _grid_points(face: Face) -> np.ndarray:
    """The landmarks plus a 4×4 grid over the box's inner 60 %: textured points to follow."""
    x1, y1, x2, y2 = face.box
    xs = np.linspace(x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1), 4)
    ys = np.linspace(y1 + 0.2 * (y2 - y1), y2 - 0.2 * (y2 - y1), 4)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return np.concatenate([face.landmarks5, grid]).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Tracks of the faces in a video; call :meth:`propagate` then :meth:`associate` on every frame."""

    def __init__(self, landmarks_in_box: LandmarksInBox | None = None) -> None:
        self.landmarks_in_box = landmarks_in_box
        self.tracks: list[Track] = []
        self.next_id = 0
        self.frame = -1
        self._gray: np.ndarray | None = None

    @property
    def tracks_seen(self) -> int:
        return self.next_id

    def alive(self, track_id: int) -> Track | None:
        return next((t for t in self.tracks if t.id == track_id), None)

    def propagate(self, frame: np.ndarray) -> bool:
        """Move every track to ``frame`` by optical flow; True when a track was lost (detect now)."""
        cv2 = cv2_module()
        self.frame += 1
        gray = cv2.cvtColor(np.asarray(frame), cv2.COLOR_BGR2GRAY)
        previous, self._gray = self._gray, gray
        for track in self.tracks:
            track.detected_now = False
        if previous is None or not self.tracks:
            return False
        starts = [_grid_points(t.face) for t in self.tracks]
        points = np.concatenate(starts).reshape(-1, 1, 2)
        moved, ok, _ = cv2.calcOpticalFlowPyrLK(previous, gray, points, None, **LK_PARAMS)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray, previous, moved, None, **LK_PARAMS)
        returned = np.linalg.norm(back - points, axis=2)[:, 0] < FB_MAX_PX
        good = (ok[:, 0] == 1) & (ok_back[:, 0] == 1) & returned
        lost_any = False
        offset = 0
        for track, start in zip(self.tracks, starts, strict=True):
            keep = good[offset:offset + len(start)]
            end = moved[offset:offset + len(start), 0]
            offset += len(start)
            track.lost = not self._move(track, frame, start[keep], end[keep], len(start))
            lost_any |= track.lost
        return lost_any

    def _move(self, track: Track, frame: np.ndarray, start: np.ndarray, end: np.ndarray, total: int) -> bool:
        """Apply the similarity that carries ``start`` to ``end`` to the track; False on a failed fit."""
        cv2 = cv2_module()
        if len(start) < max(4, total // 2):
            return False
        matrix, _ = cv2.estimateAffinePartial2D(start, end, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if matrix is None:
            return False
        scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
        if not 1 / MAX_SCALE_STEP < scale < MAX_SCALE_STEP:
            return False
        face = track.face
        centre = matrix[:, :2] @ ((face.box[:2] + face.box[2:]) / 2) + matrix[:, 2]
        half = (face.box[2:] - face.box[:2]) * scale / 2
        box = np.concatenate([centre - half, centre + half])
        height, width = frame.shape[:2]
        if not (0 <= centre[0] < width and 0 <= centre[1] < height):
            return False  # the face has left the frame
        landmarks = face.landmarks5 @ matrix[:, :2].T + matrix[:, 2]
        track.face = Face(box=box, score=face.score, landmarks5=landmarks)
        track.refined = False
        return True

    def refine(self, frame: np.ndarray, track: Track) -> Face:
        """``track``'s face with landmarks predicted in its moved box (when the detector can), for the
        tracks about to be swapped only: the other tracks need only their boxes, and the prediction
        (~2–4 ms a face) is the larger part of tracking's cost."""
        if not track.refined and self.landmarks_in_box is not None:
            face = track.face
            track.face = Face(face.box, face.score, self.landmarks_in_box(frame, face.box))
        track.refined = True
        return track.face

    def associate(self, detections: list[Face]) -> list[Track]:
        """Match a detection on the current frame to the tracks; returns the tracks it started."""
        matches: dict[int, int] = {}  # track index → detection index
        pairs = sorted(((box_iou(t.face.box, d.box), ti, di) for ti, t in enumerate(self.tracks)
                        for di, d in enumerate(detections)), reverse=True)
        for iou, ti, di in pairs:
            if iou >= IOU_MATCH and ti not in matches and di not in matches.values():
                matches[ti] = di
        for ti, track in enumerate(self.tracks):  # fast motion or growth: nearest centre, if close
            centre = (track.face.box[:2] + track.face.box[2:]) / 2
            near = [(float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre)), di)
                    for di, d in enumerate(detections) if di not in matches.values()]
            if ti not in matches and near and min(near)[0] < 0.5 * track.face.width:
                matches[ti] = min(near)[1]
        survivors = []
        for ti, track in enumerate(self.tracks):
            if ti in matches:
                self._update(track, detections[matches[ti]])
            else:
                track.missed += 1
                if track.lost or track.missed > MAX_MISSED:
                    continue
            survivors.append(track)
        fresh = [di for di in range(len(detections)) if di not in matches.values()]
        born = [Track(self.next_id + k, detections[di], self.frame) for k, di in enumerate(fresh)]
        self.next_id += len(born)
        self.tracks = survivors + born
        return born

    @staticmethod
    def _update(track: Track, detection: Face) -> None:
        track.face, track.detections, track.missed = detection, track.detections + 1, 0
        track.lost, track.detected_now, track.refined = False, True, True
