"""Variational sparse-coding models (trained by `unroll train --model vsc`) read from their files."""

import numpy as np

from ._compat import check_array


class VSCModel:
    """A variational sparse-coding model from a file (`unroll.load`). Its encoder network predicts a
    distribution per signal whose samples are thresholded. `transform(X)` gives each row's code, the
    draw the model's aggregation picks among `n_samples` draws seeded by `random_state`.
    `reconstruct(X)` gives the generator's output for that code. Both are what `unroll encode
    --samples --seed` gives. Train a model with `unroll train --model vsc`.

    `kind` is "vsc-linear" or "vsc-conv" (for vsc-conv, rows are 28×28 images in [0, 1]).
    `components_` is the linear generator's dictionary [n_components, n_features].
    """

    def __init__(self, model):
        self._model = model
        self.kind = model.kind()
        self.n_components, self.n_features_in_ = model.shape()
        if self.kind == "vsc-linear":
            self.components_ = model.dictionary()

    def encode(self, X, *, n_samples=None, random_state=0):
        """(codes [n, n_components], reconstructions [n, n_features]) of rows X, in X's dtype."""
        X = check_array(X, dtype=[np.float64, np.float32])
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model takes {self.n_features_in_}")
        if n_samples is not None and (int(n_samples) != n_samples or n_samples < 1):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
        if int(random_state) != random_state or random_state < 0:
            raise ValueError(f"random_state must be an integer ≥ 0, got {random_state}")
        codes, recon = self._model.vsc_encode(X, int(n_samples or 0), int(random_state))
        return codes.astype(X.dtype, copy=False), recon.astype(X.dtype, copy=False)

    def transform(self, X, *, n_samples=None, random_state=0):
        """The codes [n, n_components] of rows X."""
        return self.encode(X, n_samples=n_samples, random_state=random_state)[0]

    def reconstruct(self, X, *, n_samples=None, random_state=0):
        """The reconstructions [n, n_features] of rows X through their codes."""
        return self.encode(X, n_samples=n_samples, random_state=random_state)[1]

    def save(self, path):
        """Writes the model file again (`unroll encode|info` read it)."""
        self._model.save(path)

    def __repr__(self):
        return f"VSCModel(kind={self.kind!r}, n_components={self.n_components}, n_features={self.n_features_in_})"
