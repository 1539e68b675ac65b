"""`GymVectorGame`: a Gymnasium vector environment as a qlearning4k `VectorGame`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from qlearning4k.games.game_env import _import_gymnasium
from qlearning4k.games.gym_game import _check_spaces, _env_name, _map
from qlearning4k.games.vector_game import VectorGame

if TYPE_CHECKING:
    import gymnasium


class GymVectorGame(VectorGame):
    """A `gymnasium.vector.VectorEnv` with discrete actions, as a `VectorGame`.

    `Agent.train()` and `Agent.evaluate()` wrap a vector environment in one
    themselves; make one to choose `seed` or `win`.

    Description:
        Each sub-environment is one copy. Every autoreset mode of Gymnasium
        is handled so that no transition joins the last observation of one
        episode to the first of the next:

        - `SAME_STEP`: the step that ends an episode returns the next one's
          first observation; the last one (`info["final_obs"]`) is what
          `get_frames()` shows until the agent restarts the copy.
        - `NEXT_STEP` (Gymnasium's default) and `DISABLED`: a copy is
          restarted with `reset(options={"reset_mask": ...})` when the agent
          restarts it, so no step is wasted on an ignored action.

        `SAME_STEP` needs no extra call to the environments when episodes
        end: with `AsyncVectorEnv` it saves a round trip to the
        sub-processes on each step where an episode ends.

    Actions:
        The `Discrete(n)` actions of the sub-environments, shifted to
        `0 .. n - 1`; a `MultiDiscrete(nvec)` space makes a game of several
        action parts, as in `GymGame`.

    Observation:
        `get_frames()` is the batch of observations, each as `GymGame` makes
        its frame: a `Box` of `uint8` or `bool` as `uint8`, any other `Box`
        as `float32`, a `Discrete` one one-hot encoded.

    Rewards:
        `get_scores()` is the batch of rewards of the last step.

    Episode end:
        When a sub-environment is terminated or truncated. `is_won()` then
        follows `win` as in `GymGame`: a number (the episode's total reward
        reached it), a function `win(total_reward, terminated, truncated)`,
        or `None` (terminated without being truncated). A truncated episode
        is `is_truncated()`: training bootstraps its last transition.

    Args:
        env: A `gymnasium.vector.VectorEnv` (a `SyncVectorEnv`, an
            `AsyncVectorEnv`, or one from `gymnasium.make_vec`). The game
            steps it; close it yourself when done.
        seed: Seed of the first reset (sub-environment `i` gets
            `seed + i`); later resets continue each sub-environment's own
            generator. `None` draws it from an unpredictable generator.
            Defaults to `None`.
        win: The win rule, as above. Defaults to `None`.

    Raises:
        TypeError: If `env` is not a `gymnasium.vector.VectorEnv`.
        ValueError: If the action space is neither `Discrete` nor
            `MultiDiscrete`, the observation space not one `GymGame` takes,
            or the sub-environments'
            spaces differ.
        ImportError: If Gymnasium is not installed.

    Example:

    ```python
    envs = gymnasium.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
    game = GymVectorGame(envs, seed=0, win=475)
    agent.train(game, total_timesteps=50_000)
    ```
    """

    _resumable = False  # train(resume=True) cannot restore the environments

    def __init__(
        self,
        env: gymnasium.vector.VectorEnv,
        seed: int | None = None,
        win: float | Callable[[float, bool, bool], bool] | None = None,
    ):
        gymnasium = _import_gymnasium("GymVectorGame")
        if not isinstance(env, gymnasium.vector.VectorEnv):
            raise TypeError(
                "GymVectorGame expects a gymnasium.vector.VectorEnv. "
                f"Received: {env!r} (of type {type(env).__name__})"
            )
        super().__init__(env.num_envs, seed)
        action_space, space = env.single_action_space, env.single_observation_space
        self._observations, self._actions = _check_spaces(
            "GymVectorGame", action_space, space, win, single="single_"
        )
        # Vector envs of sub-environments say theirs; native ones (CartPole's
        # own vector env) are one env and cannot disagree.
        for name, single in (("action_space", action_space), ("observation_space", space)):
            subs = env.get_attr(name) if hasattr(env, "get_attr") else ()
            for index, sub in enumerate(subs):
                if sub != single:
                    raise ValueError(
                        f"GymVectorGame needs sub-environments that agree: the {name} of "
                        f"sub-environment {index} differs from the others'. Received: {sub} "
                        f"(expected {single})"
                    )
        mode = env.metadata.get("autoreset_mode", gymnasium.vector.AutoresetMode.NEXT_STEP)
        self._same_step = mode == gymnasium.vector.AutoresetMode.SAME_STEP
        self._disabled = mode == gymnasium.vector.AutoresetMode.DISABLED
        self.env = env
        self.win = win
        n = self.nb_copies
        self._rewards = np.zeros(n, dtype=np.float32)
        self._terminated = np.zeros(n, dtype=bool)
        self._truncated = np.zeros(n, dtype=bool)
        self.total_reward = np.zeros(n)
        self._frames = self._next_first = self._fresh = None  # made by reset()
        self.reset()

    @property
    def name(self) -> str:
        return _env_name(self.env)

    @property
    def nb_actions(self) -> int | tuple[int, ...]:
        return self._actions.counts

    def _as_frames(self, observations):
        """A batch of observations as frames (see `GymGame`): an array, or a dict
        or tuple of arrays, each with the copies first."""
        return self._observations.frames(observations, self.nb_copies)

    def reset(self, mask: np.ndarray | None = None, seed: int | None = None) -> None:
        if seed is not None or mask is None:
            first = int(self.rng.integers(2**31)) if seed is None else int(seed)
            observations, _ = self.env.reset(seed=first)
            self._frames = self._as_frames(observations)
            self._next_first = _map(np.copy, self._frames)
            self._fresh = np.zeros(self.nb_copies, dtype=bool)
            mask = np.ones(self.nb_copies, dtype=bool)
        else:
            mask = self._mask(mask)
            if not mask.any():
                return
            # Under SAME_STEP a copy whose episode ended has begun the next
            # one already; one stopped by the agent (max_steps) has not.
            fresh = mask & self._fresh
            stale = mask & ~fresh
            if fresh.any():
                _map(_set_rows(fresh), self._frames, self._next_first)
            if stale.any():
                observations, _ = self.env.reset(options={"reset_mask": stale})
                _map(_set_rows(stale), self._frames, self._as_frames(observations))
        self._fresh[mask] = False
        self._rewards[mask] = 0.0
        self._terminated[mask] = self._truncated[mask] = False
        self.total_reward[mask] = 0.0

    def play(self, actions: np.ndarray) -> None:
        actions = self._check_actions(actions)
        over = self.is_over()
        if self._disabled and over.any():  # stepping an ended env is an error there
            self.env.reset(options={"reset_mask": over})
        # The copies that are over step too (a vector env steps all of them),
        # and their results are dropped: they wait for reset().
        observations, rewards, terminated, truncated, info = self.env.step(
            self._actions.to_env(actions)
        )
        frames = self._as_frames(observations)
        running = ~over
        terminated, truncated = np.asarray(terminated), np.asarray(truncated)
        ended = running & (terminated | truncated)
        self._fresh[:] = False  # an episode begun by the env has now moved on
        if self._same_step and ended.any():
            _map(_set_rows(ended), self._next_first, frames)
            self._fresh[ended] = True
            final = info["final_obs"]
            for k in np.flatnonzero(ended):  # once per episode
                _map(_set_rows(k), frames, self._observations.frame(final[k]))
        _map(_set_rows(running), self._frames, frames)
        self._rewards[:] = np.where(running, rewards, 0.0)
        self._terminated[running] = terminated[running]
        self._truncated[running] = truncated[running]
        self.total_reward += self._rewards

    def get_frames(self):
        return self._frames

    def get_scores(self) -> np.ndarray:
        return self._rewards

    def is_over(self) -> np.ndarray:
        return self._terminated | self._truncated

    def is_truncated(self) -> np.ndarray:
        return self._truncated & ~self._terminated

    def is_won(self) -> np.ndarray:
        over = self.is_over()
        if self.win is None:
            return self._terminated & ~self._truncated
        if callable(self.win):
            flags = zip(self.total_reward, self._terminated, self._truncated, strict=True)
            won = [bool(self.win(float(t), bool(a), bool(b))) for t, a, b in flags]
            return over & np.array(won, dtype=bool)
        return over & (self.total_reward >= self.win)

    def __getstate__(self):
        raise TypeError(
            "A GymVectorGame cannot be saved: its sub-environments (and their "
            "processes) are not part of a checkpoint. Train with checkpoint=None, or "
            "use a VectorGame whose copies can be pickled (such as VectorCatch)."
        )


def _set_rows(rows):
    """`write(target, source)`: `target[rows] = source[rows]`, or the whole `source`
    into row `rows` where it is an int (one copy's frame)."""

    def write(target: np.ndarray, source: np.ndarray) -> None:
        target[rows] = source if isinstance(rows, (int, np.integer)) else source[rows]

    return write
