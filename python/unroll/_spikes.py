"""CRsAE spike sorting (a multichannel 1-D convolutional dictionary) over the Swift library."""


import numpy as np

from ._compat import BaseEstimator, check_is_fitted
from ._dictionary import _seed, _threads
from ._library import Model, PickledThroughModelFile, settings_json


def _recording(X):
    """A float recording [samples, channels] (a 1-D array is one channel)."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"a recording is [samples, channels] (or 1-D), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise ValueError(f"the recording has dtype {X.dtype}; pass float32 or float64 samples")
    if not np.isfinite(X).all():
        raise ValueError("the recording contains NaN or infinity")
    return X


class SpikeSorter(PickledThroughModelFile, BaseEstimator):
    """Learns one template per neuron from a recording and sorts spikes with CRsAE (Tolooshams et al.
    2021 §6): a FISTA encoder unrolled `n_layers` times over a multichannel 1-D convolutional
    dictionary, λ per neuron learned by EM with a Gamma prior, σ from the residual, Adam; the start
    is computed from the recording alone (no ground truth needed): by default its detected spikes
    clustered into 3 × `n_neurons` groups and merged (`initialization="clusters"`), or CRsAE's
    minimum-correlation choice among the threshold crossings (`"crossings"`). The defaults are
    `unroll spikes train`'s, and the same settings give the same model.

    `fit(X)` takes a recording [samples, channels] (or 1-D); `predict(X)` gives the spike times
    (sample indices) and their neurons, ordered by time; `sort(X)` the table `unroll spikes sort`
    writes (neuron, sample, seconds, height). `filters_` is [n_neurons, channels, filter_length]
    (unit norm), `lambdas_` the encoder's penalty λ_c σ² per neuron, `n_iter_` the epochs trained
    and `loss_curve_` the mean loss of each epoch.
    """

    def __init__(self, n_neurons=3, *, filter_length=None, sampling_rate=10_000.0, n_layers=50, max_iter=None,
                 batch_size=32, learning_rate=0.01, lr_decay=0.9, window=1000, refine_epochs=12, refine_layers=100,
                 refine_learning_rate=0.001, prior_rate=500.0, initialization="clusters", crossing=4.0, non_negative=False,
                 random_state=None, n_jobs=None):
        self.n_neurons = n_neurons
        self.filter_length = filter_length
        self.sampling_rate = sampling_rate
        self.n_layers = n_layers
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.window = window
        self.refine_epochs = refine_epochs
        self.refine_layers = refine_layers
        self.refine_learning_rate = refine_learning_rate
        self.prior_rate = prior_rate
        self.initialization = initialization
        self.crossing = crossing
        self.non_negative = non_negative
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _settings(self, seed):
        s = {k: getattr(self, k) for k in ("n_neurons", "filter_length", "sampling_rate", "n_layers", "max_iter", "batch_size",
                                           "learning_rate", "lr_decay", "window", "refine_epochs", "refine_layers",
                                           "refine_learning_rate", "prior_rate", "initialization", "crossing",
                                           "non_negative")}
        s.update(random_state=seed, n_jobs=_threads(self.n_jobs))
        return settings_json(type(self).__name__, s)

    def _record(self):
        self.filters_ = self._model.weights()
        self.lambdas_ = self._model.lambdas()
        self.n_features_in_ = self.filters_.shape[1]
        _, self.n_iter_, losses = self._model.progress()
        self.loss_curve_ = losses.tolist()

    def fit(self, X, y=None):
        """Learns the templates from a recording [samples, channels]; returns self."""
        X = _recording(X)
        self._model = Model.create(self._settings(_seed(self.random_state)), kind="conv1d")
        self._model.fit_recording(X)
        self._record()
        return self

    def sort(self, X, *, threshold=0.0, chunk=20_000):
        """Every detected spike of a recording as a record array with fields neuron, sample, seconds
        (at `sampling_rate`) and height, ordered by time; detections below `threshold` are dropped."""
        check_is_fitted(self, "filters_")
        X = _recording(X)
        if X.shape[1] != self.filters_.shape[1]:
            raise ValueError(f"the recording has {X.shape[1]} channel(s), the templates {self.filters_.shape[1]}")
        neurons, times, heights = self._model.sort(X, chunk)
        keep = heights >= threshold
        return np.rec.fromarrays([neurons[keep], times[keep], times[keep] / float(self.sampling_rate), heights[keep]],
                                 names="neuron,sample,seconds,height")

    def predict(self, X, *, threshold=0.0, chunk=20_000):
        """The spike times (sample indices) and their neurons, ordered by time."""
        s = self.sort(X, threshold=threshold, chunk=chunk)
        return np.asarray(s.sample), np.asarray(s.neuron)

    def save(self, path):
        """Writes the model file that `unroll spikes sort|info|encode` and `unroll.load` read."""
        check_is_fitted(self, "filters_")
        self._model.save(path)
