"""`check_game`: the checker to run on your own `Game` and `VectorGame` subclasses."""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from qlearning4k._player import allows_each_part
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame


def check_game(
    game: Game | VectorGame, nb_games: int = 5, max_steps: int = 10_000, seed: int = 0
) -> None:
    """Plays seeded random games of `game` and raises if it breaks the contract.

    Runs on copies of `game` (the game itself is not changed) and checks:

    - `nb_actions` is a positive int and `get_possible_actions()` a non-empty
      list of actions in `range(nb_actions)` (for a game of several action
      parts: a tuple of positive ints, and one non-empty list per part);
    - `get_frame()` keeps one shape and dtype, through steps and resets, and
      holds no NaN or infinity (a frame in parts, a dict or tuple of
      arrays: the same parts, each with one shape and dtype);
    - `get_score()` is a finite number;
    - a game ends within `max_steps` random steps;
    - `is_won()` and `is_truncated()` are never true while the game is not
      over;
    - `reset()` restores a fresh game: after a played game, a reset with the
      same random generator state gives the same first frame as a new copy;
    - the game is deterministic: two copies with the same seed, given the
      same actions, show the same frames and scores.

    A `VectorGame` is checked on itself (it is reset with `seed`): every
    getter returns one entry per copy, with the shapes and dtypes of the
    contract; a copy that is over stays over, showing the same frame and
    scoring 0, until it is reset; `reset(mask)` restarts the copies in
    `mask` only; random moves end `nb_games` games in all, each within
    `max_steps` steps; and `reset(seed=seed)` replays the same games.

    Args:
        game: The game to check.
        nb_games: Number of random games played (by all copies together,
            for a vector game). Defaults to 5.
        max_steps: Steps after which a game that is not over is reported.
            Defaults to 10,000.
        seed: Seed of the checker's random actions and of the games'
            generators. Defaults to 0.

    Raises:
        TypeError: If `game` is neither a `Game` nor a `VectorGame`.
        ValueError: Listing every problem found, one per line.

    Example:

    ```python
    from qlearning4k.testing import check_game

    check_game(MyGame())  # raises ValueError naming each problem
    ```
    """
    if not isinstance(game, (Game, VectorGame)):
        raise TypeError(
            f"check_game() expects a qlearning4k Game or VectorGame. Received: {game!r} "
            f"(of type {type(game).__name__})"
        )
    name = type(game).__name__
    problems: list[str] = []
    nb_actions = game.nb_actions
    counts = nb_actions if isinstance(nb_actions, tuple) else (nb_actions,)
    if not counts or any(
        isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in counts
    ):
        raise ValueError(
            f"{name}.nb_actions must be a positive int, or a tuple of them (one per action "
            f"part). Received: {nb_actions!r}"
        )
    if isinstance(game, VectorGame):
        _check_vector_game(game, nb_games, max_steps, seed, problems)
        _raise(problems, name)
        return

    def fresh(game_seed):
        clone = copy.deepcopy(game)
        clone.rng = np.random.default_rng(game_seed)
        clone.reset()
        return clone

    reference = _parts(fresh(seed).get_frame())
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
        if not _equal(_parts(clone.get_frame()), trace[0][0]):
            problems.append(
                f"{name}.reset() does not restore a fresh game: after game {index}, the first "
                "frame differs from a new game's with the same seed."
            )
    # Same seed, same actions: same frames and scores.
    for index, (frames, scores, actions) in enumerate(traces):
        replay = fresh(seed + index)
        for step, action in enumerate(actions):
            replay.play(action)
            if not _equal(_parts(replay.get_frame()), frames[step + 1]) or (
                replay.get_score() != scores[step]
            ):
                problems.append(
                    f"{name} is not deterministic under a seed: the same actions from the same "
                    f"seed gave a different frame or score at step {step + 1}. Draw randomness "
                    "from self.rng only."
                )
                break
    _raise(problems, name)


def _raise(problems: list[str], name: str) -> None:
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ValueError(
            f"check_game found {len(unique)} problem(s) in {name}:\n- " + "\n- ".join(unique)
        )


def _play(game, rng, nb_actions, reference, max_steps, problems, name):
    """Plays one random game; returns its frames, scores and actions."""
    first = _parts(game.get_frame())
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
        action = _random_action(game, rng, nb_actions, problems, name, step)
        if action is None:
            return frames, scores, actions
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
        frame = _parts(game.get_frame())
        _check_frame(frame, reference, problems, name, f"at step {step}")
        frames.append(frame)
        scores.append(score)
        actions.append(action)
    problems.append(f"{name} did not end within max_steps={max_steps} random steps.")
    return frames, scores, actions


