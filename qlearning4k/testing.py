"""`check_game`: the checker to run on your own `Game` subclasses."""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from qlearning4k.games.game import Game


def check_game(game: Game, nb_games: int = 5, max_steps: int = 10_000, seed: int = 0) -> None:
    """Plays seeded random games of `game` and raises if it breaks the contract.

    Runs on copies of `game` (the game itself is not changed) and checks:

    - `nb_actions` is a positive int and `get_possible_actions()` a non-empty
      list of actions in `range(nb_actions)`;
    - `get_frame()` keeps one shape and dtype, through steps and resets, and
      holds no NaN or infinity;
    - `get_score()` is a finite number;
    - a game ends within `max_steps` random steps;
    - `is_won()` and `is_truncated()` are never true while the game is not
      over;
    - `reset()` restores a fresh game: after a played game, a reset with the
      same random generator state gives the same first frame as a new copy;
    - the game is deterministic: two copies with the same seed, given the
      same actions, show the same frames and scores.

    Args:
        game: The game to check.
        nb_games: Number of random games played. Defaults to 5.
        max_steps: Steps after which a game that is not over is reported.
            Defaults to 10,000.
        seed: Seed of the checker's random actions and of the games'
            generators. Defaults to 0.

    Raises:
        TypeError: If `game` is not a `Game`.
        ValueError: Listing every problem found, one per line.

    Example:

    ```python
    from qlearning4k.testing import check_game

    check_game(MyGame())  # raises ValueError naming each problem
    ```
    """
    if not isinstance(game, Game):
        raise TypeError(
            f"check_game() expects a qlearning4k Game. Received: {game!r} "
            f"(of type {type(game).__name__})"
        )
    name = type(game).__name__
    problems: list[str] = []
    nb_actions = game.nb_actions
    if isinstance(nb_actions, bool) or not isinstance(nb_actions, (int, np.integer)):
        raise ValueError(f"{name}.nb_actions must be a positive int. Received: {nb_actions!r}")
    if nb_actions < 1:
        raise ValueError(f"{name}.nb_actions must be a positive int. Received: {nb_actions}")

    def fresh(game_seed):
        clone = copy.deepcopy(game)
        clone.rng = np.random.default_rng(game_seed)
        clone.reset()
        return clone

    reference = np.asarray(fresh(seed).get_frame())
    rng = np.random.default_rng(seed)
    traces = []
    for index in range(nb_games):
        clone = fresh(seed + index)
        trace = _play(clone, rng, nb_actions, reference, max_steps, problems, name)
        traces.append(trace)
        # reset() after a played game must match a new copy's first frame.
        clone.rng = np.random.default_rng(seed + index)
        clone.reset()
        if clone.is_over():
            problems.append(f"{name}.reset() leaves a game that is already over.")
        if not np.array_equal(np.asarray(clone.get_frame()), trace[0][0]):
            problems.append(
                f"{name}.reset() does not restore a fresh game: after game {index}, the first "
                "frame differs from a new game's with the same seed."
            )
    # Same seed, same actions: same frames and scores.
    for index, (frames, scores, actions) in enumerate(traces):
        replay = fresh(seed + index)
        for step, action in enumerate(actions):
            replay.play(action)
            if not np.array_equal(np.asarray(replay.get_frame()), frames[step + 1]) or (
                replay.get_score() != scores[step]
            ):
                problems.append(
                    f"{name} is not deterministic under a seed: the same actions from the same "
                    f"seed gave a different frame or score at step {step + 1}. Draw randomness "
                    "from self.rng only."
                )
                break
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ValueError(
            f"check_game found {len(unique)} problem(s) in {name}:\n- " + "\n- ".join(unique)
        )


def _play(game, rng, nb_actions, reference, max_steps, problems, name):
    """Plays one random game; returns its frames, scores and actions."""
    first = np.asarray(game.get_frame())
    _check_frame(first, reference, problems, name, "after reset()")
    frames, scores, actions = [first], [], []
    for step in range(1, max_steps + 1):
        if game.is_over():
            return frames, scores, actions
        if game.is_won():
            problems.append(f"{name}.is_won() is true while the game is not over (step {step}).")
        if game.is_truncated():
            problems.append(
                f"{name}.is_truncated() is true while the game is not over (step {step})."
            )
        possible = list(game.get_possible_actions())
        if not possible:
            problems.append(f"{name}.get_possible_actions() is empty at step {step}.")
            return frames, scores, actions
        outside = [a for a in possible if not (0 <= int(a) < nb_actions)]
        if outside:
            problems.append(
                f"{name}.get_possible_actions() returned actions outside "
                f"range(nb_actions={nb_actions}): {outside}"
            )
            return frames, scores, actions
        action = int(possible[rng.integers(len(possible))])
        game.play(action)
        score = game.get_score()
        if (
            isinstance(score, (bool, np.bool_))
            or not isinstance(score, (numbers.Real, np.number))
            or not math.isfinite(float(score))
        ):
            problems.append(
                f"{name}.get_score() must return a finite number. Received: {score!r} "
                f"at step {step}"
            )
            return frames, scores, actions
        frame = np.asarray(game.get_frame())
        _check_frame(frame, reference, problems, name, f"at step {step}")
        frames.append(frame)
        scores.append(score)
        actions.append(action)
    problems.append(f"{name} did not end within max_steps={max_steps} random steps.")
    return frames, scores, actions


def _check_frame(frame, reference, problems, name, when) -> None:
    if frame.shape != reference.shape or frame.dtype != reference.dtype:
        problems.append(
            f"{name}.get_frame() changed shape or dtype {when}: expected "
            f"{reference.shape} {reference.dtype}. Received: {frame.shape} {frame.dtype}"
        )
    elif frame.dtype.kind == "f" and not np.isfinite(frame).all():
        problems.append(f"{name}.get_frame() holds NaN or infinity {when}.")
