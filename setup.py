"""Installs qlearning4k: `pip install .`, or `pip install -e ".[test]"` to develop."""

import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(
    r'^__version__ = "([^"]+)"', (here / "qlearning4k" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="qlearning4k",
    version=version,
    description="Q-learning for Keras: train any compiled Keras model to play a game.",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["qlearning4k", "qlearning4k.*"]),
    package_data={"qlearning4k": ["py.typed", "presets/*.yml"]},
    entry_points={"console_scripts": ["qlearning4k = qlearning4k.cli:main"]},
    python_requires=">=3.10",
    install_requires=[
        "keras>=3.15",
        "tensorflow-cpu>=2.21",
        "numpy>=1.26",
        "matplotlib>=3.8",
        "pillow>=10",
        "pyyaml>=6",  # configs and presets of the qlearning4k command
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.6",
            "ruff>=0.6",
            "import-linter>=2.1",
            "tensorboard",
            "gymnasium>=1.0",
            "minatar>=1.0.15",
            "ale-py>=0.10",
            "opencv-python-headless>=4.8",
            "ray[tune]>=2.60",
            "minigrid>=3.0",
            "popgym>=1.0.7",
            "gymnasium[box2d]>=1.0",
            "tf2onnx>=1.17",
            "onnx>=1.17",
            "onnxruntime>=1.20",
            "ai-edge-litert>=2.0",
            "imageio-ffmpeg>=0.5",
        ],
        # Gymnasium, with pygame for the classic-control tasks' pictures (videos).
        "gym": ["gymnasium[classic-control]>=1.0"],
        # Box2D's tasks (LunarLander, BipedalWalker), for examples/bipedal_walker_bdq.py.
        "box2d": ["gymnasium[box2d]>=1.0"],
        # MiniGrid's gridworlds, whose observations are dicts (image and direction).
        "minigrid": ["gymnasium>=1.0", "minigrid>=3.0"],
        # POPGym's memory tasks, for examples/popgym_memory.py (recurrent Q-networks).
        "popgym": ["gymnasium>=1.0", "popgym>=1.0.7"],
        # Sweeps on Ray Tune (qlearning4k.tune) and actors (qlearning4k.actors).
        "ray": ["ray[tune]>=2.60"],
        # MinAtar's games through Gymnasium (minatar.gym.register_envs()).
        "minatar": ["gymnasium>=1.0", "minatar>=1.0.15"],
        # Atari through ale-py (its wheel ships the ROMs); OpenCV for AtariPreprocessing.
        "atari": ["gymnasium>=1.0", "ale-py>=0.10", "opencv-python-headless>=4.8"],
        # Agent.export's formats: ONNX (written through tf2onnx on TensorFlow and
        # JAX, run in onnxruntime) and LiteRT (run in ai-edge-litert).
        "export": ["tf2onnx>=1.17", "onnx>=1.17", "onnxruntime>=1.20", "ai-edge-litert>=2.0"],
        # MP4 videos of play() and save_video() (the wheel ships ffmpeg).
        "video": ["imageio-ffmpeg>=0.5"],
        # The other Keras backends. torch is pinned to the CPU build.
        # jax2onnx: Agent.export's ONNX format on JAX.
        "jax": ["jax>=0.10", "jax2onnx>=0.17"],
        "torch": ["torch==2.13.0"],
        # The documentation site: mkdocs build --strict (or mkdocs serve).
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
