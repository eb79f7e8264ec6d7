"""The Python package against independent references: scikit-learn's estimator checks, the CLI on
the same problem (0 ulp), NumPy for the codes' reconstruction, pickling, dtypes and errors."""

import json
import os
import pickle
import time
import struct
import subprocess
import threading

import numpy as np
import pytest

import unroll
from unroll import UnrolledDictionaryLearning, sparse_encode
from unroll._library import f32

from conftest import unroll_binary


def problem(n=60, m=16, p=20, s=3, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((p, m)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    z = np.zeros((n, p), dtype=np.float32)
    for i in range(n):
        z[i, rng.choice(p, s, replace=False)] = rng.standard_normal(s)
    return (z @ d).astype(np.float32)


def read_safetensors(path):
    """Tensors of a safetensors file, read with NumPy from the format's definition."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + a:8 + n + b], dtype=np.float32).reshape(v["shape"])
    return out, header.get("__metadata__", {})


def run_cli(*args, cwd):
    r = subprocess.run([unroll_binary(), *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


SMALL = dict(n_components=6, n_layers=20, lam=0.1, step=0.2, learning_rate=1e-2, batch_size=10, max_iter=3, random_state=5)


def test_the_cli_and_python_learn_the_same_model_to_0_ulp(tmp_path):
    X = problem()
    np.save(tmp_path / "x.npy", X)
    run_cli("train", "--data", "x.npy", "--atoms", "6", "--layers", "20", "--lambda", "0.1", "--step", "0.2", "--lr", "1e-2",
            "--batch", "10", "--epochs", "3", "--seed", "5", "--output", "run", "--threads", "1", cwd=tmp_path)
    cli, meta = read_safetensors(tmp_path / "run" / "model.safetensors")
    est = UnrolledDictionaryLearning(**SMALL).fit(X)
    assert est.components_.dtype == np.float32
    assert np.array_equal(est.components_, cli["dictionary"])          # bit for bit
    assert est.n_iter_ == 3 and est.n_steps_ == 18 and len(est.loss_curve_) == 18
    # The codes: `unroll encode` of the CLI's model equals transform, and load() reads that model.
    run_cli("encode", "--model", "run/model.safetensors", "--data", "x.npy", "--output", "z.npy", "--threads", "1", cwd=tmp_path)
    z_cli = np.load(tmp_path / "z.npy")
    assert np.array_equal(est.transform(X), z_cli)
    assert np.array_equal(unroll.load(tmp_path / "run" / "model.safetensors").transform(X), z_cli)
    # The model Python saves is one the CLI reads, with the same dictionary.
    est.save(tmp_path / "py.safetensors")
    info = run_cli("info", "py.safetensors", cwd=tmp_path)
    assert "model: dense," in info.stdout
    assert np.array_equal(read_safetensors(tmp_path / "py.safetensors")[0]["dictionary"], cli["dictionary"])


def test_codes_reconstruct_and_inverse_transform_is_the_product():
    X = problem(seed=1)
    est = UnrolledDictionaryLearning(n_components=20, n_layers=50, lam=0.05, learning_rate=1e-2, batch_size=20,
                                     max_iter=30, random_state=0).fit(X)
    z = est.transform(X)
    assert z.shape == (60, 20)
    np.testing.assert_allclose(est.inverse_transform(z), z @ est.components_, rtol=1e-5, atol=1e-6)
    error = np.linalg.norm(X - z @ est.components_) / np.linalg.norm(X)
    assert error < 0.5, error
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert np.allclose(np.linalg.norm(est.components_, axis=1), 1, atol=1e-5)


def test_sparse_encode_is_the_encoder_of_a_fitted_model():
    X = problem(seed=2)
    est = UnrolledDictionaryLearning(**SMALL).fit(X)
    z = sparse_encode(X, est.components_, n_layers=20, lam=0.1, step=0.2)
    assert np.array_equal(z, est.transform(X))
    assert np.array_equal(sparse_encode(X.astype(np.float64), est.components_, n_layers=20, lam=0.1, step=0.2), z.astype(np.float64))


def test_a_forked_child_encodes_like_its_parent():
    """The library's helper threads do not survive fork() (multiprocessing's default on Linux): a child
    must start its own and encode exactly what the parent encodes, without hanging."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4000, 64)).astype(np.float32)
    D = rng.standard_normal((128, 64)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    z = sparse_encode(X, D, n_layers=30, lam=0.1, n_jobs=2)    # the parent's helpers start here
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = np.array_equal(sparse_encode(X, D, n_layers=30, lam=0.1, n_jobs=2), z)
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 120
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish encoding within 120 s")
    assert os.WIFEXITED(done[1]) and os.WEXITSTATUS(done[1]) == 0, "the child's codes differ from the parent's"


def test_threads_calling_at_once_get_the_codes_of_one_call():
    """Python threads may call the library at once (ctypes releases the GIL): the calls share one pool of
    helper threads, and each must give exactly the codes it gives alone."""
    rng = np.random.default_rng(5)
    D = rng.standard_normal((128, 64)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    inputs = [rng.standard_normal((3000, 64)).astype(np.float32) for _ in range(4)]
    alone = [sparse_encode(X, D, n_layers=30, lam=0.1, n_jobs=2) for X in inputs]
    together = [None] * len(inputs)

    def encode(k):
        together[k] = sparse_encode(inputs[k], D, n_layers=30, lam=0.1, n_jobs=2)

    threads = [threading.Thread(target=encode, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a concurrent call did not return within 120 s"
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)


def test_exact_codes_are_the_lasso_minimum():
    X = problem(seed=3)
    est = UnrolledDictionaryLearning(**SMALL).fit(X)
    z = est.transform(X, exact=True)
    # What many layers converge to, and the lasso's optimality conditions checked in float64.
    many = sparse_encode(X, est.components_, n_layers=5000, lam=est.lam, encoder="fista", step=est.step)
    assert np.abs(z - many).max() < 1e-4
    D = est.components_.astype(np.float64)
    corr = (X.astype(np.float64) - z.astype(np.float64) @ D) @ D.T
    on = z != 0
    assert on.any() and (~on).any()
    assert np.abs(corr[on] - est.lam * np.sign(z[on])).max() < 1e-4
    assert np.abs(corr[~on]).max() <= est.lam * (1 + 1e-3)
    assert np.array_equal(sparse_encode(X, est.components_, lam=est.lam, exact=True), z)
    with pytest.raises(Exception, match="hard"):
        sparse_encode(X, est.components_, lam=0.1, threshold="hard", exact=True)


def test_dtypes_are_preserved_and_float32_input_is_not_copied():
    X = problem()
    est = UnrolledDictionaryLearning(**SMALL).fit(X.astype(np.float64))
    assert est.components_.dtype == np.float64 and est.transform(X.astype(np.float64)).dtype == np.float64
    assert est.transform(X).dtype == np.float32
    # A C-contiguous float32 array reaches the library as it is (its own buffer).
    view, pointer = f32(X)
    assert view is X and pointer.contents is not None
    assert np.shares_memory(view, X)


def test_pickle_and_partial_fit():
    X = problem()
    est = UnrolledDictionaryLearning(**SMALL).fit(X)
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.transform(X), est.transform(X))
    online = UnrolledDictionaryLearning(**SMALL)
    for k in range(4):
        online.partial_fit(X[(k % 2) * 30:(k % 2 + 1) * 30])
    assert online.n_iter_ == 4 and online.n_steps_ == 12 and len(online.loss_curve_) == 12
    assert np.mean(online.loss_curve_[-3:]) < np.mean(online.loss_curve_[:3])
    with pytest.raises(ValueError):
        online.partial_fit(X[:, :5])


def test_bad_input_is_a_clear_error():
    X = problem()
    with pytest.raises(ValueError, match="NaN"):
        UnrolledDictionaryLearning(**SMALL).fit(np.where(X > 1, np.nan, X))
    with pytest.raises(ValueError, match="lam must be ≥ 0"):
        UnrolledDictionaryLearning(lam=-1).fit(X)
    with pytest.raises(ValueError, match="gradient must be one of"):
        UnrolledDictionaryLearning(gradient="adam").fit(X)
    with pytest.raises(ValueError, match="n_layers must be an integer"):
        UnrolledDictionaryLearning(n_layers=0).fit(X)
    est = UnrolledDictionaryLearning(**SMALL).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :4])
    with pytest.raises(unroll.UnrollError, match="no such file"):
        unroll.load("/nonexistent/model.safetensors")


sklearn = pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks([UnrolledDictionaryLearning(n_components=3, n_layers=10, max_iter=3, random_state=0)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
