"""Animated GIFs of games, from the RGB pictures of `Game.draw()`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def save_gif(
    frames: Sequence[np.ndarray], path: str, fps: float = 10, scale: int | None = None
) -> str:
    """Writes RGB pictures as one animated GIF that loops forever.

    Pictures are enlarged by whole pixels (nearest neighbour), so cells stay
    crisp squares.

    Args:
        frames: `uint8` RGB arrays, each `(height, width, 3)`, all of one shape.
        path: The GIF file to write; missing folders are created.
        fps: Pictures per second. Defaults to 10.
        scale: Pixels per cell, or `None` for about 240 pixels across.
            Defaults to `None`.

    Returns:
        `path`.

    Raises:
        ValueError: If `frames` is empty, the pictures are not RGB of one
            shape, or `fps`/`scale` is not positive.

    Example:

    ```python
    game = Catch(seed=0)
    pictures = [game.draw()]
    while not game.is_over():
        game.play(1)
        pictures.append(game.draw())
    save_gif(pictures, "catch.gif", fps=5)
    ```
    """
    from PIL import Image

    if len(frames) == 0:
        raise ValueError("save_gif() needs at least one frame. Received: 0 frames")
    first = np.asarray(frames[0])
    if first.ndim != 3 or first.shape[-1] != 3:
        raise ValueError(
            f"save_gif() expects RGB frames of shape (height, width, 3). Received: {first.shape}"
        )
    if not fps > 0:
        raise ValueError(f"fps must be positive. Received: fps={fps}")
    if scale is None:
        scale = max(1, 240 // max(first.shape[:2]))
    if scale < 1:
        raise ValueError(f"scale must be a positive integer. Received: scale={scale}")
    arrays = [np.asarray(f) for f in frames]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"save_gif() expects frames of one shape. Received: {sorted(shapes)}")
    stack = np.stack(arrays)
    stack = stack.astype(np.uint8).repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(f) for f in stack]
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=max(20, round(1000 / fps)),
        loop=0,
        optimize=False,
    )
    return path
