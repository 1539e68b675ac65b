"""Greedy play of many copies of a game side by side: `Agent.evaluate()` and `Agent.play()`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from qlearning4k._checks import _check_epsilon, _check_positive_int, _is_int
from qlearning4k._learner import StepConfig
from qlearning4k._rollout import copies_of
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.render import _check_video


def checked_evaluation(
    nb_games, epsilon, max_steps, nb_parallel, seed, on_game_end, noisy, video, fps
):
    """`evaluate()`'s arguments checked (before any game is played): `(nb_games,
    epsilon, max_steps, nb_parallel)`."""
    if video is not None:
        _check_video(video, fps, "evaluate()")
    nb_games = _check_positive_int("nb_games", nb_games)
    eps, _ = _check_epsilon(epsilon)
    if max_steps is not None:
        max_steps = _check_positive_int("max_steps", max_steps)
    nb_parallel = nb_games if nb_parallel is None else nb_parallel
    nb_parallel = _check_positive_int("nb_parallel", nb_parallel)
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0. Received: seed={seed!r}")
    if on_game_end is not None and not callable(on_game_end):
        raise TypeError(f"on_game_end must be callable. Received: {on_game_end!r}")
    if not isinstance(noisy, (bool, np.bool_)):
        raise TypeError(f"noisy must be a bool. Received: noisy={noisy!r}")
    return nb_games, eps, max_steps, nb_parallel


class _Played(NamedTuple):
    """What `_play_games` returns: one entry per game, in the order they were played."""

    scores: np.ndarray  # (nb_games,) float64: each game's summed rewards
    lengths: np.ndarray  # (nb_games,) int64: steps played
    won: np.ndarray  # (nb_games,) bool: over and won (a stopped game is not won)
    pictures: list[list[np.ndarray]] | None  # each game's draw() pictures, if asked


def _copies(
    game: Game, count: int, seed: int | None
) -> tuple[list[Game], Callable[[int], np.random.Generator]]:
    """`count` copies of `game`, and a function giving the generator of game `i`.

    That generator is `default_rng(seed + i)` with a seed, so that game `i`
    is the game a new `type(game)(seed=seed + i)` would play first; without
    one it is drawn from `game.rng`.
    """
    copies = [copy.deepcopy(game) for _ in range(count)]
    if seed is None:
        return copies, lambda i: np.random.default_rng(game.rng.integers(2**63))
    return copies, lambda i: np.random.default_rng(seed + i)


def _play_games(
    agent,
    game: Game,
    nb_games: int,
    seed: int | None,
    epsilon: float,
    rng: np.random.Generator,
    max_steps: int | None,
    nb_parallel: int,
    draw: bool = False,
    on_game_end: Callable | None = None,
    noisy: bool = False,
) -> _Played:
    """Plays `nb_games` games of copies of `game` side by side, one compiled call a step.

    Each step makes one call for the Q-values of every copy, those not
    playing included, so the call keeps one shape and compiles once; moves
    are greedy (among the possible actions) or, with probability `epsilon`,
    random from `rng`. With `noisy`, the model's noise layers draw new noise
    at each call.

    Plain games are played in rounds of `nb_parallel` copies, game `i` with
    the generator `_copies` gives it; `draw` keeps their pictures and
    `on_game_end(copy)` sees each copy whose game ended. A vector game is
    reset with `seed`, a copy whose game ends starts the next game while
    games are left (the others keep moving, as a vector game steps all its
    copies, and are not counted), and `on_game_end(game, copy)` sees each end.
    Games are numbered in the order they start.
    """
    vector = isinstance(game, VectorGame)
    learner = agent._learner(StepConfig(noisy=noisy))
    if vector:
        game.reset(seed=seed)
        copies = copies_of(game, agent._player)
    else:
        clones, generator = _copies(game, min(nb_parallel, nb_games), seed)
        copies = copies_of(game, agent._player, clones)
    n = copies.nb_copies
    scores = np.zeros(nb_games)
    lengths = np.zeros(nb_games, dtype=np.int64)
    won = np.zeros(nb_games, dtype=bool)
    pictures = [[] for _ in range(nb_games)] if draw else None
    game_of = np.full(n, -1)  # the game each copy plays, -1 for none
    score, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    states = np.repeat(copies.frames()[:, None], agent.nb_frames, axis=1)  # (n, nb_frames) + frame
    recurrent = agent._player.recurrent
    # A recurrent model's state, each copy's: it moves on at every move, random ones too.
    carried = None if recurrent is None else np.zeros((n, recurrent.state_size), np.float32)
    started, drawn = 0, n  # games started; copies that draw exploration (a round's)
    if vector:
        started = min(n, nb_games)
        game_of[:started] = np.arange(started)
    while True:
        if not vector and not (game_of >= 0).any():  # the next round of plain games
            if started == nb_games:
                break
            drawn = min(n, nb_games - started)  # the round's copies; the call keeps n states
            for i in range(drawn):
                clones[i].rng = generator(started + i)
            restart = np.arange(n) < drawn
            states[restart] = copies.restart(restart)[restart][:, None]
            if carried is not None:
                carried[restart] = 0.0
            game_of[restart] = started + np.arange(drawn)
            started += drawn
            if draw:
                for k in range(drawn):
                    pictures[game_of[k]].append(clones[k].draw())
        playing = game_of >= 0
        if not playing.any():
            break
        explore = None
        if epsilon > 0:
            explore = np.zeros(n, dtype=bool)
            explore[:drawn] = rng.random(drawn) < epsilon
        q = None
        if carried is not None:
            q, carried = learner.act(states[:, 0], carried)
        elif explore is None or not explore[playing].all():
            q = learner.q_values(states)  # (n, nb_actions)
        alive = np.flatnonzero(playing)
        moved = copies.play(copies.moves(q, explore, rng, alive), alive)
        score += np.where(playing, moved.rewards, 0.0)
        length += playing
        moving = slice(None) if vector else alive  # a vector game moves all its copies
        states[moving, :-1] = states[moving, 1:]
        states[moving, -1] = moved.frames[moving]
        if copies.masked:
            copies.masks(moved.over)
        if draw:
            for k in alive.tolist():
                pictures[game_of[k]].append(clones[k].draw())
        ending = (
            playing & (moved.over | (length == max_steps)) if max_steps else playing & moved.over
        )
        if ending.any():
            started = _end(copies, ending, game_of, started, nb_games, states, moved.won,
                           (score, length), (scores, lengths, won), on_game_end)  # fmt: skip
            if carried is not None:  # the next game (or none) starts from the first state
                carried[ending] = 0.0
    return _Played(scores, lengths, won, pictures)


def _end(copies, ending, game_of, started, nb_games, states, wins, running, results, on_game_end):
    """Records the games that end (`ending`); a vector game's copies start the
    next games while games are left. Returns the number of games started."""
    (score, length), (scores, lengths, won) = running, results
    vector = isinstance(copies.games[0], VectorGame)
    restart = np.zeros(copies.nb_copies, dtype=bool)
    for k in np.flatnonzero(ending).tolist():  # once per game
        index = game_of[k]
        scores[index], lengths[index], won[index] = score[k], length[k], wins[k]
        if on_game_end is not None:
            on_game_end(*((copies.games[0], k) if vector else (copies.games[k],)))
        score[k], length[k] = 0.0, 0
        game_of[k] = -1
        if vector and started < nb_games:
            game_of[k], restart[k] = started, True
            started += 1
    if restart.any():
        states[restart] = copies.restart(restart)[restart][:, None]
    return started


def _summary(played: _Played) -> dict:
    """The dict `Agent.evaluate()` returns."""
    scores = played.scores
    return {
        "mean_score": float(scores.mean()),
        "std_score": float(scores.std()),
        "min_score": float(scores.min()),
        "max_score": float(scores.max()),
        "win_rate": float(played.won.mean()),
        "mean_steps": float(played.lengths.mean()),
        "nb_games": len(scores),
        "scores": scores,
    }
