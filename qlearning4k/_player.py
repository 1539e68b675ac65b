"""`Player`: what the model sees of games and how it moves in them, shared by every loop.

The training run, evaluation and the Ray actors all step copies of a game
with the same checks and the same choice of moves: a frame checked against
the model's input, a game's first state (its first frame repeated), a move
greedy among the possible actions or random, and for vector games the
checked arrays of all copies at once. They are written here once.
"""

from __future__ import annotations

import dataclasses
import sys

import keras
import numpy as np

from qlearning4k._checks import _check_positive_int
from qlearning4k._frame_parts import FrameParts, frame_parts
from qlearning4k.branching import _action_parts
from qlearning4k.distributional import C51, QuantileRegression
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.recurrent import _recurrent_signature, _RecurrentSignature
from qlearning4k.sequence_replay import SequenceReplay


@dataclasses.dataclass(frozen=True)
class Player:
    """The shapes a model plays with: `nb_frames` frames of `frame_shape`, `nb_actions` moves.

    With `parts` (a model of several inputs), games show frames as dicts or
    tuples of arrays, which `check_frame` packs into flat frames of bytes
    (what the memory stores and the learner takes), and `frame_shape` is `()`.
    With `action_parts` (a branching model), games take an action of one
    index per part, `nb_actions` is the model's outputs (the parts' counts
    added up) and masks are the parts' masks one after another.
    """

    nb_frames: int
    frame_shape: tuple
    nb_actions: int
    parts: FrameParts | None = None
    action_parts: tuple[int, ...] | None = None
    # A recurrent model (`qlearning4k.recurrent`): one frame a move, a state a copy.
    recurrent: _RecurrentSignature | None = None

    def step_model(self, model: keras.Model) -> keras.Model:
        """What the compiled steps call: `model`, or for frames in parts the same
        layers behind one input of flat frames (`FrameParts.step_model`)."""
        return model if self.parts is None else self.parts.step_model(model, self.nb_frames)

    def states(self, observation, where: str) -> tuple[np.ndarray, bool]:
        """`(n, nb_frames) + frame_shape` from a frame, a state or a batch of them
        (frames in parts packed), and whether it was one."""
        if self.parts is not None:
            return self.parts.states(observation, self.nb_frames, where)
        x = np.asarray(observation)
        rank = len(self.frame_shape)
        state_shape = (self.nb_frames, *self.frame_shape)
        if x.ndim == rank and x.shape == self.frame_shape and self.nb_frames == 1:
            return x[None, None], True
        if x.ndim == rank + 1 and x.shape == state_shape:
            return x[None], True
        if x.ndim == rank + 2 and x.shape[1:] == state_shape:
            return x, False
        one = " or a frame " + str(self.frame_shape) if self.nb_frames == 1 else ""
        raise ValueError(
            f"{where} expects a state {state_shape}{one}, or a batch (n,) + {state_shape}. "
            f"Received: shape {x.shape}"
        )

    def act_recurrent(self, learner, observation, state, mask):
        """`Agent.act()` of a recurrent model: `(action, next_state)`, or their batches."""
        if self.recurrent is None:
            raise ValueError(
                "act() takes a state for recurrent agents only; this model is feedforward. "
                "Received: a state"
            )
        size = self.recurrent.state_size
        if state is None:
            raise ValueError(
                "A recurrent agent's act() needs its state: agent.initial_state() at a game's "
                "start, then the state the last act() returned. Received: state=None"
            )
        frames = np.asarray(observation)
        one = frames.shape == self.frame_shape
        if frames.shape[int(not one) :] != self.frame_shape:
            raise ValueError(
                f"A recurrent agent's act() expects a frame {self.frame_shape} or a batch "
                f"(n,) + {self.frame_shape}. Received: shape {frames.shape}"
            )
        frames = frames[None] if one else frames
        state = np.asarray(state, np.float32)
        state = state[None] if state.ndim == 1 else state
        if state.shape != (len(frames), size):
            raise ValueError(
                f"act() expects a state ({size},) for a frame, (n, {size}) for n frames. "
                f"Received: state of shape {state.shape} for {len(frames)} frame(s)"
            )
        q, after = learner.act(frames, state)
        actions = self.greedy(q, mask, "act()")
        return (int(actions[0]), after[0]) if one else (actions, after)

    def check_game(self, game) -> None:
        """Checks that `game` fits the model (resetting it to read a frame)."""
        if not isinstance(game, (Game, VectorGame)):
            raise TypeError(
                "Expected a qlearning4k Game, a VectorGame or a gymnasium.vector.VectorEnv. "
                f"Received: {game!r} (of type {type(game).__name__})"
            )
        self.check_actions(game)
        game.reset()
        if isinstance(game, VectorGame):
            self.check_frames(game, game.get_frames())
        else:
            self.check_frame(game, game.get_frame())

    def check_frame(self, game, frame) -> np.ndarray:
        """`game.get_frame()` as an array of `frame_shape`, checked."""
        if self.parts is not None:
            return self.parts.pack(frame, f"{type(game).__name__}.get_frame()")
        _check_not_parts(frame, f"{type(game).__name__}.get_frame()")
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape:
            raise ValueError(
                f"The model takes frames of shape {self.frame_shape} (its input is "
                f"(batch, {self.nb_frames}) + {self.frame_shape}), but "
                f"{type(game).__name__}.get_frame() returned shape {frame.shape}."
            )
        return frame

    def first_state(self, game) -> np.ndarray:
        """`(1, nb_frames) + frame_shape`: the first frame, repeated."""
        frame = self.check_frame(game, game.get_frame())
        return np.repeat(frame[None, None], self.nb_frames, axis=1)

    def check_frames(self, game: VectorGame, frames) -> np.ndarray:
        """A vector game's `get_frames()`: `(nb_copies,) + frame_shape`."""
        if self.parts is not None:
            return self.parts.pack(frames, f"{type(game).__name__}.get_frames()", (game.nb_copies,))
        _check_not_parts(frames, f"{type(game).__name__}.get_frames()")
        try:
            frames = np.asarray(frames)
        except ValueError:  # frames of different shapes
            frames = np.empty(0)
        if frames.shape[1:] != self.frame_shape or len(frames) != game.nb_copies:
            raise ValueError(
                f"The model takes frames of shape {self.frame_shape} (its input is "
                f"(batch, {self.nb_frames}) + {self.frame_shape}), so "
                f"{type(game).__name__}.get_frames() must return shape "
                f"({game.nb_copies},) + {self.frame_shape}. Received: shape {frames.shape}"
            )
        return frames

    def first_states(self, game: VectorGame, frames) -> np.ndarray:
        """`(nb_copies, nb_frames) + frame_shape`: each copy's first frame, repeated."""
        frames = self.check_frames(game, frames)
        return np.repeat(frames[:, None], self.nb_frames, axis=1)

    def check_actions(self, game) -> None:
        """Checks that the game's `nb_actions` fits the model's outputs (or branches)."""
        name, counts = type(game).__name__, action_counts(game)
        if self.action_parts is None and isinstance(counts, tuple):
            raise ValueError(
                f"{name} has several action parts, nb_actions={counts}, which needs a "
                "branching model with one branch per part: "
                f"qlearning4k.branching(body, nb_actions={counts}). Received: a model of "
                f"{self.nb_actions} outputs"
            )
        if self.action_parts is not None and counts != self.action_parts:
            raise ValueError(
                f"The model's branches have nb_actions={self.action_parts} but {name} has "
                f"nb_actions={counts}. Received: game {game.name!r}"
            )
        if self.action_parts is None and counts != self.nb_actions:
            raise ValueError(
                f"The model has {self.nb_actions} outputs but {name} has "
                f"nb_actions={counts}. Received: game {game.name!r}"
            )

    def possible_mask(self, game) -> np.ndarray:
        """A plain game's possible actions as a bool mask `(nb_actions,)`: of
        each part in turn for a game of several action parts."""
        mask = np.zeros(self.nb_actions, dtype=bool)
        possible = game.get_possible_actions()
        if self.action_parts is None:
            mask[possible] = True
            return mask
        if len(possible) != len(self.action_parts):
            raise ValueError(
                f"{type(game).__name__}.get_possible_actions() must return one list of "
                f"actions per action part ({len(self.action_parts)}). Received: {possible!r}"
            )
        for start, part in zip(_starts(self.action_parts), possible, strict=True):
            mask[start + np.asarray(part, dtype=np.int64)] = True
        return mask

    def choose(self, game, q, explore: bool, rng: np.random.Generator) -> int:
        """An action among the game's possible ones: random (from `rng`), or
        greedy on `q` `(nb_actions,)` (games of one action part)."""
        possible = game.get_possible_actions()
        if len(possible) == 0:
            raise ValueError(f"{type(game).__name__}.get_possible_actions() returned no action.")
        if explore:
            return int(possible[rng.integers(len(possible))])
        if len(possible) == self.nb_actions:
            return int(np.argmax(q))
        possible = np.asarray(possible)
        return int(possible[np.argmax(q[possible])])

    def greedy(self, q: np.ndarray, mask, where: str) -> np.ndarray:
        """The greedy actions on `q` `(n, nb_actions)` among those `mask` allows (a
        bool array `(nb_actions,)` or `(n, nb_actions)`, checked; `None` for all):
        `(n,)`, or `(n, nb_parts)` for several action parts."""
        width, parts = self.nb_actions, self.action_parts
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape not in ((width,), (len(q), width)):
                raise ValueError(
                    f"{where} expects a mask of shape ({width},) or ({len(q)}, {width}). "
                    f"Received: shape {mask.shape}"
                )
            mask = np.broadcast_to(mask, q.shape)
            if not allows_each_part(mask, parts).all():
                raise ValueError(
                    f"{where} expects a mask that allows at least one action per state"
                    + ("." if parts is None else " and part.")
                )
        explore = np.zeros(len(q), dtype=bool)
        return vector_actions(q, explore, mask, None, width, parts)


