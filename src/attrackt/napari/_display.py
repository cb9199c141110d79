"""What the viewer shows of the current cell: napari layers over a session, no widget.

The view zooms to the cell (a field of :data:`FIELD_CELLS` cell widths) and, beside it, shows
the same field in the next frame (a *panel*: the movie, the masks and the children there), so
the cell and its children are seen at once without stepping frames. Markers differ in shape
and colour by role (:data:`ROLES`); each detection gets one label, naming all its roles. The
solver's tracks are dimmed and the cell's lineage is drawn bright over them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from attrackt.napari.layers import layer_scale, tracks_layer
from attrackt.napari.session import Cell, ProofreadSession

logger = logging.getLogger(__name__)

#: role -> (symbol, colour, size in cell widths, short name); drawn largest first
ROLES = {
    "cell": ("ring", "yellow", 1.3, "cell"),
    "model": ("diamond", "magenta", 1.5, "M"),
    "solver": ("square", "cyan", 1.1, "S"),
    "answer": ("star", "lime", 0.7, "A"),
}
FIELD_CELLS = 7.0  #: the view's field is this many cell widths
GAP = 0.06  #: between the field and the panel, as a share of the field
DIM = 0.3  #: the opacity of the solver's tracks away from the current cell
TRACKS_NAME = "attrackt tracks"
HIGHLIGHTS_NAME = "attrackt cell"
CLICKS_NAME = "attrackt clicks"
LINEAGE_NAME = "attrackt lineage"
PANEL_IMAGE = "attrackt next frame"
PANEL_MASKS = "attrackt next masks"
FRAMES_NAME = "attrackt frames"
LABELS_NAME = "attrackt labels"
OURS = (
    HIGHLIGHTS_NAME,
    LABELS_NAME,
    CLICKS_NAME,
    LINEAGE_NAME,
    PANEL_IMAGE,
    PANEL_MASKS,
    FRAMES_NAME,
)


def camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def canvas_size(viewer: Any) -> tuple[float, float]:
    """The canvas's ``(height, width)`` in screen pixels."""
    canvas = getattr(viewer, "canvas", None)
    size = canvas.size if canvas is not None else viewer._canvas_size  # napari < 0.9
    return float(size[0]), float(size[1])


def movie_layers(viewer: Any) -> tuple[Any, Any]:
    """The viewer's movie (image) and masks (labels) layers, not ours (``None`` where none)."""
    image = next(
        (a for a in viewer.layers if type(a).__name__ == "Image" and a.name not in OURS), None
    )
    masks = next(
        (a for a in viewer.layers if type(a).__name__ == "Labels" and a.name not in OURS), None
    )
    return image, masks


