"""Find the face in a photo and align it as CelebA's aligned faces are, so a selfie or a photo with the face
off-centre, small or tilted becomes a 178×218 picture like those of img_align_celeba.

    aligned = alignment.align_face(photo_array, name="me.jpg")   # (218, 178, 3) uint8, or ValueError

The detector is OpenCV's Haar cascade for frontal faces (haarcascade_frontalface_alt2), and its eye cascade in the
face's upper part; both ship inside the opencv-python-headless wheel, so nothing is downloaded. The photo is then
moved, scaled and turned so that the face lands where the same detector finds faces in CelebA's aligned pictures
(the constants below, measured on 400 of them; tests/test_alignment.py measures them again when CelebA is there):
the eyes' midpoint, their distance and their tilt when both eyes are found, else the face box's centre and width.

A photo in which no face is found, or two or more faces of similar size, is refused with a ValueError naming it.
Alignment is for photos; CelebA's aligned pictures and faces already at the training size need none
(celeba_utils.needs_alignment).
"""

import math
import threading
from typing import Optional

import numpy as np

CELEBA_SIZE = (178, 218)  # width, height of the aligned pictures
# Where haarcascade_frontalface_alt2 (scale step 1.1, 5 neighbours) finds the face in CelebA's aligned 178×218
# pictures: the median over 400 of img_align_celeba (the face found in 90% of them, never two), and where the eye
# cascade finds the eyes in the 65% where it finds both. Spread over those pictures: the box centre ±1.5/±2.1 px,
# its width ±8.5%; the eyes' midpoint ±1.2 px, their distance ±8.9%, their tilt ±2.4°.
FACE_BOX_CENTRE = (89.0, 123.0)
FACE_BOX_WIDTH = 101.0
EYES_MIDPOINT = (88.0, 112.0)
EYE_DISTANCE = 39.5
SIMILAR_FACE = 0.6  # a second face at least this share of the largest one's width makes the photo ambiguous
DETECTION_SIDE = 800  # photos larger than this are searched for faces at this size
MOST_TILT = 30.0  # degrees: a tilt the eyes suggest beyond this is a misdetection, and ignored


class NoSingleFace(ValueError):
    """A photo in which no face, or more than one, was found: the message names the photo and what to do."""


def _cascade(file_name: str):
    import cv2

    path = cv2.data.haarcascades + file_name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV {cv2.__version__} could not load its cascade {path}: OpenCV 5 wheels ship none; "
                           "install the pinned 4.x (pip install -r requirements.txt)")
    return cascade


_loaded = threading.local()  # one set of cascades per thread: load_faces aligns photos on every core at once


def cascade(kind: str):
    """OpenCV's cascade for "face" or "eye", loaded once in each thread. A CascadeClassifier keeps working state
    while it detects, so one object shared by the decoding threads could see another thread's picture (a flat
    wall once came out as a face under load); each thread gets its own."""
    cascades = _loaded.__dict__
    if kind not in cascades:
        cascades[kind] = _cascade({"face": "haarcascade_frontalface_alt2.xml", "eye": "haarcascade_eye.xml"}[kind])
    return cascades[kind]


def find_faces(gray: np.ndarray) -> np.ndarray:
    """Face boxes (x, y, width, height) in a uint8 grey picture, largest first."""
    import cv2

    smallest = max(24, int(0.08 * min(gray.shape)))
    boxes = cascade("face").detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5,
                                             minSize=(smallest, smallest))
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return boxes[np.argsort(-boxes[:, 2])]


