"""Trains the Catch and Snake examples and writes the README's pictures.

    python examples/make_gifs.py           # gifs/catch.gif, gifs/snake.gif, gifs/catch_history.png
    python examples/make_gifs.py --smoke   # a few games of each, to check the set-up

Run it from the repository's root: the pictures go to OUT_DIR under the
current folder.
"""

import argparse
import os

import catch
import keras
import snake

from qlearning4k.games import Catch, Snake

# -- settings -----------------------------------------------------------------
OUT_DIR = "gifs"
CATCH_GAMES = 10  # games in gifs/catch.gif
SNAKE_GAMES = 3  # games in gifs/snake.gif
FPS = 8
SMOKE_GAMES = 1
# -----------------------------------------------------------------------------


def main(smoke: bool = False) -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    keras.utils.set_random_seed(catch.SEED)
    agent = catch.build_agent()
    history = catch.train(agent, smoke)
    history.plot(os.path.join(OUT_DIR, "catch_history.png"))
    agent.play(
        Catch(catch.GRID_SIZE, seed=catch.SEED + 1),
        nb_epoch=SMOKE_GAMES if smoke else CATCH_GAMES,
        path=os.path.join(OUT_DIR, "catch.gif"),
        fps=FPS,
    )

    keras.utils.set_random_seed(snake.SEED)
    agent = snake.build_agent()
    snake.train(agent, smoke)
    agent.play(
        Snake(snake.GRID_SIZE, seed=snake.SEED + 1),
        nb_epoch=SMOKE_GAMES if smoke else SNAKE_GAMES,
        path=os.path.join(OUT_DIR, "snake.gif"),
        fps=FPS,
    )
    print(f"Wrote {OUT_DIR}/catch.gif, {OUT_DIR}/snake.gif and {OUT_DIR}/catch_history.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    main(parser.parse_args().smoke)
