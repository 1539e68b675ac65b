"""Greedy play of many copies of a game side by side: `Agent.evaluate()` and `Agent.play()`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from qlearning4k._checks import _check_score
from qlearning4k._learner import StepConfig
from qlearning4k._player import (
    allowed_actions,
    check_scores,
    flags,
    restricts_actions,
    vector_actions,
)
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame


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
    on_game_end: Callable[[Game], None] | None = None,
    noisy: bool = False,
) -> _Played:
    """Plays `nb_games` games of copies of `game`, `nb_parallel` at a time.

    Each step makes one compiled call for the Q-values of every copy of the
    round, finished ones included, so the call keeps one shape and compiles
    once; moves are greedy (among the possible actions) or, with probability
    `epsilon`, random from `rng`. With `noisy`, the model's noise layers
    draw new noise at each call.
    """
    if isinstance(game, VectorGame):
        return _play_vector_games(
            agent, game, nb_games, seed, epsilon, rng, max_steps, on_game_end, noisy
        )
    masked = restricts_actions(game)
    learner = agent._learner(StepConfig(noisy=noisy))
    width = min(nb_parallel, nb_games)
    copies, generator = _copies(game, width, seed)
    scores = np.zeros(nb_games)
    lengths = np.zeros(nb_games, dtype=np.int64)
    won = np.zeros(nb_games, dtype=bool)
    pictures = [] if draw else None
    for first in range(0, nb_games, width):
        games = copies[: min(width, nb_games - first)]
        for i, g in enumerate(games):
            g.rng = generator(first + i)
            g.reset()
        n = len(games)
        frames = np.stack([agent._player.check_frame(g, g.get_frame()) for g in games])
        states = np.repeat(frames[:, None], agent.nb_frames, axis=1)  # (n, nb_frames) + frame
        if len(games) < width:  # the last round keeps the call's shape
            pad = np.repeat(states[:1], width - n, axis=0)
            states = np.concatenate([states, pad])
        score, length = scores[first : first + n], lengths[first : first + n]
        shots = [[g.draw()] for g in games] if draw else None
        running = np.ones(n, dtype=bool)
        while running.any():
            explore = rng.random(n) < epsilon if epsilon > 0 else None
            alive = np.flatnonzero(running)
            q = None
            if explore is None or not explore[alive].all():
                q = learner.q_values(states)  # (width, nb_actions)
            greedy = None if q is None or masked else q.argmax(axis=1)
            for k in alive:
                g = games[k]
                random_move = explore is not None and explore[k]
                if greedy is not None and not random_move:
                    action = int(greedy[k])
                else:
                    action = agent._player.choose(g, None if q is None else q[k], random_move, rng)
                g.play(action)
                score[k] += _check_score(g, g.get_score())
                length[k] += 1
                if agent.nb_frames > 1:
                    states[k, :-1] = states[k, 1:]
                states[k, -1] = agent._player.check_frame(g, g.get_frame())
                if draw:
                    shots[k].append(g.draw())
                over = g.is_over()
                if over or length[k] == max_steps:
                    running[k] = False
                    won[first + k] = over and g.is_won()
                    if on_game_end is not None:
                        on_game_end(g)
        if draw:
            pictures.extend(shots)
    return _Played(scores, lengths, won, pictures)


def _play_vector_games(
    agent,
    game: VectorGame,
    nb_games: int,
    seed: int | None,
    epsilon: float,
    rng: np.random.Generator,
    max_steps: int | None,
    on_game_end: Callable[[VectorGame, int], None] | None,
    noisy: bool = False,
) -> _Played:
    """`_play_games` for a vector game: its copies play the games, one call a step.

    The game is reset with `seed` first. A copy whose game ends starts the
    next game while games are left; the others keep moving (a vector game
    steps all its copies) and are not counted. Games are numbered in the
    order they start.
    """
    masked = restricts_actions(game)
    learner = agent._learner(StepConfig(noisy=noisy))
    n = game.nb_copies
    game.reset(seed=seed)
    states = agent._player.first_states(game, game.get_frames())  # (n, nb_frames) + frame
    game_of = np.where(np.arange(n) < nb_games, np.arange(n), -1)  # the game each copy plays
    started = min(n, nb_games)
    scores = np.zeros(nb_games)
    lengths = np.zeros(nb_games, dtype=np.int64)
    won = np.zeros(nb_games, dtype=bool)
    score, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    allowed = allowed_actions(game) if masked else None
    while (game_of >= 0).any():
        playing = game_of >= 0
        explore = rng.random(n) < epsilon if epsilon > 0 else np.zeros(n, dtype=bool)
        q = None if explore[playing].all() else learner.q_values(states)  # (n, nb_actions)
        game.play(vector_actions(q, explore, allowed, rng, agent.nb_actions))
        frames = agent._player.check_frames(game, game.get_frames())
        rewards = check_scores(game, game.get_scores())
        over = flags(game, "is_over")
        score += np.where(playing, rewards, 0.0)
        length += playing
        if agent.nb_frames > 1:
            states[:, :-1] = states[:, 1:]
        states[:, -1] = frames
        if masked:
            allowed = allowed_actions(game)
        ending = playing & (over | (length == max_steps)) if max_steps else playing & over
        if not ending.any():
            continue
        wins = flags(game, "is_won") & over
        restart = np.zeros(n, dtype=bool)
        for k in np.flatnonzero(ending):  # once per game
            index = game_of[k]
            scores[index], lengths[index], won[index] = score[k], length[k], wins[k]
            if on_game_end is not None:
                on_game_end(game, int(k))
            score[k], length[k] = 0.0, 0
            if started < nb_games:
                game_of[k], restart[k] = started, True
                started += 1
            else:
                game_of[k] = -1
        if restart.any():
            game.reset(restart)
            frames = agent._player.check_frames(game, game.get_frames())
            states[restart] = frames[restart][:, None]
            if masked:
                allowed = allowed_actions(game)
    return _Played(scores, lengths, won, None)


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
