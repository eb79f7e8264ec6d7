"""Builds the Swift library (`swift build -c release --product UnrollC` in the checkout above this
folder) and puts libUnrollC beside the Python package. UNROLL_LIBRARY=path skips the build and
copies that library instead."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent.parent


class BuildWithSwift(build_py):
    def run(self):
        super().run()
        library = os.environ.get("UNROLL_LIBRARY")
        if not library:
            subprocess.run(["swift", "build", "-c", "release", "--product", "UnrollC"], cwd=ROOT, check=True)
            built = [ROOT / ".build" / "release" / n for n in ("libUnrollC.so", "libUnrollC.dylib")]
            library = next((p for p in built if p.exists()), None)
            if library is None:
                raise RuntimeError("swift build did not produce libUnrollC in .build/release")
        target = Path(self.build_lib) / "unroll"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target / Path(library).name)
        # The shipped denoising models (ConvolutionalDenoiser.pretrained()).
        for name in ("denoise-models.json", "denoise-model.safetensors", "denoise-model-sigma35.safetensors",
                     "denoise-model-sigma50.safetensors"):
            shutil.copy2(ROOT / "Sources" / "unroll" / "Resources" / name, target)


class BinaryDistribution(Distribution):
    """The wheel holds a compiled library, so it is platform-specific."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithSwift}, distclass=BinaryDistribution)