def _random_action(game, rng, nb_actions, problems, name, step):
    """A random action among `get_possible_actions()` (an int array of one per part
    for a game of several action parts), or None after a problem."""
    several = isinstance(nb_actions, tuple)
    possible = [list(part) for part in game.get_possible_actions()] if several else None
    if several and len(possible) != len(nb_actions):
        problems.append(
            f"{name}.get_possible_actions() must return one list per action part "
            f"({len(nb_actions)}). Received: {len(possible)} lists at step {step}"
        )
        return None
    action = []
    for part, count in zip(
        possible or [list(game.get_possible_actions())],
        nb_actions if several else (nb_actions,),
        strict=True,
    ):
        of = f" (part {len(action)})" if several else ""
        if not part:
            problems.append(f"{name}.get_possible_actions(){of} is empty at step {step}.")
            return None
        outside = [a for a in part if not (0 <= int(a) < count)]
        if outside:
            bound = f"nb_actions[{len(action)}]" if several else "nb_actions"
            problems.append(
                f"{name}.get_possible_actions(){of} returned actions outside "
                f"range({bound}={count}): {outside}"
            )
            return None
        action.append(int(part[rng.integers(len(part))]))
    return np.array(action) if several else action[0]


def _parts(frame) -> dict:
    """A frame as `{key: array}`: its parts where it is a dict (or a tuple holding
    an array), else `{None: the array}`."""
    if isinstance(frame, dict):
        return {key: np.asarray(part) for key, part in frame.items()}
    if isinstance(frame, tuple) and any(np.ndim(part) for part in frame):
        return {index: np.asarray(part) for index, part in enumerate(frame)}
    return {None: np.asarray(frame)}


def _equal(frame: dict, other: dict) -> bool:
    return frame.keys() == other.keys() and all(np.array_equal(frame[k], other[k]) for k in frame)


def _check_frame(frame: dict, reference: dict, problems, name, when) -> None:
    if frame.keys() != reference.keys():
        problems.append(
            f"{name}.get_frame() changed its parts {when}: expected {list(reference)}. "
            f"Received: {list(frame)}"
        )
        return
    for key, part in frame.items():
        of = "" if key is None else f" (part {key!r})"
        expected = reference[key]
        if part.shape != expected.shape or part.dtype != expected.dtype:
            problems.append(
                f"{name}.get_frame(){of} changed shape or dtype {when}: expected "
                f"{expected.shape} {expected.dtype}. Received: {part.shape} {part.dtype}"
            )
        elif part.dtype.kind == "f" and not np.isfinite(part).all():
            problems.append(f"{name}.get_frame(){of} holds NaN or infinity {when}.")


def _check_vector_game(game, nb_games, max_steps, seed, problems) -> None:
    """`check_game` for a `VectorGame`: plays it until `nb_games` games end, twice."""
    name, n = type(game).__name__, game.nb_copies
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        problems.append(f"{name}.nb_copies must be a positive int. Received: {n!r}")
        return
    tracer = _VectorTrace(game, nb_games, max_steps, seed, problems)
    rng = np.random.default_rng(seed)

    counts = game.nb_actions if isinstance(game.nb_actions, tuple) else (game.nb_actions,)
    starts = np.cumsum((0,) + counts[:-1])

    def random_moves(step, allowed):
        draws = np.where(allowed, rng.random(allowed.shape), -1.0)
        moves = [d.argmax(axis=1) for d in np.split(draws, starts[1:], axis=1)]
        return np.stack(moves, axis=1) if isinstance(game.nb_actions, tuple) else moves[0]

    played = tracer.trace(random_moves)
    if played is None:
        return
    frames, scores, actions = played
    replay = tracer.trace(lambda step, allowed: actions[step - 1])
    if replay is None:
        return
    same = len(replay[0]) == len(frames) and all(
        np.array_equal(x, y) for x, y in zip(replay[0], frames, strict=True)
    )
    if not same or not all(np.array_equal(x, y) for x, y in zip(replay[1], scores, strict=True)):
        problems.append(
            f"{name} is not deterministic under a seed: reset(seed=...) and the same actions "
            "gave different frames or scores. Draw randomness from self.rng only."
        )