class CellView:
    """The layers that show ``session``'s current cell in ``viewer`` (made on construction,
    replaced if they exist); :meth:`show` updates them and the camera."""

    def __init__(self, viewer: Any, session: ProofreadSession, tracks: Any) -> None:
        self.viewer = viewer
        self.session = session
        self.tracks = tracks
        self.beside = session.detections.ndim == 2  # the panel is drawn for 2D movies
        self.cell: Cell | None = None
        self.field = FIELD_CELLS * session.cell_size()
        for name in OURS:
            if name in viewer.layers:
                viewer.layers.remove(name)
        self.image, self.masks = movie_layers(viewer)
        ndim = 1 + session.detections.ndim
        self.scale = layer_scale(session.detections)  # data in pixels, shown true to shape
        self.world = np.ones(ndim) if self.scale is None else np.asarray(self.scale)
        if self.image is not None:
            self.field = min(self.field, float(max(self.image.data.shape[-2:])))
        self.tracks.opacity = DIM
        self.lineage = None
        self.panel_image = self.panel_masks = self.frames = None
        if self.beside:
            blank = np.zeros((1, 2, 2), np.float32)
            self.panel_image = viewer.add_image(blank, name=PANEL_IMAGE, colormap="gray")
            if self.masks is not None:
                self.panel_masks = viewer.add_labels(
                    np.zeros((1, 2, 2), self.masks.data.dtype),
                    name=PANEL_MASKS,
                    opacity=self.masks.opacity,
                )
                self.panel_masks.contour = self.masks.contour
            self.frames = viewer.add_shapes(
                ndim=3,
                name=FRAMES_NAME,
                edge_color="#bbbbbb",
                face_color="transparent",
                edge_width=max(1.0, self.field / 150),
            )
        self._lineage(session.current)  # under the markers
        self.highlights = viewer.add_points(
            np.zeros((0, ndim)),
            name=HIGHLIGHTS_NAME,
            face_color="transparent",
            border_width=0.14,
            scale=self.scale,
        )
        self.labels = viewer.add_points(  # one per cell shown, above its marker, none overlap
            np.zeros((0, ndim)),
            name=LABELS_NAME,
            scale=self.scale,
            size=0,
            features=pd.DataFrame({"label": pd.Series([], dtype=object)}),
            text={"string": "{label}", "color": "white", "size": 10, "anchor": "upper_left"},
        )
        self.clicks = viewer.add_points(
            np.zeros((0, ndim)),
            name=CLICKS_NAME,
            scale=self.scale,
            size=session.cell_size() * 0.35,
            face_color="lime",
        )

    @property
    def shift(self) -> float:
        """How far right of the field the panel lies (0 without a panel)."""
        return self.field * (1 + GAP) if self.beside else 0.0

    def set_beside(self, on: bool) -> None:
        """Show the next frame beside the cell's (2D movies only), or not."""
        self.beside = on and self.session.detections.ndim == 2 and self.panel_image is not None
        for layer in (self.panel_image, self.panel_masks, self.frames):
            if layer is not None:
                layer.visible = self.beside
        self.show(self.cell, zoom=True)

    def show(self, cell: Cell | None, zoom: bool = True) -> None:
        """Mark ``cell``, its children and its lineage; step to its frame and, with ``zoom``,
        centre and zoom on it."""
        self.cell = cell
        self._lineage(cell)
        self.clicks.data = np.zeros((0, self.clicks.data.shape[1]))
        if cell is not None:
            if self.beside:
                self._panel(cell)
            self.viewer.dims.set_point(0, cell.t)
            for axis, value in enumerate(cell.position[:-2], start=1):  # z in 3D
                self.viewer.dims.set_point(axis, value * self.world[axis])
            if zoom:
                self.zoom(cell)
        self._markers(cell)  # labels are placed for the zoom
        if cell is None:
            return
        self.viewer.layers.selection.active = self.clicks
        self.clicks.mode = "add"

    def zoom(self, cell: Cell) -> None:
        """Centre on the cell (and the panel) and zoom to the field."""
        y, x = cell.position[-2:]
        height, width = canvas_size(self.viewer)
        span = self.field + self.shift
        cam = camera(self.viewer)
        cam.center = (y * self.world[-2], x * self.world[-1] + self.shift / 2)
        cam.zoom = 0.94 * min(height / self.field, width / span)

    def clicked(self) -> np.ndarray:
        """The clicks as ``(t, [z,] y, x)``, those in the panel moved to the next frame."""
        points = np.asarray(self.clicks.data, np.float64).copy()
        cell = self.cell
        if cell is None or not self.beside or not len(points):
            return points
        in_panel = (np.rint(points[:, 0]) == cell.t) & (
            points[:, -1] > cell.position[-1] + self.field * (0.5 + GAP / 2)
        )
        points[in_panel, 0] = cell.t + 1
        points[in_panel, -1] -= self.shift
        return points

    # ---- layers ----------------------------------------------------------------------------
    def _markers(self, cell: Cell | None) -> None:
        marks = self.session.highlights(cell)
        axes = list(self.session.detections.spatial_axes)
        size = self.session.cell_size()
        places = [marks]
        if cell is not None and self.beside:  # the children again, in the panel
            beside = marks[marks["role"] != "cell"].assign(t=cell.t)
            beside[axes[-1]] = beside[axes[-1]] + self.shift
            places.append(beside)
        rows = pd.concat(places, keys=range(len(places)), names=["place", None]).reset_index(0)
        rows["order"] = rows["role"].map(list(ROLES).index)
        rows = rows.sort_values(["place", "order"], kind="stable").reset_index(drop=True)
        self.highlights.data = rows[["t", *axes]].to_numpy(np.float64)
        if len(rows):
            self.highlights.symbol = [ROLES[r][0] for r in rows["role"]]
            self.highlights.border_color = [ROLES[r][1] for r in rows["role"]]
            self.highlights.size = [ROLES[r][2] * size for r in rows["role"]]
        self.highlights.refresh()
        texts, anchors = [], []
        for (_, id_), group in rows.groupby(["place", "id"], sort=False):
            roles = list(group["role"])
            if "cell" in roles:
                text = f"cell {id_}"
            else:
                score = group["score"].dropna()
                text = "+".join(ROLES[r][3] for r in roles) + f" {id_}"
                text += f" ({score.iloc[0]:.2f})" if len(score) else ""
            radius = max(ROLES[r][2] for r in roles) * size / 2
            point = group[["t", *axes]].iloc[0].to_numpy(np.float64, copy=True)
            point[-2:] -= radius  # the marker's upper-left corner
            texts.append(text)
            anchors.append(point)
        zoom = float(camera(self.viewer).zoom) or 1.0
        placed = apart(np.asarray(anchors).reshape(-1, len(axes) + 1), texts, 16 / zoom, 7 / zoom)
        self.labels.data = placed
        self.labels.features = pd.DataFrame({"label": pd.Series(texts, dtype=object)})
        self.labels.refresh()

    def _lineage(self, cell: Cell | None) -> None:
        lineage = self.session.lineage(cell)
        if not len(lineage):
            if self.lineage is not None:
                self.lineage.visible = False
            return
        data, kwargs, _ = tracks_layer(self.session.lineage_tracks(lineage), LINEAGE_NAME)
        if self.lineage is None or self.lineage not in self.viewer.layers:
            kwargs.update(tail_width=4, tail_length=15, head_length=15, colormap="hsv")
            self.lineage = self.viewer.add_tracks(data, **kwargs)
            return
        self.lineage.visible = True
        self.lineage.data = data
        self.lineage.graph = kwargs["graph"]
        self.lineage.features = kwargs["features"]

    def _panel(self, cell: Cell) -> None:
        """The next frame's field beside the cell's: movie, masks, outlines and titles."""
        half = self.field / 2
        y, x = cell.position
        top, left = int(np.floor(y - half)), int(np.floor(x - half))
        side = int(np.ceil(self.field))
        nxt = cell.t + 1
        for layer, source in ((self.panel_image, self.image), (self.panel_masks, self.masks)):
            if layer is None:
                continue
            crop = _crop(source.data if source is not None else None, nxt, top, left, side)
            layer.translate = (cell.t, top, left + self.shift)
            layer.data = crop[None]
            if source is not None and layer is self.panel_image:  # set each only if changed:
                if list(layer.contrast_limits) != list(source.contrast_limits):  # a redraw each
                    layer.contrast_limits = source.contrast_limits
                if layer.colormap.name != source.colormap.name:
                    layer.colormap = source.colormap
        boxes = [
            np.array(
                [
                    [cell.t, y - half, x - half + dx],
                    [cell.t, y - half, x + half + dx],
                    [cell.t, y + half, x + half + dx],
                    [cell.t, y + half, x - half + dx],
                ]
            )
            for dx in (0.0, self.shift)
        ]
        self.frames.data = []
        self.frames.add_rectangles(boxes)
        self.frames.features = pd.DataFrame({"title": [f"frame {cell.t}", f"frame {nxt}"]})
        self.frames.text = {
            "string": "{title}",
            "color": "white",
            "size": 11,
            "anchor": "upper_left",
            "translation": [0, -self.field * 0.04, 0],
        }


