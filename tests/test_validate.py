"""Input validation: each broken CTC input gets its own message naming the file and the problem,
the readers raise the same message, and every real sequence passes."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _ctc_movie import tiny_movie, write_raw_ctc
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.errors import InputError
from attrackt.io.ctc import load_ctc
from attrackt.io.validate import validate_ctc


def _tra(root: Path) -> Path:
    return root / "01_GT" / "TRA"


def _rewrite_table(root: Path, edit) -> None:
    path = _tra(root) / "man_track.txt"
    rows = [line.split() for line in path.read_text().splitlines()]
    path.write_text("".join(" ".join(r) + "\n" for r in edit(rows)))


def _set(rows, label, column, value):
    for r in rows:
        if r[0] == str(label):
            r[column] = str(value)
    return rows


def _rewrite_all(folder: Path, prefix: str, change) -> None:
    for path in sorted(folder.glob(f"{prefix}*.tif")):
        tifffile.imwrite(path, change(tifffile.imread(path)))


def _add_stray_pixel(root):
    path = _tra(root) / "man_track004.tif"
    mask = tifffile.imread(path)
    mask[-1, -1] = 2
    tifffile.imwrite(path, mask)


def _float_images_with_nan(root):
    _rewrite_all(root / "01", "t", lambda a: a.astype(np.float32))
    image = tifffile.imread(root / "01" / "t001.tif")
    image[3, 3] = np.nan
    tifffile.imwrite(root / "01" / "t001.tif", image)


def _empty_last_frame(root):
    tifffile.imwrite(root / "01" / "t006.tif", np.zeros((24, 40), np.uint16))
    tifffile.imwrite(_tra(root) / "man_track006.tif", np.zeros((24, 40), np.uint16))


# name -> (how to break the folder, level, file named, problem)
CASES = {
    "image frame missing": (
        lambda r: (r / "01" / "t002.tif").unlink(),
        "error",
        "t002.tif",
        "missing frame 2 (numbering jumps from t001.tif to t003.tif)",
    ),
    "mask missing for an image": (
        lambda r: (_tra(r) / "man_track002.tif").unlink(),
        "error",
        "man_track002.tif",
        "missing: image frame 2 has no mask",
    ),
    "more masks than images": (
        lambda r: tifffile.imwrite(_tra(r) / "man_track006.tif", np.zeros((24, 40), np.uint16)),
        "error",
        "man_track006.tif",
        "frame 6 has no image",
    ),
    "two files for one frame": (
        lambda r: tifffile.imwrite(r / "01" / "t2.tif", np.zeros((24, 40), np.uint16)),
        "error",
        "01",
        "frame 2 has 2 files: t002.tif, t2.tif",
    ),
    "masks of another shape": (
        lambda r: _rewrite_all(_tra(r), "man_track", lambda a: np.pad(a, ((0, 0), (0, 1)))),
        "error",
        "man_track000.tif",
        "mask shape (24, 41) differs from image shape (24, 40) (t000.tif)",
    ),
    "one image of another shape": (
        lambda r: tifffile.imwrite(r / "01" / "t003.tif", np.zeros((24, 41), np.uint16)),
        "error",
        "t003.tif",
        "shape (24, 41) differs from t000.tif's (24, 40)",
    ),
    "non-integer masks": (
        lambda r: _rewrite_all(_tra(r), "man_track", lambda a: a.astype(np.float32)),
        "error",
        "man_track000.tif",
        "masks must hold integer labels, found float32 pixels",
    ),
    "unreadable TIFF": (
        lambda r: (_tra(r) / "man_track003.tif").write_bytes(b"garbage"),
        "error",
        "man_track003.tif",
        "not a readable TIFF",
    ),
    "NaN in an image": (
        _float_images_with_nan,
        "error",
        "t001.tif",
        "contains NaN pixels",
    ),
    "track absent from a frame it claims": (
        lambda r: _rewrite_table(r, lambda rows: _set(rows, 3, 2, 2)),
        "error",
        "man_track.txt",
        "track 3 spans frames 0-2 but is absent from man_track002.tif",
    ),
    "label outside its span": (
        lambda r: _rewrite_table(r, lambda rows: _set(rows, 2, 2, 3)),
        "error",
        "man_track.txt",
        "track 2 spans frames 0-3 but its label is also in man_track004.tif, man_track005.tif",
    ),
    "label without a row": (
        lambda r: _rewrite_table(r, lambda rows: [row for row in rows if row[0] != "5"]),
        "error",
        "man_track.txt",
        "label 5 in man_track003.tif, man_track004.tif, man_track005.tif has no row in "
        "man_track.txt",
    ),
    "parent that does not exist": (
        lambda r: _rewrite_table(r, lambda rows: _set(rows, 6, 3, 99)),
        "error",
        "man_track.txt",
        "track 6: parent 99 does not exist",
    ),
    "parent that ends after its child starts": (
        lambda r: _rewrite_table(r, lambda rows: _set(rows, 4, 3, 2)),
        "error",
        "man_track.txt",
        "track 4 starts at frame 3 but its parent 2 ends at frame 5",
    ),
    "malformed row": (
        lambda r: _rewrite_table(r, lambda rows: rows + [["7", "1", "x", "0"]]),
        "error",
        "man_track.txt",
        "line 7: expected 4 integers >= 0 'label start end parent'",
    ),
    "track table missing": (
        lambda r: (_tra(r) / "man_track.txt").unlink(),
        "error",
        "man_track.txt",
        "missing track table",
    ),
    "label in two pieces": (
        _add_stray_pixel,
        "warning",
        "man_track004.tif",
        "labels in disconnected pieces: label 2 (2 pieces)",
    ),
    "empty frame": (
        _empty_last_frame,
        "warning",
        "man_track006.tif",
        "empty frame (no labelled object)",
    ),
}


@pytest.fixture
def movie_root(tmp_path) -> Path:
    images, masks, table = tiny_movie()
    return write_raw_ctc(tmp_path / "DS", images, masks, table)


def test_a_good_movie_passes_in_2d_and_3d(movie_root, tmp_path):
    assert validate_ctc(movie_root).issues == []
    images, masks, table = tiny_movie(ndim=3)
    root3 = write_raw_ctc(tmp_path / "DS3", images, masks, table)
    assert validate_ctc(root3).issues == []


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_input_gets_its_own_message(movie_root, case, caplog):
    breaker, level, filename, problem = CASES[case]
    breaker(movie_root)
    report = validate_ctc(movie_root)
    found = [i for i in report.issues if Path(i.source).name == filename and problem in i.problem]
    assert [i.level for i in found] == [level], [str(i) for i in report.issues]
    assert Path(found[0].source).is_relative_to(movie_root.absolute())
    if level == "warning":
        assert report.ok and not report.errors
        with caplog.at_level(logging.WARNING):
            load_ctc(movie_root, "01")
        assert problem in caplog.text
        return
    assert not report.ok
    first = report.errors[0]
    with pytest.raises(InputError) as raised:
        load_ctc(movie_root, "01")
    assert str(raised.value).startswith(f"{first.source}: {first.problem}")


def test_every_sequence_and_mask_folder_is_checked(movie_root):
    images, masks, table = tiny_movie(seed=1)
    write_raw_ctc(movie_root, images, masks, table, name="02")
    seg = movie_root / "01_GT" / "SEG"  # sparse ground truth: frame 2 only, allowed
    seg.mkdir()
    tifffile.imwrite(seg / "man_seg002.tif", masks[2])
    st = movie_root / "02_ST" / "SEG"  # silver truth in floats: an error of 02 only
    st.mkdir(parents=True)
    for t in range(len(masks)):
        tifffile.imwrite(st / f"man_seg{t:03d}.tif", masks[t].astype(np.float64))
    report = validate_ctc(movie_root)
    assert [(Path(i.source).parent.parent.name, Path(i.source).name) for i in report.errors] == [
        ("02_ST", "man_seg000.tif")
    ]
    assert validate_ctc(movie_root / "01").ok
    assert not validate_ctc(movie_root / "02").ok


def test_a_result_folder_is_checked_against_its_images(movie_root):
    res = movie_root / "01_RES"
    res.mkdir()
    _, masks, table = tiny_movie()
    for t in range(len(masks) - 1):  # the last frame is missing
        tifffile.imwrite(res / f"mask{t:03d}.tif", masks[t])
    (res / "res_track.txt").write_text(table.to_csv(sep=" ", header=False, index=False))
    messages = [str(i) for i in validate_ctc(res).errors]
    assert any(
        re.search(r"01_RES/mask005\.tif: missing: image frame 5 has no mask", m) for m in messages
    ), messages
    with pytest.raises(InputError, match=r"mask005\.tif: missing"):
        load_ctc(res)


def test_cli_validate_and_info(movie_root):
    runner = CliRunner()
    good = runner.invoke(app, ["validate", str(movie_root)])
    assert good.exit_code == 0, good.output
    assert "valid, 0 errors, 0 warnings" in good.output
    info = runner.invoke(app, ["info", str(movie_root / "01")])
    assert info.exit_code == 0, info.output
    assert "6 frames of 24 x 40" in info.output
    assert "cells per frame: min 2, median 3.5, max 4" in info.output
    assert "tracks 6, divisions 1, nodes 20" in info.output
    (movie_root / "01" / "t002.tif").unlink()
    bad = runner.invoke(app, ["validate", str(movie_root)])
    assert bad.exit_code == 1
    assert "ERROR" in bad.output and "t002.tif: missing frame 2" in bad.output
    assert "INVALID, 2 errors" in bad.output  # the missing image, and the mask left without one
    info = runner.invoke(app, ["info", str(movie_root / "01")])
    assert info.exit_code == 1


REAL = [
    "Fluo-N2DL-HeLa",
    "DIC-C2DH-HeLa",
    "ci/Fluo-N2DL-HeLa_01_t0-40_crop350x550",
    "ci/DIC-C2DH-HeLa_01_t0-40_crop256x320",
    "reference/Fluo-N2DL-HeLa/01_RES",
]


@pytest.mark.parametrize("name", REAL)
def test_real_sequences_pass(shared_data, name):
    report = validate_ctc(shared_data / name)
    assert report.ok, [str(i) for i in report.errors]
