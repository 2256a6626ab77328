"""Ground truth beside the prediction for keypoints (`evaluate keypoints --video`), in the style of the masks'
side-by-side: OUT/<seq>/side-by-side/video.mp4, under the same "ground truth | prediction" label band, left the
frame with the annotated visible joints (frames without an annotation show none), right with the propagated ones,
one colour per joint slot; its middle frame is OUT/<seq>/side-by-side/still.png, the still a report embeds."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from spixwalk.video import Mp4Writer

from .side_by_side import STILL, VIDEO, label_band


def joint_colour(slot: int) -> tuple[int, int, int]:
    hsv = np.uint8([[[(slot * 47) % 180, 220, 255]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_points(frame: np.ndarray, points: np.ndarray, slots, keep: np.ndarray) -> np.ndarray:
    """frame with a filled dot (ringed in black) per kept joint with a position."""
    out = np.ascontiguousarray(frame.copy())
    radius = max(2, round(frame.shape[0] / 120))
    for j in np.flatnonzero(keep & ~np.isnan(points).any(1)):
        centre = (int(points[j, 1]), int(points[j, 0]))
        cv2.circle(out, centre, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, joint_colour(slots[j]), -1, cv2.LINE_AA)
    return out


class KeypointVideo:
    def __init__(self, track, folder: Path, fps: float):
        self.track, self.folder = track, Path(folder)
        self.still_at = track.query + (len(track.frames) - track.query) // 2
        (self.folder / VIDEO).parent.mkdir(parents=True, exist_ok=True)  # the side-by-side folder
        self.video = Mp4Writer(self.folder / VIDEO, fps)

    def add(self, t: int, frame: np.ndarray, pred: np.ndarray) -> None:
        tr = self.track
        left = frame if t not in tr.points else draw_points(frame, tr.points[t], tr.slots, tr.visible[t])
        right = draw_points(frame, pred, tr.slots, np.ones(len(pred), dtype=bool))
        h, w = frame.shape[:2]
        both = np.concatenate([label_band(h, w), np.concatenate([left, right], axis=1)], axis=0)
        self.video.write(both)
        if t == self.still_at:
            Image.fromarray(both).save(self.folder / STILL)

    def close(self) -> None:
        self.video.close()

    def abort(self) -> None:
        self.video.abort()