def _check_not_parts(frame, where: str) -> None:
    """Frames in parts need a model of several inputs: says so for a dict or tuple."""
    if isinstance(frame, dict):
        raise ValueError(
            f"{where} returned a dict (keys {sorted(map(str, frame))}), but the model has one "
            "input. "
            "Give the model one keras.Input per part, (batch, nb_frames) + part_shape, "
            "named after the part's key (see the 'Observations and actions in parts' guide)."
        )


def action_counts(game) -> int | tuple[int, ...]:
    """`game.nb_actions`: an int, or a tuple of ints for several action parts."""
    counts = game.nb_actions
    if isinstance(counts, (tuple, list)):
        return tuple(int(n) for n in counts)
    return counts


def allows_each_part(mask: np.ndarray, parts: tuple | None) -> np.ndarray:
    """Whether each row of `mask` `(n, nb_actions)` allows some action (of every
    part, for several action parts): bool `(n,)`."""
    if parts is None:
        return mask.any(axis=1)
    return np.logical_or.reduceat(mask, _starts(parts), axis=1).all(axis=1)


def _starts(parts: tuple) -> list[int]:
    """Where each part's outputs start among a branching model's outputs."""
    return np.cumsum((0,) + tuple(parts[:-1])).tolist()


def branch_actions(q, explore, allowed, rng, parts: tuple) -> np.ndarray:
    """Every copy's move in a game of several action parts, `(nb_copies, nb_parts)`:
    in each part greedy on that part's Q-values of `q` `(nb_copies, nb_actions)`,
    or random (from `rng`) where `explore` `(nb_copies,)` bool is true; all
    random when `q` is `None`. With `allowed` `(nb_copies, nb_actions)` bool,
    each part's action is among the part's possible ones."""
    nb_copies = len(explore)
    actions = np.zeros((nb_copies, len(parts)), dtype=np.int64)
    picks = np.arange(nb_copies) if q is None else np.flatnonzero(explore)
    for d, (start, n) in enumerate(zip(_starts(parts), parts, strict=True)):
        part = slice(start, start + n)
        possible = None if allowed is None else allowed[:, part]
        if q is not None:
            values = q[:, part]
            actions[:, d] = (
                values if possible is None else np.where(possible, values, -np.inf)
            ).argmax(axis=1)
        if len(picks) == 0:
            continue
        if possible is None:
            actions[picks, d] = rng.integers(n, size=len(picks))
        else:  # uniform among the part's possible ones
            draws = rng.random((len(picks), n))
            actions[picks, d] = np.where(possible[picks], draws, -1.0).argmax(axis=1)
    return actions


