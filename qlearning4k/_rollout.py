"""Copies of a game stepped together: the one way training, evaluation and the actors play.

`copies_of()` turns a list of plain games, or one vector game (a Gymnasium
vector env arrives as a `GymVectorGame`), into `Copies`: the moves of every
copy from the Q-values of all of them (greedy among the possible actions,
or random), one move of each copy that plays, the checked results as
arrays, the masks of the next states' possible actions, and restarts.
Callers hold the state stacks, the budgets and the logs; they no longer
branch on the kind of game.

The two kinds step as they always did, so seeded runs are unchanged: plain
games play one by one, and a random move of a plain game draws one integer
from the generator among its possible actions, copy after copy; a vector
game plays all its copies in one call (copies that no longer play move too,
and are ignored), and its random moves are drawn for all of them at once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qlearning4k._checks import _check_score
from qlearning4k._player import (
    Player,
    allowed_actions,
    branch_actions,
    check_scores,
    flags,
    restricts_actions,
    vector_actions,
)
from qlearning4k.games.vector_game import VectorGame


class Moved(NamedTuple):
    """What one move of the copies gave, one row a copy.

    Rows of copies that did not play are meaningless, but for a vector game,
    whose copies all move.
    """

    frames: np.ndarray  # (n,) + frame_shape: the frames after the move
    rewards: np.ndarray  # (n,): float64 for plain games (their exact scores), float32 for vector
    over: np.ndarray  # (n,) bool: the game is over now
    truncated: np.ndarray  # (n,) bool: over by a limit of the game's own (not a real end)
    won: np.ndarray  # (n,) bool: over and won


class Copies:
    """Copies of a game stepped together (see the module's docs). Made by `copies_of()`.

    Attributes:
        nb_copies: How many copies.
        masked: Whether the game may forbid actions (its masks are kept).
        games: The plain games, or a list of the one vector game.
    """

    nb_copies: int
    masked: bool
    games: list

    def frames(self) -> np.ndarray:
        """Every copy's frame now, checked: `(n,) + frame_shape`."""
        raise NotImplementedError

    def moves(self, q, explore, rng: np.random.Generator, playing) -> np.ndarray:
        """The moves `(n,)` int32 of the copies in `playing` (indices): greedy on
        `q` `(n, nb_actions)` among the possible actions, or random from `rng`
        where `explore` `(n,)` bool is true (all random when `q` is None).
        For several action parts, `(n, nb_parts)`: each part's move."""
        raise NotImplementedError

    def play(self, actions: np.ndarray, playing) -> Moved:
        """Plays `actions` in the copies in `playing` (a vector game: in all)."""
        raise NotImplementedError

    def masks(self, over: np.ndarray) -> np.ndarray:
        """After `play()`: the possible actions of each copy now, `(n, nb_actions)`
        bool (none for a copy that is over), for games that forbid actions."""
        raise NotImplementedError

    def restart(self, which: np.ndarray) -> np.ndarray:
        """Restarts the copies where `which` `(n,)` bool is true, in order; returns
        the frames `(n,) + frame_shape` (meaningful for the restarted ones)."""
        raise NotImplementedError


class _GameCopies(Copies):
    """Plain games, played one by one."""

    def __init__(self, games: list, player: Player):
        self.games, self.player = games, player
        self.nb_copies = len(games)
        self.masked = restricts_actions(games[0])
        self._frames = None  # (n,) + frame_shape: the frames of play() and restart()
        self._played = ()  # the copies the last play() moved

    def frames(self):
        frames = np.stack([self.player.check_frame(g, g.get_frame()) for g in self.games])
        self._frames = np.empty_like(frames)
        return frames

    def moves(self, q, explore, rng, playing):
        parts = self.player.action_parts
        if parts is not None:  # the copies' masks, then all moves at once
            if explore is None:
                explore = np.zeros(self.nb_copies, dtype=bool)
            allowed = None
            if self.masked:
                allowed = np.ones((self.nb_copies, self.player.nb_actions), dtype=bool)
                for k in playing:
                    allowed[k] = self.player.possible_mask(self.games[k])
            moves = branch_actions(q, explore, allowed, rng, parts)
            return moves.astype(np.int32)
        actions = np.zeros(self.nb_copies, dtype=np.int32)
        # Every action is possible unless the game restricts them: the greedy
        # ones of all copies then come from one argmax.
        greedy = None if q is None or self.masked else q.argmax(axis=1).tolist()
        explore = [False] * self.nb_copies if explore is None else explore.tolist()
        choose, games = self.player.choose, self.games
        for k in playing:
            if greedy is not None and not explore[k]:
                actions[k] = greedy[k]
            else:
                actions[k] = choose(games[k], None if q is None else q[k], explore[k], rng)
        return actions

    def play(self, actions, playing):
        n = self.nb_copies
        rewards = np.zeros(n)
        over, truncated, won = (np.zeros(n, dtype=bool) for _ in range(3))
        # Ints for one action part, an int array a copy for several.
        moves = actions.tolist() if actions.ndim == 1 else list(actions)
        check_frame, frames = self.player.check_frame, self._frames
        for k in playing:
            game = self.games[k]
            game.play(moves[k])
            rewards[k] = _check_score(game, game.get_score())
            frames[k] = check_frame(game, game.get_frame())
            if game.is_over():
                over[k] = True
                truncated[k] = game.is_truncated()  # a time limit: the future still counts
                won[k] = game.is_won()
        self._played = playing
        return Moved(frames, rewards, over, truncated, won)

    def masks(self, over):
        masks = np.zeros((self.nb_copies, self.player.nb_actions), dtype=bool)
        for k in self._played:
            if not over[k]:  # a finished game has no next move to mask
                masks[k] = self.player.possible_mask(self.games[k])
        return masks

    def restart(self, which):
        for k in np.flatnonzero(which).tolist():
            game = self.games[k]
            game.reset()
            self._frames[k] = self.player.check_frame(game, game.get_frame())
        return self._frames


class _VectorCopies(Copies):
    """The copies of one vector game, played in one call."""

    def __init__(self, game: VectorGame, player: Player):
        self.game, self.games, self.player = game, [game], player
        self.nb_copies = game.nb_copies
        self.masked = restricts_actions(game)
        # (nb_copies, nb_actions) bool: the actions possible now, for masked games
        self.allowed = allowed_actions(game) if self.masked else None

    def frames(self):
        return self.player.check_frames(self.game, self.game.get_frames())

    def moves(self, q, explore, rng, playing):
        if explore is None:
            explore = np.zeros(self.nb_copies, dtype=bool)
        player = self.player
        return vector_actions(q, explore, self.allowed, rng, player.nb_actions, player.action_parts)

    def play(self, actions, playing):
        game = self.game
        game.play(actions)
        frames = self.frames()
        rewards = check_scores(game, game.get_scores())  # (nb_copies,) float32
        over = flags(game, "is_over")
        if over.any():
            truncated, won = flags(game, "is_truncated"), flags(game, "is_won") & over
        else:
            truncated = won = np.zeros(self.nb_copies, dtype=bool)
        return Moved(frames, rewards, over, truncated, won)

    def masks(self, over):
        masks = allowed_actions(self.game)
        masks[over] = False
        self.allowed = masks
        return masks

    def restart(self, which):
        self.game.reset(which)
        frames = self.frames()
        if self.masked:
            self.allowed = allowed_actions(self.game)
        return frames


def copies_of(game, player: Player, games: list | None = None) -> Copies:
    """`Copies` of a vector `game`, or of the plain `games` (copies of `game`)."""
    if isinstance(game, VectorGame):
        return _VectorCopies(game, player)
    return _GameCopies(games if games is not None else [game], player)
