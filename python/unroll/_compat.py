"""scikit-learn's estimator base and input checks when it is installed; small stand-ins with the same
behaviour otherwise (NumPy is the package's only required dependency)."""

import inspect

import numpy as np

try:
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.utils import check_array, check_random_state
    from sklearn.utils.validation import check_is_fitted

    try:  # scikit-learn ≥ 1.6
        from sklearn.utils.validation import validate_data
    except ImportError:  # pragma: no cover
        def validate_data(estimator, X, reset=True, **kw):
            return estimator._validate_data(X, reset=reset, **kw)

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False

    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before `fit`."""

    class BaseEstimator:
        """get_params / set_params from the constructor's keyword parameters."""

        @classmethod
        def _param_names(cls):
            return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._param_names()}

        def set_params(self, **params):
            valid = set(self._param_names())
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}")
                setattr(self, key, value)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class TransformerMixin:
        def fit_transform(self, X, y=None, **fit_params):
            return self.fit(X, y, **fit_params).transform(X)

    def check_random_state(seed):
        if seed is None:
            return np.random.mtrand._rand
        if isinstance(seed, np.random.RandomState):
            return seed
        return np.random.RandomState(seed)

    def check_array(X, dtype=(np.float64, np.float32), **_):
        X = np.asarray(X)
        if X.dtype not in [np.dtype(d) for d in dtype]:
            if np.iscomplexobj(X):
                raise ValueError("complex data is not supported")
            X = X.astype(dtype[0])
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array [n_samples, n_features], got {X.ndim} dimensions")
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"found an array with shape {X.shape}; at least 1 sample and 1 feature are required")
        if not np.isfinite(X).all():
            raise ValueError("Input contains NaN or infinity")
        return X

    def check_is_fitted(estimator, attributes):
        if not hasattr(estimator, attributes):
            raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; call fit first")

    def validate_data(estimator, X, reset=True, dtype=(np.float64, np.float32), **_):
        X = check_array(X, dtype=dtype)
        if reset:
            estimator.n_features_in_ = X.shape[1]
        elif X.shape[1] != estimator.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
                             f"{estimator.n_features_in_} features as input")
        return X
