"""Loads libUnrollC (the Swift library's C ABI, declared in unroll.h) with ctypes."""

import ctypes
import json
import os
from pathlib import Path

import numpy as np

_NAMES = ("libUnrollC.so", "libUnrollC.dylib")


def _candidates():
    if os.environ.get("UNROLL_LIBRARY"):
        yield Path(os.environ["UNROLL_LIBRARY"])
    here = Path(__file__).resolve().parent
    for name in _NAMES:
        yield here / name                                     # installed: beside this file
        yield here.parent.parent / ".build" / "release" / name  # a checkout: python/unroll → .build


def _load():
    tried = []
    for path in _candidates():
        tried.append(str(path))
        if path.exists():
            return ctypes.CDLL(str(path))
    raise ImportError(
        "unroll: the Swift library libUnrollC was not found (looked at "
        + ", ".join(tried)
        + "); install with `pip install ./python`, or build it with "
        "`swift build -c release --product UnrollC` and set UNROLL_LIBRARY"
    )


lib = _load()

_p = ctypes.c_void_p
_f32 = ctypes.POINTER(ctypes.c_float)
_f64 = ctypes.POINTER(ctypes.c_double)
_i64 = ctypes.c_int64
_pi64 = ctypes.POINTER(ctypes.c_int64)

for name, args, res in [
    ("unroll_version", [], ctypes.c_char_p),
    ("unroll_last_error", [], ctypes.c_char_p),
    ("unroll_dense_create", [ctypes.c_char_p, ctypes.POINTER(_p)], ctypes.c_int),
    ("unroll_load", [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_p)], ctypes.c_int),
    ("unroll_free", [_p], None),
    ("unroll_fit", [_p, _f32, _i64, _i64, ctypes.c_int32], ctypes.c_int),
    ("unroll_transform", [_p, _f32, _i64, _i64, _f32], ctypes.c_int),
    ("unroll_transform_exact", [_p, _f32, _i64, _i64, _f32], ctypes.c_int),
    ("unroll_inverse_transform", [_p, _f32, _i64, _i64, _f32], ctypes.c_int),
    ("unroll_shape", [_p, _pi64, _pi64], ctypes.c_int),
    ("unroll_dictionary", [_p, _f32], ctypes.c_int),
    ("unroll_set_dictionary", [_p, _f32, _i64, _i64], ctypes.c_int),
    ("unroll_progress", [_p, _pi64, _pi64, _pi64], ctypes.c_int),
    ("unroll_losses", [_p, _f64], ctypes.c_int),
    ("unroll_save", [_p, ctypes.c_char_p], ctypes.c_int),
    ("unroll_kind", [_p], ctypes.c_char_p),
    ("unroll_conv2d_create", [ctypes.c_char_p, ctypes.POINTER(_p)], ctypes.c_int),
    ("unroll_fit_images", [_p, _f32, _pi64, _pi64, _i64], ctypes.c_int),
    ("unroll_denoise", [_p, _f32, _i64, _i64, ctypes.c_float, _f32], ctypes.c_int),
    ("unroll_noise_reference", [_p, _f32], ctypes.c_int),
    ("unroll_non_local", [_p, _f32, _pi64, _pi64], ctypes.c_int),
    ("unroll_set_non_local", [_p, ctypes.c_float, _i64, _i64], ctypes.c_int),
    ("unroll_collaborative", [_p, _f32, _f32, _f32, _f32], ctypes.c_int),
    ("unroll_set_collaborative", [_p, ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_float], ctypes.c_int),
    ("unroll_weights_shape", [_p, _pi64, _pi64], ctypes.c_int),
    ("unroll_lambdas", [_p, _f32, _pi64], ctypes.c_int),
    ("unroll_conv1d_create", [ctypes.c_char_p, ctypes.POINTER(_p)], ctypes.c_int),
    ("unroll_fit_recording", [_p, _f32, _i64, _i64], ctypes.c_int),
    ("unroll_sort", [_p, _f32, _i64, _i64, _i64, _pi64], ctypes.c_int),
    ("unroll_sorted", [_p, _pi64, _pi64, _f32], ctypes.c_int),
    ("unroll_read_png", [ctypes.c_char_p, _f32, _pi64, _pi64], ctypes.c_int),
    ("unroll_write_png", [ctypes.c_char_p, _f32, _i64, _i64], ctypes.c_int),
    ("unroll_vsc_encode", [_p, _f32, _i64, _i64, _i64, ctypes.c_uint64, _f32, _f32], ctypes.c_int),
]:
    fn = getattr(lib, name)
    fn.argtypes = args
    fn.restype = res