class _VectorTrace:
    """Plays a vector game from `reset(seed=seed)`, checking each step; records
    its frames, scores and actions. Each problem found goes into `problems`."""

    def __init__(self, game, nb_games, max_steps, seed, problems):
        self.game, self.nb_games, self.max_steps, self.seed = game, nb_games, max_steps, seed
        self.problems, self.name, self.n = problems, type(game).__name__, game.nb_copies
        counts = game.nb_actions
        self.parts = counts if isinstance(counts, tuple) else (counts,)
        self.nb_actions = int(sum(self.parts))  # the mask's width

    def array(self, method, shape, kinds, when):
        """`game.<method>()` as an array of `shape` and one of the dtype `kinds`, or None."""
        value = np.array(getattr(self.game, method)())
        if value.shape != shape or value.dtype.kind not in kinds:
            self.problems.append(
                f"{self.name}.{method}() must return an array of shape {shape} "
                f"({'bool' if kinds == 'b' else 'numbers'}) {when}. "
                f"Received: shape {value.shape} and dtype {value.dtype}"
            )
            return None
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            self.problems.append(f"{self.name}.{method}() holds NaN or infinity {when}.")
            return None
        return value

    def frames(self):
        """`get_frames()` as `(rows, kind, finite)`: an array with the copies first (a
        frame in parts: each copy's parts' bytes end to end), the parts' shapes and
        dtypes, and whether every float is finite; `(None, kind, True)` where a part
        lacks the copies' axis."""
        parts = _parts(self.game.get_frames())
        kind = tuple((key, part.shape, part.dtype) for key, part in parts.items())
        finite = all(p.dtype.kind != "f" or np.isfinite(p).all() for p in parts.values())
        if any(part.ndim < 1 or len(part) != self.n for part in parts.values()):
            return None, kind, finite
        if list(parts) == [None]:
            return parts[None], kind, finite
        rows = [np.ascontiguousarray(p).reshape(self.n, -1).view(np.uint8) for p in parts.values()]
        return np.concatenate(rows, axis=1), kind, finite

    def trace(self, actions_of):
        """`(frames, scores, actions)` of a play with `actions_of(step, allowed)`, or None."""
        game, name, n, problems = self.game, self.name, self.n, self.problems
        game.reset(seed=self.seed)
        reference, self.kind, _ = self.frames()
        if reference is None:
            shapes = ", ".join(str(shape) for _, shape, _ in self.kind)
            problems.append(
                f"{name}.get_frames() must return shape ({n},) + frame_shape (each part, for "
                f"frames in parts). Received: shape {shapes}"
            )
            return None
        frames, scores, actions = [reference], [], []
        over = self.array("is_over", (n,), "b", "after reset()")
        if over is None:
            return None
        if over.any():
            problems.append(f"{name}.reset() leaves copies whose game is already over.")
        ended, steps = 0, np.zeros(n, dtype=np.int64)
        for step in range(1, self.max_steps * max(1, -(-self.nb_games // n)) + 1):
            when = f"at step {step}"
            allowed = self.array("get_possible_actions", (n, self.nb_actions), "b", when)
            if allowed is None:
                return None
            if (~allows_each_part(allowed, self.parts) & ~over).any():
                problems.append(f"{name}.get_possible_actions() allows no action {when}.")
                return None
            action = actions_of(step, allowed)
            played = self._play(action, reference, over, when)
            if played is None:
                return None
            frame, score, now = played
            frames.append(frame)
            scores.append(score)
            actions.append(action)
            steps += ~now
            if ((steps >= self.max_steps) & ~now).any():
                problems.append(
                    f"{name} did not end within max_steps={self.max_steps} random steps."
                )
                return None
            ended += int((now & ~over).sum())
            if ended >= self.nb_games:
                return frames, scores, actions
            over = self._restart(step, now, frames, steps)
            if over is None:
                return None
        return frames, scores, actions

    def _play(self, action, reference, over, when):
        """Plays `action` and checks what follows: `(frame, score, now over)`, or None."""
        game, name, n, problems = self.game, self.name, self.n, self.problems
        before = self.frames()[0]
        game.play(action)
        frame, kind, finite = self.frames()
        if kind != self.kind:
            expected = ", ".join(f"{shape} {dtype}" for _, shape, dtype in self.kind)
            received = ", ".join(f"{shape} {dtype}" for _, shape, dtype in kind)
            problems.append(
                f"{name}.get_frames() changed shape or dtype {when}: expected "
                f"{expected}. Received: {received}"
            )
            return None
        if not finite:
            problems.append(f"{name}.get_frames() holds NaN or infinity {when}.")
        score = self.array("get_scores", (n,), "biuf", when)
        now = self.array("is_over", (n,), "b", when)
        won = self.array("is_won", (n,), "b", when)
        cut = self.array("is_truncated", (n,), "b", when)
        if score is None or now is None or won is None or cut is None:
            return None
        if (won & ~now).any():
            problems.append(f"{name}.is_won() is true for a copy whose game is not over.")
        if (cut & ~now).any():
            problems.append(f"{name}.is_truncated() is true for a copy whose game is not over.")
        if (over & ~now).any():
            problems.append(
                f"{name} restarted a copy on its own {when}: a copy that is over must stay "
                "over until reset(mask) restarts it."
            )
        if over.any() and not np.array_equal(frame[over], before[over]):
            problems.append(f"{name}.play() changed the frame of a copy that was over.")
        if over.any() and (score[over] != 0).any():
            problems.append(f"{name}.get_scores() is not 0 for a copy that was already over.")
        return frame, score, now

    def _restart(self, step, now, frames, steps):
        """Restarts half the copies that are over (the others a step later);
        returns which copies are over then, or None."""
        game, name, n = self.game, self.name, self.n
        restart = now & ((np.arange(n) + step) % 2 == 0)
        if not restart.any():
            return now
        others = self.frames()[0][~restart]
        game.reset(restart)
        after = self.frames()[0]
        if not np.array_equal(after[~restart], others):
            self.problems.append(f"{name}.reset(mask) changed copies outside the mask.")
        again = self.array("is_over", (n,), "b", "after reset(mask)")
        if again is None:
            return None
        if again[restart].any():
            self.problems.append(f"{name}.reset(mask) left a copy over.")
        frames[-1] = after
        steps[restart] = 0
        return again
