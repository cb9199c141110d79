"""Cell Tracking Challenge (CTC) folders: find, read (with checks), write.

A CTC dataset folder holds, per sequence ``NN``: ``NN/tTTT.tif`` (images),
``NN_GT/TRA/man_trackTTT.tif`` + ``man_track.txt`` (tracking ground truth: one label per track),
``NN_GT/SEG/man_segTTT.tif`` (full segmentation of some frames), ``NN_ST/SEG/man_segTTT.tif``
(silver-truth segmentation) and, for a tracker's result, ``NN_RES/maskTTT.tif`` +
``res_track.txt``. A track table has one row ``label start end parent`` per track; a track's
label is in its masks in every frame from ``start`` to ``end``.

One module per job: :mod:`~attrackt.io.ctc.layout` (where a sequence's parts live),
:mod:`~attrackt.io.ctc.tables` (track tables), :mod:`~attrackt.io.ctc.tracks` (masks to detections
and tracks), :mod:`~attrackt.io.ctc.inspection` (every issue of a dataset),
:mod:`~attrackt.io.ctc.reading` (loading a tracking folder, checked),
:mod:`~attrackt.io.ctc.markers` (GT detections from markers), :mod:`~attrackt.io.ctc.writing`
(results and sequences) and :mod:`~attrackt.io.ctc.summary` (``attrackt info``); their public
names are importable from here.
"""

from __future__ import annotations

from attrackt.io.ctc.inspection import inspect_ctc
from attrackt.io.ctc.layout import CTCSequence, find_sequences, locate_sequence
from attrackt.io.ctc.markers import gt_detections, paint_markers
from attrackt.io.ctc.reading import CTCData, load_ctc
from attrackt.io.ctc.summary import SequenceInfo, ctc_info
from attrackt.io.ctc.tables import TRACK_COLUMNS, parse_track_table, read_track_table
from attrackt.io.ctc.tracks import detections_from_masks, tracks_from_ctc
from attrackt.io.ctc.writing import write_ctc_result, write_ctc_sequence

__all__ = [
    "TRACK_COLUMNS", "CTCData", "CTCSequence", "SequenceInfo", "ctc_info", "detections_from_masks",
    "find_sequences", "gt_detections", "inspect_ctc", "load_ctc", "locate_sequence",
    "paint_markers", "parse_track_table", "read_track_table", "tracks_from_ctc",
    "write_ctc_result", "write_ctc_sequence",
]  # fmt: skip
