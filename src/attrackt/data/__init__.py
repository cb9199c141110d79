"""The core types every stage passes on: Detections, Tracks, Associations, Annotations.

Each is plain columnar data (numpy / pandas) with a ``save``/``load`` pair that round-trips
losslessly. Coordinates are in pixels, in ``(t, [z,] y, x)`` order; node ids are stable ints,
unique within a :class:`Detections` table.
"""

from attrackt.data.annotations import Annotations, Answer, Conflict
from attrackt.data.associations import Associations
from attrackt.data.detections import SPATIAL_2D, SPATIAL_3D, Detections
from attrackt.data.tracks import Tracks

__all__ = [
    "SPATIAL_2D",
    "SPATIAL_3D",
    "Annotations",
    "Answer",
    "Associations",
    "Conflict",
    "Detections",
    "Tracks",
]
