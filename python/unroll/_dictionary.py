"""Dense unrolled dictionary learning (PUDLE) as a scikit-learn estimator over the Swift library."""

import json
import numbers
import os

import numpy as np

from ._compat import HAVE_SKLEARN, BaseEstimator, TransformerMixin, check_array, check_is_fitted, check_random_state
from ._compat import validate_data as _validate_data
from ._library import Model, PickledThroughModelFile, settings_json


def _threads(n_jobs):
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, int(n_jobs))


def _seed(random_state):
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be ≥ 0, got {random_state}")
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


class UnrolledDictionaryLearning(PickledThroughModelFile, TransformerMixin, BaseEstimator):
    """Learns a dictionary whose atoms code the samples sparsely, by backpropagation through an
    unrolled ISTA/FISTA encoder (PUDLE): X ≈ codes · components_.

    Parameters
    ----------
    n_components : int or None
        Number of atoms p (default: the number of features).
    n_layers : int
        Unrolled layers T of the encoder.
    lam : float
        λ of the soft / non-negative threshold (the threshold is λα), or τ of the hard threshold.
    gradient : {"ae-ls", "ae-lasso", "dec"}
        g_ae-ls (reconstruction loss through the layers), g_ae-lasso (lasso loss through the
        layers) or g_dec (codes held fixed).
    threshold : {"soft", "hard", "nonneg"}
    lambda_decay : float or None
        PUDLE's decay across layers, λ_t = λ·β^(t−1), β dropping by this much every 100 steps.
    encoder : {"ista", "fista"}
    step : float or None
        The encoder's step α; None: 1/L (power iteration on the current dictionary).
    batch_size : int or None
        Samples per step; None: all.
    max_iter : int
        Epochs of `fit`.
    learning_rate : float
        Adam's learning rate.
    random_state : int, RandomState or None
        Seeds the initial atoms and the shuffling (an int is the seed `unroll train --seed` takes).
    n_jobs : int or None
        Threads (None: 1; −1: every core).

    Attributes
    ----------
    components_ : ndarray [n_components, n_features], atoms as rows, unit norm.
    n_iter_ : epochs trained.
    n_steps_ : optimizer steps taken.
    loss_curve_ : list of the loss of every step of the last `fit` (and later `partial_fit` calls).
    """

    def __init__(self, n_components=None, *, n_layers=100, lam=0.2, gradient="ae-ls", threshold="soft",
                 lambda_decay=None, encoder="ista", step=None, batch_size=None, max_iter=100,
                 learning_rate=1e-3, random_state=None, n_jobs=None):
        self.n_components = n_components
        self.n_layers = n_layers
        self.lam = lam
        self.gradient = gradient
        self.threshold = threshold
        self.lambda_decay = lambda_decay
        self.encoder = encoder
        self.step = step
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _settings(self, seed):
        s = {
            "n_components": self.n_components, "n_layers": self.n_layers, "lam": self.lam, "gradient": self.gradient,
            "threshold": self.threshold, "encoder": self.encoder, "step": self.step, "batch_size": self.batch_size,
            "max_iter": self.max_iter, "learning_rate": self.learning_rate, "random_state": seed,
            "n_jobs": _threads(self.n_jobs),
            "lambda_decay": None if self.lambda_decay is None else {"decrement": self.lambda_decay, "every": 100},
        }
        return settings_json(type(self).__name__, s)

    def _record(self, X=None):
        self.components_ = self._model.dictionary()
        if X is not None:
            self.components_ = self.components_.astype(X.dtype, copy=False)
        self.n_features_in_ = self.components_.shape[1]
        self.n_steps_, self.n_iter_, losses = self._model.progress()
        self.loss_curve_ = losses.tolist()

    def fit(self, X, y=None):
        """Learns the dictionary from X [n_samples, n_features] (max_iter epochs); returns self."""
        X = _validate_data(self, X, dtype=[np.float64, np.float32])
        self._model = Model.create(self._settings(_seed(self.random_state)))
        self._model.fit(X)
        self._record(X)
        return self

    def partial_fit(self, X, y=None):
        """One epoch over X, continuing the dictionary and the optimizer; returns self."""
        first = not hasattr(self, "components_")
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        if first:
            self._model = Model.create(self._settings(_seed(self.random_state)))
        self._model.fit(X, partial=True)
        self._record(X)
        return self

    def transform(self, X, *, exact=False):
        """The codes [n_samples, n_components] of X under the unrolled encoder; with exact=True the lasso
        minimum at the model's lam that its layers converge to (the homotopy path; soft threshold, no
        lam decay)."""
        check_is_fitted(self, "components_")
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self._model.transform(X, exact=exact).astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Reconstructions codes · components_ [n_samples, n_features]."""
        check_is_fitted(self, "components_")
        Z = check_array(X, dtype=[np.float64, np.float32])
        if Z.shape[1] != self.components_.shape[0]:
            raise ValueError(f"codes have {Z.shape[1]} columns, the model has {self.components_.shape[0]} atoms")
        return self._model.inverse_transform(Z).astype(Z.dtype, copy=False)

    def save(self, path):
        """Writes the model file (unroll-model/2) that `unroll encode|eval|info` and `unroll.load` read."""
        check_is_fitted(self, "components_")
        self._model.save(path)

    if HAVE_SKLEARN:
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
            return tags


def sparse_encode(X, dictionary, *, n_layers=100, lam=0.2, threshold="soft", encoder="ista", step=None, n_jobs=None,
                  exact=False):
    """Codes of X [n_samples, n_features] under `dictionary` [n_atoms, n_features] (atoms as rows)
    by the unrolled encoder, or with exact=True the lasso minimum min_z 1/2||x - zD||^2 + lam||z||_1 (the
    homotopy path; soft threshold); in X's dtype."""
    X = check_array(X, dtype=[np.float64, np.float32])
    D = check_array(dictionary, dtype=[np.float64, np.float32])
    if D.shape[1] != X.shape[1]:
        raise ValueError(f"dictionary atoms have {D.shape[1]} values, X has {X.shape[1]} features")
    settings = settings_json("sparse_encode", {"n_layers": n_layers, "lam": lam, "threshold": threshold, "encoder": encoder,
                                               "step": step, "n_jobs": _threads(n_jobs)})
    model = Model.create(settings)
    model.set_dictionary(D)
    return model.transform(X, exact=exact).astype(X.dtype, copy=False)


def load(path, n_jobs=None):
    """A fitted model from a model file (written by `unroll train`, `unroll spikes train` or `save`):
    an `UnrolledDictionaryLearning` for a dense model, a `ConvolutionalDenoiser` for a conv2d one
    (PUDLE or CRsAE), a `SpikeSorter` for a conv1d one, a `VSCModel` for a vsc-linear or vsc-conv one."""
    model = Model.load(path, json.dumps({"n_jobs": _threads(n_jobs)}))
    kind = model.kind()
    if kind.startswith("vsc-"):
        from ._vsc import VSCModel
        return VSCModel(model)
    if kind == "conv2d":
        from ._denoiser import ConvolutionalDenoiser
        est = ConvolutionalDenoiser(n_jobs=n_jobs)
    elif kind == "conv1d":
        from ._spikes import SpikeSorter
        est = SpikeSorter(n_jobs=n_jobs)
    else:
        est = UnrolledDictionaryLearning(n_jobs=n_jobs)
    est._model = model
    est._record()
    return est
