"""A 2-D convolutional denoiser (PUDLE's convolutional autoencoder) over the Swift library."""

import json
from pathlib import Path

import numpy as np

from ._compat import BaseEstimator, check_is_fitted
from ._dictionary import _seed, _threads
from ._library import Model, PickledThroughModelFile, settings_json


def _images(images):
    """A list of 2-D float arrays from a list of arrays or a 3-D array [n, H, W]."""
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    out = []
    for i, a in enumerate(images):
        a = np.asarray(a)
        if a.ndim != 2:
            raise ValueError(f"image {i} has shape {a.shape}; images are 2-D grayscale arrays [H, W] in [0, 1]")
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"image {i} has dtype {a.dtype}; pass floats in [0, 1] (e.g. uint8 pixels / 255)")
        if not np.isfinite(a).all():
            raise ValueError(f"image {i} contains NaN or infinity")
        out.append(a)
    if not out:
        raise ValueError("no images")
    return out


class ConvolutionalDenoiser(PickledThroughModelFile, BaseEstimator):
    """Learns a convolutional dictionary for denoising grayscale images by backpropagation through an
    unrolled ISTA encoder (PUDLE §6, Table 1): random noisy crops of the training images, the loss
    against the clean crop (`target="clean"`). Defaults are Table 1's: 64 filters 9×9, stride 4,
    T 15, λ 0.16, α 0.1, 129×129 crops, σ 25/255, Adam.

    `fit(images)` takes a list of 2-D arrays in [0, 1] (or an array [n, H, W]); `denoise(image)`
    returns the estimate of a noisy image (not clamped), in the image's dtype. `max_iter` counts
    optimizer steps. `filters_` is [n_filters, kernel_size, kernel_size].
    """

    def __init__(self, n_filters=64, *, kernel_size=9, stride=4, n_layers=15, lam=0.16, gradient="ae-ls",
                 threshold="soft", encoder="ista", step=0.1, crop_size=129, sigma=25 / 255, batch_size=1,
                 max_iter=1000, learning_rate=1e-4, target="clean", flips=True, random_state=None, n_jobs=None):
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.n_layers = n_layers
        self.lam = lam
        self.gradient = gradient
        self.threshold = threshold
        self.encoder = encoder
        self.step = step
        self.crop_size = crop_size
        self.sigma = sigma
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.target = target
        self.flips = flips
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _settings(self, seed):
        s = {k: getattr(self, k) for k in ("n_filters", "kernel_size", "stride", "n_layers", "lam", "gradient", "threshold",
                                           "encoder", "step", "crop_size", "sigma", "batch_size", "max_iter",
                                           "learning_rate", "target", "flips")}
        s.update(random_state=seed, n_jobs=_threads(self.n_jobs))
        return settings_json(type(self).__name__, s)

    def _record(self):
        w = self._model.weights()
        self.filters_ = w.reshape(w.shape[0], w.shape[2], w.shape[3])
        self.noise_reference_ = self._model.noise_reference() or None
        self.non_local_ = self._model.non_local()
        self.collaborative_ = self._model.collaborative()
        self.n_steps_, _, losses = self._model.progress()
        self.loss_curve_ = losses.tolist()

    def fit(self, images, y=None):
        """Learns the filters from clean training images; returns self."""
        images = _images(images)
        self._model = Model.create(self._settings(_seed(self.random_state)), kind="conv2d")
        self._model.fit_images(images)
        self._record()
        return self

    def denoise(self, image, sigma=None, non_local=None, collaborative=None, wiener=None):
        """The denoised image of a noisy one, [H, W] gray or [H, W, 3] RGB (denoised channel by
        channel, as `unroll denoise` does), in the image's dtype; values not clamped. `sigma` is the
        image's noise level (e.g. 25 / 255), for which a noise-adaptive model (such as `pretrained()`)
        sets its thresholds; None estimates it from the image (per channel). A model trained at one σ
        ignores it. `non_local` is the last stage, a non-local means of the estimate (`non_local_`:
        h/σ, patch and window sides; the pretrained models have (0.1, 7, 23)): None keeps the model's,
        0 leaves it out, a number h/σ sets it (with the model's sides, else 7 and 23), as `unroll
        denoise --non-local` does. `collaborative` is the share a of BM3D's first step of the noisy
        image mixed into the estimate at the end (`collaborative_`: a, the threshold λ, then the share c
        of BM3D's second step with that as its pilot and the step's μ): None keeps the model's, 0 leaves
        it out, a number sets a (with the model's λ, c and μ, else 2.7, 0 and √0.4), as `unroll denoise
        --collaborative` does. `wiener` sets c likewise (`--wiener`; it needs the first step)."""
        check_is_fitted(self, "filters_")
        if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a noise level > 0 (e.g. 25 / 255), got {sigma}")
        if non_local is not None and not (np.isfinite(non_local) and non_local >= 0):
            raise ValueError(f"non_local must be h/σ > 0, or 0 for none, got {non_local}")
        for name, share in (("collaborative", collaborative), ("wiener", wiener)):
            if share is not None and not (np.isfinite(share) and 0 <= share <= 1):
                raise ValueError(f"{name} must be a share in [0, 1], got {share}")
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 3:
            return np.stack([self.denoise(image[:, :, k], sigma, non_local, collaborative, wiener) for k in range(3)], axis=2)
        image = _images([image])[0]
        own_non_local, own_collaborative = self._model.non_local(), self._model.collaborative()
        if non_local is not None:
            sides = own_non_local[1:] if own_non_local else (7, 23)
            self._model.set_non_local(None if non_local == 0 else (non_local, *sides))
        if collaborative is not None or wiener is not None:
            a, lam, c, mu = own_collaborative or (collaborative, 2.7, 0.0, 0.4 ** 0.5)
            a, c = (a if collaborative is None else collaborative), (c if wiener is None else wiener)
            if a is None or (a == 0 and wiener):   # a second-step share asked for without the first step
                raise ValueError("wiener needs the first step: the model has no collaborative filter, give collaborative=a")
            self._model.set_collaborative(None if a == 0 else (a, lam, c, mu))
        try:
            return self._model.denoise(image, sigma).astype(image.dtype, copy=False)
        finally:
            self._model.set_non_local(own_non_local)
            self._model.set_collaborative(own_collaborative)

    def save(self, path):
        """Writes the model file that `unroll denoise|eval|info` and `unroll.load` read."""
        check_is_fitted(self, "filters_")
        self._model.save(path)

    @classmethod
    def pretrained(cls, sigma=None, n_jobs=None):
        """A model the package ships (the demo's denoiser): untied CRsAE-class networks with per-filter
        thresholds that scale with the noise (docs/denoising.md), one trained over σ 5–55/255, one at
        σ 35/255 and one at σ 50/255. `sigma` (e.g. 50 / 255) picks the one for that noise, as `unroll
        denoise --sigma` does: the σ 35 model from 17.5/255, the σ 50 model from 28/255 up
        (`denoise-models.json`). None gives the σ 5–55 model,
        which serves any σ. Give `denoise` the image's σ, or let it estimate it."""
        if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a noise level > 0 (e.g. 25 / 255), got {sigma}")
        from ._dictionary import load
        models = json.loads(_shipped("denoise-models.json").read_text())["models"]
        chosen = 0 if sigma is None else sum(m["from_sigma_255"] / 255 <= sigma for m in models[1:])
        return load(_shipped(models[chosen]["file"]), n_jobs=n_jobs)


def _shipped(name):
    """A file of the shipped denoisers: in the installed package, or in the source tree's resources."""
    here = Path(__file__).resolve().parent
    for path in (here / name, here.parent.parent / "Sources" / "unroll" / "Resources" / name):
        if path.exists():
            return path
    raise FileNotFoundError(f"the shipped denoiser's {name} is not in the package")