def player_of(model, distribution, nb_frames: int | None) -> Player:
    """The `Player` of an `Agent`'s model, checked with its `distribution` and `nb_frames`."""
    if distribution is not None and not isinstance(distribution, (C51, QuantileRegression)):
        raise TypeError(
            "distribution must be a qlearning4k C51 or QuantileRegression, "
            f"or None. Received: {distribution!r} (of type {type(distribution).__name__})"
        )
    recurrent = _recurrent_signature(model) if isinstance(model, keras.Model) else None
    if recurrent is not None:
        return _recurrent_player(model, recurrent, distribution, nb_frames)
    input_shape, nb_outputs, parts, action_parts = model_signature(model)
    if action_parts is not None and distribution is not None:
        raise ValueError(
            "A branching model (qlearning4k.branching) learns Q-values, not distributions: "
            f"its branches do not combine with {type(distribution).__name__}. Received: "
            f"distribution={distribution!r} with branches nb_actions={action_parts}"
        )
    atoms = 1 if distribution is None else distribution.nb_atoms
    if nb_outputs % atoms:
        raise ValueError(
            f"With {type(distribution).__name__}, the model outputs nb_actions * nb_atoms "
            f"units ({atoms} per action). Received: {nb_outputs} outputs"
        )
    if nb_frames is not None:
        nb_frames = _check_positive_int("nb_frames", nb_frames)
        if nb_frames != input_shape[0]:
            raise ValueError(
                "nb_frames must match the model's input (batch, nb_frames) + frame_shape. "
                f"Received: nb_frames={nb_frames} (model input has {input_shape[0]})"
            )
    return Player(input_shape[0], input_shape[1:], nb_outputs // atoms, parts, action_parts)


def _recurrent_player(model, recurrent, distribution, nb_frames) -> Player:
    """The `Player` of a recurrent model: one frame a move; the options it lacks refused."""
    _check_compiled(model)
    if nb_frames is not None and _check_positive_int("nb_frames", nb_frames) != 1:
        raise ValueError(
            "A recurrent model sees one frame a move and remembers the rest in its state: "
            "stacking frames as well is ambiguous. Leave nb_frames=None (or 1). Received: "
            f"nb_frames={nb_frames}"
        )
    if distribution is not None:
        raise ValueError(
            "A recurrent model learns Q-values: distributions (C51, QR-DQN) are not supported "
            f"with it yet. Received: distribution={distribution!r}"
        )
    if _action_parts(model) is not None:
        raise ValueError(
            "A recurrent model gives one Q-value an action: branching action parts "
            "(qlearning4k.branching) are not supported with it yet. "
            f"Received: {model.name!r}"
        )
    return Player(1, recurrent.frame_shape, recurrent.nb_outputs, recurrent=recurrent)


def memory_of(player: Player, memory, memory_size: int, seed) -> Memory:
    """An `Agent`'s memory: `memory` checked, or the default one for its model."""
    if memory is None:
        if player.recurrent is not None:
            return SequenceReplay(memory_size, seed=seed)
        return ExperienceReplay(memory_size, seed=seed)
    if not isinstance(memory, Memory):
        raise TypeError(
            "memory must be a qlearning4k Memory or None. "
            f"Received: {memory!r} (of type {type(memory).__name__})"
        )
    if (player.recurrent is not None) != isinstance(memory, SequenceReplay):
        kind = "a recurrent" if player.recurrent is not None else "a feedforward"
        raise ValueError(
            "A recurrent model learns from a SequenceReplay, and a SequenceReplay feeds "
            f"recurrent models only. Received: {kind} model with a {type(memory).__name__}"
        )
    return memory


def _check_compiled(model) -> None:
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "Agent expects a compiled model: call model.compile(optimizer, loss) first. "
            f"Received: an uncompiled model {model.name!r}"
        )