class UnrollError(ValueError):
    """A failure reported by the Swift library (bad settings, shapes, values or files)."""


def check(status):
    if status != 0:
        raise UnrollError(lib.unroll_last_error().decode("utf-8", "replace"))


def settings_json(name, settings):
    """Settings (of the estimator or function `name`) as the JSON object the library's constructors read."""
    try:
        return json.dumps(settings, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: a parameter is not a plain finite number, string or bool: {e}") from None


def f32(a):
    """A float32 C-ordered view of `a` (no copy when it already is one) and its data pointer."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a, a.ctypes.data_as(_f32)


class Model:
    """Owns one model handle of the library."""

    def __init__(self, handle):
        self.handle = handle

    @classmethod
    def create(cls, settings, kind="dense"):
        h = _p()
        create = {"dense": lib.unroll_dense_create, "conv2d": lib.unroll_conv2d_create, "conv1d": lib.unroll_conv1d_create}[kind]
        check(create(settings.encode(), ctypes.byref(h)))
        return cls(h)

    def kind(self):
        return lib.unroll_kind(self.handle).decode()

    def fit_images(self, images):
        images = [np.ascontiguousarray(a, dtype=np.float32) for a in images]
        pixels = np.concatenate([a.ravel() for a in images]) if images else np.zeros(0, np.float32)
        heights = np.array([a.shape[0] for a in images], dtype=np.int64)
        widths = np.array([a.shape[1] for a in images], dtype=np.int64)
        check(lib.unroll_fit_images(self.handle, pixels.ctypes.data_as(_f32), heights.ctypes.data_as(_pi64),
                                    widths.ctypes.data_as(_pi64), len(images)))

    def denoise(self, image, sigma=None):
        image, pi = f32(image)
        out = np.empty(image.shape, dtype=np.float32)
        check(lib.unroll_denoise(self.handle, pi, image.shape[0], image.shape[1], -1.0 if sigma is None else float(sigma),
                                 out.ctypes.data_as(_f32)))
        return out

    def noise_reference(self):
        sigma = ctypes.c_float()
        check(lib.unroll_noise_reference(self.handle, ctypes.byref(sigma)))
        return sigma.value

    def non_local(self):
        """(h/σ, patch side, window side) of the model's non-local stage, or None."""
        strength, patch, window = ctypes.c_float(), ctypes.c_int64(), ctypes.c_int64()
        check(lib.unroll_non_local(self.handle, ctypes.byref(strength), ctypes.byref(patch), ctypes.byref(window)))
        return None if strength.value == 0 else (strength.value, patch.value, window.value)

    def set_non_local(self, stage):
        """Sets the non-local stage to (h/σ, patch side, window side), or removes it (None)."""
        check(lib.unroll_set_non_local(self.handle, *((0.0, 0, 0) if stage is None else (float(stage[0]), int(stage[1]), int(stage[2])))))

    def collaborative(self):
        """(share a, threshold λ, second-step share c, its μ) of the model's collaborative filter, or None."""
        values = [ctypes.c_float() for _ in range(4)]
        check(lib.unroll_collaborative(self.handle, *map(ctypes.byref, values)))
        return None if values[0].value == 0 else tuple(v.value for v in values)

    def set_collaborative(self, stage):
        """Sets the collaborative filter to (share a, threshold λ, second-step share c, its μ), or removes it (None)."""
        check(lib.unroll_set_collaborative(self.handle, *((0.0,) * 4 if stage is None else map(float, stage))))

    @classmethod
    def load(cls, path, settings=None):
        h = _p()
        check(lib.unroll_load(os.fsencode(path), None if settings is None else settings.encode(), ctypes.byref(h)))
        return cls(h)

    def __del__(self):
        if getattr(self, "handle", None):
            lib.unroll_free(self.handle)
            self.handle = None

    def fit(self, x, partial=False):
        x, px = f32(x)
        check(lib.unroll_fit(self.handle, px, x.shape[0], x.shape[1], int(partial)))

    def shape(self):
        p, m = _i64(), _i64()
        check(lib.unroll_shape(self.handle, ctypes.byref(p), ctypes.byref(m)))
        return p.value, m.value

    def transform(self, x, exact=False):
        x, px = f32(x)
        p, _ = self.shape()
        codes = np.empty((x.shape[0], p), dtype=np.float32)
        run = lib.unroll_transform_exact if exact else lib.unroll_transform
        check(run(self.handle, px, x.shape[0], x.shape[1], codes.ctypes.data_as(_f32)))
        return codes

    def inverse_transform(self, codes):
        codes, pc = f32(codes)
        _, m = self.shape()
        x = np.empty((codes.shape[0], m), dtype=np.float32)
        check(lib.unroll_inverse_transform(self.handle, pc, codes.shape[0], codes.shape[1], x.ctypes.data_as(_f32)))
        return x

    def dictionary(self):
        p, m = self.shape()
        d = np.empty((p, m), dtype=np.float32)
        check(lib.unroll_dictionary(self.handle, d.ctypes.data_as(_f32)))
        return d

    def weights(self):
        """The weights in their own shape (conv2d [C, 1, K, K], conv1d [C, channels, K], …)."""
        shape, rank = (_i64 * 4)(), _i64()
        check(lib.unroll_weights_shape(self.handle, shape, ctypes.byref(rank)))
        return self.dictionary().reshape(tuple(shape[: rank.value]))

    def lambdas(self):
        n = _i64()
        check(lib.unroll_lambdas(self.handle, None, ctypes.byref(n)))
        out = np.empty(n.value, dtype=np.float32)
        check(lib.unroll_lambdas(self.handle, out.ctypes.data_as(_f32), ctypes.byref(n)))
        return out

    def fit_recording(self, signal):
        signal, ps = f32(signal)
        check(lib.unroll_fit_recording(self.handle, ps, signal.shape[0], signal.shape[1]))

    def sort(self, signal, chunk):
        signal, ps = f32(signal)
        n = _i64()
        check(lib.unroll_sort(self.handle, ps, signal.shape[0], signal.shape[1], int(chunk), ctypes.byref(n)))
        neurons, times = np.empty(n.value, dtype=np.int64), np.empty(n.value, dtype=np.int64)
        heights = np.empty(n.value, dtype=np.float32)
        check(lib.unroll_sorted(self.handle, neurons.ctypes.data_as(_pi64), times.ctypes.data_as(_pi64),
                                heights.ctypes.data_as(_f32)))
        return neurons, times, heights

    def vsc_encode(self, x, samples, seed):
        x, px = f32(x)
        latents, pixels = self.shape()
        codes = np.empty((x.shape[0], latents), dtype=np.float32)
        recon = np.empty((x.shape[0], pixels), dtype=np.float32)
        check(lib.unroll_vsc_encode(self.handle, px, x.shape[0], x.shape[1], samples, seed, codes.ctypes.data_as(_f32),
                                    recon.ctypes.data_as(_f32)))
        return codes, recon

    def set_dictionary(self, d):
        d, pd = f32(d)
        check(lib.unroll_set_dictionary(self.handle, pd, d.shape[0], d.shape[1]))

    def progress(self):
        steps, epochs, n = _i64(), _i64(), _i64()
        check(lib.unroll_progress(self.handle, ctypes.byref(steps), ctypes.byref(epochs), ctypes.byref(n)))
        losses = np.empty(n.value, dtype=np.float64)
        check(lib.unroll_losses(self.handle, losses.ctypes.data_as(_f64)))
        return steps.value, epochs.value, losses

    def save(self, path):
        check(lib.unroll_save(self.handle, os.fsencode(path)))


def read_png(path):
    """A PNG image as gray levels in [0, 1], float32 [height, width] (8- or 16-bit; gray, RGB(A) or
    palette, RGB converted with the ITU-R 601 luma weights): the reader `unroll` itself uses."""
    h, w = _i64(), _i64()
    check(lib.unroll_read_png(os.fsencode(path), None, ctypes.byref(h), ctypes.byref(w)))
    out = np.empty((h.value, w.value), dtype=np.float32)
    check(lib.unroll_read_png(os.fsencode(path), out.ctypes.data_as(_f32), ctypes.byref(h), ctypes.byref(w)))
    return out


def write_png(path, image):
    """Writes a 2-D array of gray levels in [0, 1] (clamped, rounded) as an 8-bit PNG."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"write_png takes a 2-D gray image [height, width], got shape {image.shape}")
    image, pi = f32(image)
    check(lib.unroll_write_png(os.fsencode(path), pi, image.shape[0], image.shape[1]))


class PickledThroughModelFile:
    """Pickling for estimators that hold a library handle (`_model`), which does not pickle: the model
    file's bytes stand in for it, and unpickling loads them into a new handle (with `_settings`)."""

    def __getstate__(self):
        import tempfile
        state = self.__dict__.copy()
        model = state.pop("_model", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "model.safetensors")
                model.save(path)
                with open(path, "rb") as f:
                    state["_model_file"] = f.read()
        return state

    def __setstate__(self, state):
        import tempfile
        data = state.pop("_model_file", None)
        self.__dict__.update(state)
        if data is not None:
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "model.safetensors")
                with open(path, "wb") as f:
                    f.write(data)
                self._model = Model.load(path, self._settings(0))
