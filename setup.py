"""Install colora: `pip install -e .[test]` (see README.md)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(r'__version__ = "([^"]+)"', Path("colora/__init__.py").read_text()).group(1)

setup(
    name="colora",
    version=VERSION,
    description="PROD pre-training and contribution-based LoRA (CoLoRA) for image restoration",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["colora", "colora.*"]),
    package_data={"colora": ["weights/**/*", "options/**/*.yml"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.1",
        "numpy",
        "opencv-python-headless",
        "scikit-image",
        "PyYAML",
        "safetensors",
        "tqdm",
    ],
    extras_require={
        # onnxruntime + onnx are ~37 MB of wheels and ~10 s to install (beside a ~200 MB torch), so the
        # test extra takes them and CI exercises export and the onnxruntime backend.
        "test": ["pytest", "onnxruntime", "onnx"],
        "onnx": ["onnxruntime", "onnx"],  # colora export -o FILE.onnx, restore --backend onnxruntime
        "plots": ["matplotlib"],
        "bench": ["PyWavelets"],  # the wavelet denoiser among benchmarks/vs_classical.py's classical methods
        "tb": ["tensorboard"],
    },
    entry_points={"console_scripts": ["colora=colora.cli:main"]},
)