def model_signature(model) -> tuple[tuple, int, FrameParts | None, tuple | None]:
    """Checks `model` and returns `(input_shape, nb_outputs, parts, action_parts)`:
    with several inputs, `parts` describes them and `input_shape` is
    `(nb_frames,)`; `action_parts` are a branching model's counts, else `None`."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Agent expects a keras.Model. Received: {model!r} (of type {type(model).__name__})"
        )
    _check_compiled(model)
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            "Agent expects a model with a known input, built from keras.Input (a Sequential "
            f"starting with keras.Input, or a functional model). Received: {model.name!r}"
        )
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[-1] is None:
        shapes = [tuple(o.shape) for o in outputs]
        raise ValueError(
            "Agent expects a model with one output of shape (batch, nb_actions). "
            f"Received: output shapes {shapes}"
        )
    parts, branches = frame_parts(model), _action_parts(model)
    if parts is not None:
        return (int(inputs[0].shape[1]),), int(outputs[0].shape[-1]), parts, branches
    input_shape = tuple(inputs[0].shape[1:])
    if len(input_shape) < 2 or None in input_shape:
        raise ValueError(
            "Agent expects a model input of shape (batch, nb_frames) + frame_shape, fully "
            f"known. Received: input shape {tuple(inputs[0].shape)}"
        )
    return input_shape, int(outputs[0].shape[-1]), None, branches


def as_game(game, seed):
    """`game`, with a `gymnasium.vector.VectorEnv` wrapped in a `GymVectorGame`
    whose first reset gets the seed `seed()` (called only then)."""
    gymnasium = sys.modules.get("gymnasium")  # a vector env means Gymnasium is imported
    if gymnasium is not None and isinstance(game, gymnasium.vector.VectorEnv):
        from qlearning4k.games.gym_vector_game import GymVectorGame

        return GymVectorGame(game, seed=seed())
    return game


def restricts_actions(game) -> bool:
    """Whether `game` may forbid actions: it overrides `get_possible_actions()`."""
    base = VectorGame if isinstance(game, VectorGame) else Game
    return type(game).get_possible_actions is not base.get_possible_actions


def vector_actions(q, explore, allowed, rng, nb_actions: int, parts=None) -> np.ndarray:
    """Every copy's move, `(nb_copies,)`: random (from `rng`) where `explore`, else
    greedy on `q` `(nb_copies, nb_actions)`; all random when `q` is `None`.

    With `allowed` `(nb_copies, nb_actions)` bool, both are among the possible
    actions of each copy. With `parts` (several action parts), the moves
    are `branch_actions`: `(nb_copies, nb_parts)`.
    """
    if parts is not None:
        return branch_actions(q, explore, allowed, rng, parts)
    nb_copies = len(explore)
    if q is None:
        actions = np.zeros(nb_copies, dtype=np.int64)
        picks = np.arange(nb_copies)
    else:
        actions = (q if allowed is None else np.where(allowed, q, -np.inf)).argmax(axis=1)
        picks = np.flatnonzero(explore)
    if len(picks):
        if allowed is None:
            actions[picks] = rng.integers(nb_actions, size=len(picks))
        else:  # uniform among the possible ones
            draws = rng.random((len(picks), nb_actions))
            actions[picks] = np.where(allowed[picks], draws, -1.0).argmax(axis=1)
    return actions


def flags(game: VectorGame, method: str) -> np.ndarray:
    """`game.<method>()` as a bool array `(nb_copies,)`, checked."""
    values = np.asarray(getattr(game, method)())
    if values.shape != (game.nb_copies,) or values.dtype != bool:
        raise ValueError(
            f"{type(game).__name__}.{method}() must return a bool array of shape "
            f"({game.nb_copies},). Received: shape {values.shape} and dtype {values.dtype}"
        )
    return values


def check_scores(game: VectorGame, scores) -> np.ndarray:
    """`get_scores()` of a vector game as float32 `(nb_copies,)`, each finite."""
    scores = np.asarray(scores)
    if scores.shape != (game.nb_copies,) or scores.dtype.kind not in "biuf":
        raise ValueError(
            f"{type(game).__name__}.get_scores() must return a number per copy, an array of "
            f"shape ({game.nb_copies},). Received: shape {scores.shape} and dtype {scores.dtype}"
        )
    if scores.dtype.kind == "f" and not np.isfinite(scores).all():
        copy_index = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(
            f"{type(game).__name__}.get_scores() must return finite numbers. "
            f"Received: {scores[copy_index]} for copy {copy_index}"
        )
    return scores.astype(np.float32, copy=False)


def allowed_actions(game: VectorGame) -> np.ndarray:
    """A copy of `game.get_possible_actions()`, checked: bool `(nb_copies, nb_actions)`
    (the parts' masks one after another for several action parts)."""
    allowed = np.array(game.get_possible_actions())
    counts = action_counts(game)
    expected = (game.nb_copies, sum(counts) if isinstance(counts, tuple) else counts)
    if allowed.shape != expected or allowed.dtype != bool:
        raise ValueError(
            f"{type(game).__name__}.get_possible_actions() must return a bool array of shape "
            f"{expected}. Received: shape {allowed.shape} and dtype {allowed.dtype}"
        )
    parts = counts if isinstance(counts, tuple) else None  # every part needs an action
    empty = ~allows_each_part(allowed, parts) & ~flags(game, "is_over")
    if empty.any():
        raise ValueError(
            f"{type(game).__name__}.get_possible_actions() allows no action for copy "
            f"{int(np.flatnonzero(empty)[0])}, whose game is not over."
        )
    return allowed
