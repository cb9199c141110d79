"""attrackt: cell tracking without tracking labels, with active proof-reading and fine-tuning."""

from attrackt.data import Annotations, Answer, Associations, Detections, Tracks
from attrackt.errors import AttracktError, InputError, SolverError

__version__ = "0.1.0"

__all__ = [
    "Annotations",
    "Answer",
    "Associations",
    "AttracktError",
    "Detections",
    "InputError",
    "SolverError",
    "Tracks",
    "__version__",
]
