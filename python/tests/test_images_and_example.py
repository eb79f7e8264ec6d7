"""read_png / write_png against a PNG codec written from the format's definition (conftest), and the
example script run end to end."""

import os
import subprocess
import sys

import numpy as np
import pytest

import unroll

from conftest import HERE, read_png_gray, write_png


def test_png_round_trips_through_an_independent_codec(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (13, 21), dtype=np.uint8)
    write_png(tmp_path / "a.png", pixels)
    image = unroll.read_png(tmp_path / "a.png")
    assert image.shape == (13, 21) and image.dtype == np.float32
    assert np.allclose(image, pixels / 255.0, atol=1e-7)
    unroll.write_png(tmp_path / "b.png", image)
    assert np.array_equal(read_png_gray(tmp_path / "b.png"), pixels)
    unroll.write_png(tmp_path / "c.png", np.array([[-0.5, 0.5, 2.0]]))   # clamped to [0, 1], rounded
    assert read_png_gray(tmp_path / "c.png").tolist() == [[0, 128, 255]]


def test_png_errors_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(unroll.UnrollError, match="bad.png.*not a PNG"):
        unroll.read_png(tmp_path / "bad.png")
    with pytest.raises(unroll.UnrollError, match="no such file"):
        unroll.read_png(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="2-D"):
        unroll.write_png(tmp_path / "x.png", np.zeros((2, 2, 3)))
    with pytest.raises(unroll.UnrollError, match="NaN"):
        unroll.write_png(tmp_path / "x.png", np.full((2, 2), np.nan))


def test_the_example_script_learns_atoms(tmp_path):
    (tmp_path / "images").mkdir()
    y, x = np.mgrid[0:64, 0:64]
    write_png(tmp_path / "images" / "0.png", (127 + 100 * np.sin(x / 3 + y / 5)).astype(np.uint8))
    r = subprocess.run([sys.executable, str(HERE.parent / "examples" / "patch_dictionary.py"), "--images", "images",
                        "--output", "out", "--quick"], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    assert r.returncode == 0, r.stderr
    assert "1 images from images" in r.stdout
    loss = np.loadtxt(tmp_path / "out" / "loss.csv", skiprows=1)
    assert len(loss) == 20 and loss[-5:].mean() < loss[:5].mean()
    assert unroll.read_png(tmp_path / "out" / "atoms.png").shape[0] >= 8 * 9   # an 8×8 grid of 8×8 atoms
    assert unroll.load(tmp_path / "out" / "model.safetensors").components_.shape == (64, 64)
