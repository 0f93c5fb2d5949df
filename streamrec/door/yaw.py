"""How far a face is turned left or right (its yaw), from the five MTCNN landmarks alone.

The eyes and the mouth corners lie close to one plane; the nose tip stands out of it. Seen from
the front, the nose tip sits on the face's midline, the line from the eyes' midpoint to the
mouth's midpoint. When the head turns, that midline stays (both midpoints lie on the plane) but
the nose tip swings sideways, by ``NOSE_DEPTH * sin(yaw)`` times the eyes-to-mouth length. The
estimate is that offset, measured across the midline and divided by the eyes-to-mouth length:

* moving or scaling the face changes neither the offset nor the length (translation and scale);
* both are measured along the face's own axes, so a head tilted in the image plane (roll) reads
  the same (rotation);
* the eyes-to-mouth length barely changes with yaw, unlike the distance between the eyes, which
  shrinks as the head turns and would make the estimate grow faster than the turn.

A flat photo keeps its landmarks in one plane: moved, scaled or rotated in front of the camera,
its estimate stays where it was. Only a real head (or a photo rotated about a vertical axis,
which foreshortens it without moving its nose off the midline) changes it.

Sign: the camera's frames are not mirrored, so a person facing the camera has their own left on
the image's right. **A positive yaw is a turn to the person's own left** (the nose moves towards
the image's right); a negative yaw a turn to their right.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NOSE_DEPTH", "yaw_degrees"]

#: the nose tip's height above the plane of the eyes and mouth corners, in eyes-to-mouth lengths
#: (about 0.5 on adult faces: some 35 mm of nose for some 70 mm from the eyes to the mouth)
NOSE_DEPTH = 0.5


def yaw_degrees(landmarks: np.ndarray) -> float:
    """The yaw of a face in degrees, positive to the person's own left (see the module
    docstring), from its ``(5, 2)`` landmarks ``x, y`` in image pixels: left eye, right eye,
    nose, left and right mouth corner (left/right as seen in the image). Between -90 and 90;
    ``nan`` for landmarks that do not make a face (eyes and mouth at one point)."""
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes = (points[0] + points[1]) / 2
    mouth = (points[3] + points[4]) / 2
    down = mouth - eyes
    length = float(np.hypot(*down))
    if not length > 1e-6:
        return math.nan
    down /= length
    across = np.array([down[1], -down[0]])  # the image's right on an upright face
    offset = float(np.dot(points[2] - eyes, across)) / length
    return math.degrees(math.asin(max(-1.0, min(1.0, offset / NOSE_DEPTH))))