def apart(anchors: np.ndarray, texts: list[str], height: float, char: float) -> np.ndarray:
    """Where to put each label so that no two overlap in a frame. ``anchors`` (``(n, 1 + ndim)``,
    ``t`` first) are the texts' lower-left corners (napari's ``upper_left`` text anchor puts
    them there); a label ``height`` high and ``char`` wide a character that would cover one
    placed before it moves up until it does not."""
    placed = np.array(anchors, np.float64, copy=True)
    for i in range(len(placed)):
        moved = True
        while moved:
            moved = False
            for j in range(i):
                same = np.array_equal(placed[i, :-2], placed[j, :-2])  # frame (and z)
                dy = abs(placed[i, -2] - placed[j, -2])
                left, right = placed[i, -1], placed[j, -1]
                wide = char * (len(texts[j]) if left >= right else len(texts[i]))
                if same and dy < height and abs(left - right) < wide:
                    placed[i, -2] = placed[j, -2] - height
                    moved = True
    return placed


def _crop(movie: Any, t: int, top: int, left: int, side: int) -> np.ndarray:
    """``side x side`` pixels of frame ``t`` from ``(top, left)``, zero outside the movie (and
    where there is no movie or no such frame)."""
    dtype = np.float32 if movie is None else movie.dtype
    out = np.zeros((side, side), dtype)
    if movie is None or not 0 <= t < len(movie):
        return out
    frame = movie[t]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, frame.shape[-2]), min(left + side, frame.shape[-1])
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = np.asarray(frame[y0:y1, x0:x1])
    return out
