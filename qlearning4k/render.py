"""Videos of games (MP4 or animated GIF), from the RGB pictures of `Game.draw()`."""

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
    stack = _scaled(frames, fps, scale, "save_gif()")
    _write_gif(stack, _in_folder(path), fps)
    return path


def save_video(
    frames: Sequence[np.ndarray], path: str, fps: float = 10, scale: int | None = None
) -> str:
    """Writes RGB pictures as a video: an MP4 file (H.264) or an animated GIF, by `path`'s ending.

    Pictures are enlarged by whole pixels (nearest neighbour) as for
    `save_gif`; an MP4's sides are padded with black to even sizes, as
    H.264 needs. MP4 files are written through `imageio-ffmpeg`, whose
    wheel ships ffmpeg (`pip install "qlearning4k[video]"`).

    Args:
        frames: `uint8` RGB arrays, each `(height, width, 3)`, all of one shape.
        path: The file to write, ending in `.mp4` or `.gif`; missing folders
            are created.
        fps: Pictures per second. Defaults to 10.
        scale: Pixels per cell, or `None` for about 240 pixels across.
            Defaults to `None`.

    Returns:
        `path`.

    Raises:
        ValueError: If `path` ends otherwise, `frames` is empty, the
            pictures are not RGB of one shape, or `fps`/`scale` is not
            positive.
        ImportError: If an MP4 is asked for without `imageio-ffmpeg`.

    Example:

    ```python
    game = Snake(seed=0)
    pictures = [game.draw()]
    for _ in range(20):
        game.play(2)
        pictures.append(game.draw())
    save_video(pictures, "snake.mp4", fps=8)
    ```
    """
    ending = _check_video(path, fps, "save_video()")
    stack = _scaled(frames, fps, scale, "save_video()")
    if ending == ".gif":
        _write_gif(stack, _in_folder(path), fps)
        return path
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise ImportError(
            "save_video() writes MP4 files through imageio-ffmpeg: "
            'pip install "qlearning4k[video]" (or imageio-ffmpeg), or write a .gif.'
        ) from error
    height, width = stack.shape[1:3]
    stack = np.pad(stack, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))  # even sides
    writer = imageio_ffmpeg.write_frames(
        _in_folder(path), (width + width % 2, height + height % 2), fps=fps,
        codec="libx264", macro_block_size=1, ffmpeg_log_level="error",
    )  # fmt: skip
    writer.send(None)  # starts ffmpeg
    for picture in stack:
        writer.send(np.ascontiguousarray(picture))
    writer.close()
    return path


def _check_video(path, fps: float, who: str) -> str:
    """Checks a video's path (`.mp4` or `.gif`) and `fps`; returns the ending."""
    ending = os.path.splitext(os.fspath(path))[1].lower()
    if ending not in (".mp4", ".gif"):
        raise ValueError(f"{who} writes .mp4 and .gif files. Received: path={os.fspath(path)!r}")
    if not fps > 0:
        raise ValueError(f"fps must be positive. Received: fps={fps}")
    return ending


def _scaled(frames, fps: float, scale: int | None, who: str) -> np.ndarray:
    """The pictures checked and enlarged by `scale`: `uint8` `(n, height, width, 3)`."""
    if len(frames) == 0:
        raise ValueError(f"{who} needs at least one frame. Received: 0 frames")
    first = np.asarray(frames[0])
    if first.ndim != 3 or first.shape[-1] != 3:
        raise ValueError(
            f"{who} expects RGB frames of shape (height, width, 3). Received: {first.shape}"
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
        raise ValueError(f"{who} expects frames of one shape. Received: {sorted(shapes)}")
    return np.stack(arrays).astype(np.uint8).repeat(scale, axis=1).repeat(scale, axis=2)


def _in_folder(path) -> str:
    """`path`, its folder made."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    return path


def _write_gif(stack: np.ndarray, path: str, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in stack]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=max(20, round(1000 / fps)),
        loop=0,
        optimize=False,
    )