def find_eyes(gray: np.ndarray, box) -> Optional[tuple]:
    """((left x, y), (right x, y)) of the two eyes in the upper part of a face box, or None."""
    import cv2

    x, y, width, height = (int(round(value)) for value in box)
    region = cv2.equalizeHist(gray[y:y + int(height * 0.6), x:x + width])
    smallest = max(4, width // 8)
    eyes = np.asarray(cascade("eye").detectMultiScale(region, scaleFactor=1.05, minNeighbors=4,
                                                      minSize=(smallest, smallest)), np.float64).reshape(-1, 4)
    centres = [(x + ex + ew / 2, y + ey + eh / 2, ew) for ex, ey, ew, eh in eyes]
    left = [centre for centre in centres if centre[0] < x + width / 2]
    right = [centre for centre in centres if centre[0] >= x + width / 2]
    if not left or not right:
        return None
    (lx, ly, _), (rx, ry, _) = max(left, key=lambda c: c[2]), max(right, key=lambda c: c[2])
    return (lx, ly), (rx, ry)


def face_transform(gray: np.ndarray, name: str = "the photo") -> np.ndarray:
    """The 2×3 affine matrix that maps the photo's one face to where CelebA's aligned pictures hold theirs."""
    boxes = find_faces(gray)
    if not len(boxes):
        raise NoSingleFace(f"{name}: no face found. Use a photo of one face, roughly frontal and upright, at least "
                         f"{max(24, int(0.08 * min(gray.shape)))} pixels wide")
    if len(boxes) > 1 and boxes[1, 2] >= SIMILAR_FACE * boxes[0, 2]:
        raise NoSingleFace(f"{name}: {len(boxes)} faces found; crop the photo to the one face you want")
    box = boxes[0]
    eyes = find_eyes(gray, box)
    tilt = 0.0
    if eyes is not None:
        (lx, ly), (rx, ry) = eyes
        tilt = math.degrees(math.atan2(ry - ly, rx - lx))
    if eyes is not None and abs(tilt) <= MOST_TILT:
        centre, target = ((lx + rx) / 2, (ly + ry) / 2), EYES_MIDPOINT
        # the eyes' distance and the box's width each say how big the face is: take both (geometric mean)
        scale = math.sqrt(EYE_DISTANCE / math.hypot(rx - lx, ry - ly) * FACE_BOX_WIDTH / box[2])
    else:
        tilt = 0.0
        centre, target = (box[0] + box[2] / 2, box[1] + box[3] / 2), FACE_BOX_CENTRE
        scale = FACE_BOX_WIDTH / box[2]
    angle = math.radians(tilt)
    rotation = scale * np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    offset = np.array(target) - rotation @ np.array(centre)
    return np.concatenate([rotation, offset[:, None]], axis=1)


def align_face(photo: np.ndarray, name: str = "the photo") -> np.ndarray:
    """(218, 178, 3) uint8: the photo's one face moved, scaled and turned as CelebA aligns faces (the module's
    doc); the picture's edge pixels fill what lies outside it. NoSingleFace (a ValueError), naming the photo, for no
    face or several."""
    import cv2

    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"{name}: align_face takes a uint8 (height, width, 3) RGB picture, got {photo.dtype} "
                         f"{photo.shape}")
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    detection_scale = min(1.0, DETECTION_SIDE / max(gray.shape))  # big photos are searched at a smaller size
    if detection_scale < 1:
        gray = cv2.resize(gray, None, fx=detection_scale, fy=detection_scale, interpolation=cv2.INTER_AREA)
    matrix = face_transform(gray, name)
    matrix[:, :2] *= detection_scale  # now from the photo's own pixels
    shrink = float(np.hypot(*matrix[0, :2]))
    if shrink < 0.5:  # shrink most of the way by averaging pixels first, as a resize would, so nothing aliases
        factor = 2 * shrink
        photo = cv2.resize(photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        matrix[:, :2] /= factor
    return cv2.warpAffine(photo, matrix, CELEBA_SIZE, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def measure_reference(pictures) -> dict:
    """Where the detector finds faces and eyes in aligned pictures (uint8 RGB arrays, e.g. CelebA's 178×218):
    the medians the constants above hold, with the share of pictures in which a face and both eyes were found."""
    import cv2

    boxes, eyes = [], []
    for picture in pictures:
        gray = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2GRAY)
        found = find_faces(gray)
        if not len(found):
            continue
        boxes.append(found[0])
        pair = find_eyes(gray, found[0])
        if pair is not None:
            eyes.append(pair)
    boxes, eyes = np.array(boxes).reshape(-1, 4), np.array(eyes).reshape(-1, 2, 2)
    return dict(face_found=len(boxes) / max(1, len(pictures)), eyes_found=len(eyes) / max(1, len(pictures)),
                face_box_centre=tuple(np.median(boxes[:, :2] + boxes[:, 2:] / 2, axis=0)),
                face_box_width=float(np.median(boxes[:, 2])),
                eyes_midpoint=tuple(np.median(eyes.mean(axis=1), axis=0)),
                eye_distance=float(np.median(np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1))))
