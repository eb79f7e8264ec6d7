"""Unroll from Python: sparse coding and dictionary learning by algorithm unrolling, over the Swift
library (libUnrollC) in-process. See docs/python.md."""

from ._denoiser import ConvolutionalDenoiser
from ._dictionary import UnrolledDictionaryLearning, load, sparse_encode
from ._library import UnrollError, lib

__version__ = "0.2.0"
__all__ = ["UnrolledDictionaryLearning", "ConvolutionalDenoiser", "sparse_encode", "load", "UnrollError"]


def library_version():
    """The Swift library's version string."""
    return lib.unroll_version().decode()
