"""SpikeSorter and VSCModel against the CLI on the same data (0 ulp): `spikes train`, `spikes sort`,
`unroll encode` of a VSC model; load, pickling and errors."""

import csv
import pickle

import numpy as np
import pytest
from sklearn.base import clone

import unroll
from unroll import SpikeSorter

from conftest import write_png
from test_dictionary import read_safetensors, run_cli

SPIKES = dict(max_iter=2, refine_epochs=1, n_layers=10, refine_layers=12, random_state=3, n_jobs=1)
SPIKES_CLI = ["--epochs", "2", "--refine-epochs", "1", "--layers", "10", "--refine-layers", "12", "--seed", "3", "--threads", "1"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    d = tmp_path_factory.mktemp("spikes")
    run_cli("spikes", "simulate", "--seconds", "3", "--seed", "2", "--output", "rec.npz", cwd=d)
    signal = np.load(d / "rec.npz")["signal"]
    np.save(d / "sig.npy", signal)
    return d, signal


def test_the_cli_and_python_learn_the_same_templates_and_sort_the_same_spikes(recording):
    d, x = recording
    assert x.shape == (30000, 1) and x.dtype == np.float32
    run_cli("spikes", "train", "--data", "sig.npy", "--output", "cli.safetensors", *SPIKES_CLI, cwd=d)
    cli, _ = read_safetensors(d / "cli.safetensors")
    est = SpikeSorter(**SPIKES).fit(x)
    assert est.filters_.shape == (3, 1, 25) and est.n_iter_ == 3 and len(est.loss_curve_) == 3
    assert np.array_equal(est.filters_, cli["dictionary"])
    est.save(d / "py.safetensors")
    py, meta = read_safetensors(d / "py.safetensors")
    assert sorted(py) == sorted(cli) and all(np.array_equal(py[k], cli[k]) for k in cli)
    # unit-norm templates; the penalty per neuron is the encoder's λ_c σ² (positive, one per neuron)
    assert np.allclose(np.linalg.norm(est.filters_.reshape(3, -1), axis=1), 1, atol=1e-5)
    assert est.lambdas_.shape == (3,) and (est.lambdas_ > 0).all()

    run_cli("spikes", "sort", "--data", "sig.npy", "--model", "cli.safetensors", "--output", "sorted", "--threads", "1", cwd=d)
    with open(d / "sorted" / "spikes.csv") as f:
        rows = list(csv.DictReader(f))
    table = est.sort(x)
    assert len(table) == len(rows) > 100
    assert [int(r["neuron"]) for r in rows] == table.neuron.tolist()
    assert [int(r["sample"]) for r in rows] == table.sample.tolist()
    assert np.allclose([float(r["height"]) for r in rows], table.height, rtol=1e-5)
    assert np.allclose(table.seconds, table.sample / 10_000)
    assert (np.diff(table.sample) >= 0).all()
    times, neurons = est.predict(x)
    assert np.array_equal(times, table.sample) and np.array_equal(neurons, table.neuron)
    high = est.sort(x, threshold=float(np.median(table.height)))
    assert 0 < len(high) < len(table) and (high.height >= np.median(table.height)).all()

    loaded = unroll.load(d / "cli.safetensors")
    assert isinstance(loaded, SpikeSorter) and np.array_equal(loaded.filters_, est.filters_)
    assert np.array_equal(loaded.predict(x)[0], times)
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.predict(x)[0], times)
    # float64 in: the same spikes (the library computes in float32)
    assert np.array_equal(est.predict(x.astype(np.float64))[0], times)
    assert clone(est).get_params() == est.get_params()


def test_the_spike_sorter_refuses_bad_input(recording):
    _, x = recording
    with pytest.raises(ValueError, match="NaN"):
        SpikeSorter(**SPIKES).fit(np.where(np.arange(len(x))[:, None] == 7, np.nan, x))
    with pytest.raises(ValueError, match="float32 or float64"):
        SpikeSorter(**SPIKES).fit((x * 100).astype(np.int16))
    with pytest.raises(unroll.UnrollError, match="window"):
        SpikeSorter(**SPIKES).fit(x[:500])
    with pytest.raises(unroll.UnrollError, match="prior_rate must be ≥ 0"):
        SpikeSorter(**SPIKES, prior_rate=-1).fit(x)
    est = SpikeSorter(**SPIKES).fit(x)
    with pytest.raises(ValueError, match="2 channel"):
        est.predict(np.repeat(x, 2, axis=1))


def test_a_vsc_model_encodes_as_the_cli_does(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(3):
        write_png(tmp_path / "images" / f"{i}.png", rng.integers(0, 256, (48, 48), dtype=np.uint8))
    run_cli("train", "--model", "vsc", "--data", "images", "--patches", "400", "--validation", "50", "--side", "8", "--samples", "2",
            "--hidden", "16", "--batch", "40", "--lr", "0.002", "--epochs", "2", "--output", "run", "--threads", "1", cwd=tmp_path)
    X = rng.standard_normal((30, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    run_cli("encode", "--model", "run/model.safetensors", "--data", "x.npy", "--samples", "3", "--seed", "4", "--output", "z.npy",
            "--threads", "1", cwd=tmp_path)
    model = unroll.load(tmp_path / "run" / "model.safetensors", n_jobs=1)
    assert isinstance(model, unroll.VSCModel) and model.kind == "vsc-linear"
    assert model.components_.shape == (model.n_components, 64) and model.n_features_in_ == 64
    codes, recon = model.encode(X, n_samples=3, random_state=4)
    assert np.array_equal(codes, np.load(tmp_path / "z.npy"))
    assert np.allclose(recon, codes @ model.components_, rtol=1e-4, atol=1e-5)
    assert (codes == 0).mean() > 0          # thresholded samples: sparse codes
    assert np.array_equal(model.transform(X, n_samples=3, random_state=4), codes)
    assert not np.array_equal(model.transform(X, n_samples=3, random_state=5), codes)
    assert model.transform(X.astype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :10])
    with pytest.raises(ValueError, match="n_samples"):
        model.transform(X, n_samples=0)
