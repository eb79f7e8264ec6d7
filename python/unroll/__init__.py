"""Unroll from Python: sparse coding and dictionary learning by algorithm unrolling, over the Swift
library (libUnrollC) in-process. See docs/python.md."""

from ._denoiser import ConvolutionalDenoiser
from ._dictionary import UnrolledDictionaryLearning, load, sparse_encode
from ._library import UnrollError, lib, read_png, write_png
from ._spikes import SpikeSorter
from ._vsc import VSCModel

__version__ = "0.2.0"
__all__ = ["UnrolledDictionaryLearning", "ConvolutionalDenoiser", "SpikeSorter", "VSCModel", "sparse_encode", "load",
           "read_png", "write_png", "UnrollError"]


def library_version():
    """The Swift library's version string."""
    return lib.unroll_version().decode()
