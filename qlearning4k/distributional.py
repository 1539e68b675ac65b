"""Distributional Q-learning: C51 and quantile regression (QR-DQN) as agent options.

A distributional agent learns, for each action, a distribution of returns
rather than its mean. The model then ends in `nb_actions * nb_atoms` units
(action by action, each action's atoms together), and the agent acts on the
mean of each action's distribution. The options are given to the `Agent`
(`Agent(model, distribution=C51())`) and change only what the compiled step
computes: targets, loss and priorities. They combine with the target
network, Double DQN, n-step returns, prioritized replay and action masks.

The distributional loss replaces the model's compiled loss: `model.compile`
still gives the optimizer (and its learning rate, clipping and so on), but
its loss is not used, nor are regularization losses of the model's layers.
"""

from __future__ import annotations

import dataclasses
import numbers

import keras
import numpy as np

from qlearning4k._checks import _check_positive_int
from qlearning4k._learner.rules import next_choice, one_hot


def _number(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner} expects {name} to be a number. Received: {name}={value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{owner} expects {name} to be finite. Received: {name}={value}")
    return value


class _Distribution:
    """What C51 and QR-DQN share: the layout of the model's output, acting on means.

    Subclasses give `nb_atoms`, the model's outputs per action.
    """

    def _atoms(self, outputs, nb_actions: int):
        """`(batch, nb_actions * nb_atoms)` outputs as `(batch, nb_actions, nb_atoms)`."""
        return keras.ops.reshape(outputs, (-1, nb_actions, self.nb_atoms))

    def _q_values(self, outputs, nb_actions: int):
        """The mean of each action's distribution: `(batch, nb_actions)`."""
        raise NotImplementedError

    def _losses(self, outputs, next_outputs, next_online, rows, nb_actions):
        """Each transition's loss `(batch,)`, to minimize (its mean, weighted).

        `outputs` are the online model's on the states; `next_outputs` the
        target network's on the next states (the online model's without
        one); `next_online`, with Double DQN, the online model's on the next
        states. `rows` names each transition's action, reward, bootstrap
        discount, weight and, with masks, the next state's possible actions
        (`qlearning4k._learner.batch.Rows`).
        """
        raise NotImplementedError

    def _bootstrap(self, next_outputs, next_online, rows, nb_actions):
        """The next state's distribution to bootstrap from, `(batch, nb_atoms)`,
        and each transition's reward and discount (0 where no action is possible)."""
        ops = keras.ops
        atoms = self._atoms(next_outputs, nb_actions)
        q_next = self._q_values(next_outputs, nb_actions)
        q_online = None if next_online is None else self._q_values(next_online, nb_actions)
        chosen_action, possible = next_choice(q_next, q_online, rows.next_mask, nb_actions)
        chosen = ops.sum(atoms * chosen_action[:, :, None], axis=1)
        rewards = ops.cast(rows.rewards, atoms.dtype)
        discount = ops.cast(rows.discounts, atoms.dtype)
        if possible is not None:  # a next state with no possible action has no future
            discount = ops.where(possible, discount, 0.0)
        return chosen, rewards, discount

    @staticmethod
    def _taken(atoms, rows, nb_actions: int):
        """The atoms of each transition's action: `(batch, nb_atoms)`."""
        ops = keras.ops
        taken = one_hot(ops.cast(rows.actions, "int32"), nb_actions, atoms.dtype)
        return ops.sum(atoms * taken[:, :, None], axis=1)


@dataclasses.dataclass(frozen=True)
class C51(_Distribution):
    """Categorical distributional Q-learning, C51 (Bellemare et al., 2017).

    Each action's return is a distribution over `nb_atoms` fixed values
    evenly spaced from `v_min` to `v_max`; the model outputs its logits,
    `nb_atoms` per action. Targets are the next state's distribution
    (of its greedy action), shifted by the reward and shrunk by the
    discount, projected back onto the fixed values; the loss is their
    cross-entropy with the taken action's distribution, which also serves
    as the priority with prioritized replay.

    Args:
        nb_atoms: Number of fixed return values (atoms). Defaults to 51.
        v_min: The smallest return value. Defaults to -10.0.
        v_max: The largest return value. Defaults to 10.0.

    Raises:
        TypeError: If `nb_atoms` is not an int or a bound not a number.
        ValueError: If `nb_atoms < 2` or `v_min >= v_max`.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((1, 10, 10)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(3 * 51),  # nb_actions * nb_atoms logits
    ])
    model.compile(keras.optimizers.Adam(1e-3))  # the loss is C51's own
    agent = Agent(model, distribution=C51(nb_atoms=51, v_min=-1.0, v_max=1.0))
    ```
    """

    nb_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0

    def __post_init__(self):
        nb_atoms = _check_positive_int("nb_atoms", self.nb_atoms)
        if nb_atoms < 2:
            raise ValueError(f"C51 needs at least 2 atoms. Received: nb_atoms={nb_atoms}")
        v_min = _number("C51", "v_min", self.v_min)
        v_max = _number("C51", "v_max", self.v_max)
        if v_min >= v_max:
            raise ValueError(f"C51 expects v_min < v_max. Received: v_min={v_min}, v_max={v_max}")
        object.__setattr__(self, "nb_atoms", nb_atoms)
        object.__setattr__(self, "v_min", v_min)
        object.__setattr__(self, "v_max", v_max)

    @property
    def support(self) -> np.ndarray:
        """The atoms' return values, `(nb_atoms,)` float32."""
        return np.linspace(self.v_min, self.v_max, self.nb_atoms, dtype=np.float32)

    def _q_values(self, outputs, nb_actions):
        ops = keras.ops
        probabilities = ops.softmax(self._atoms(outputs, nb_actions), axis=-1)
        return ops.sum(probabilities * ops.cast(self.support, probabilities.dtype), axis=-1)

    def _losses(self, outputs, next_outputs, next_online, rows, nb_actions):
        ops = keras.ops
        logits, rewards, discount = self._bootstrap(next_outputs, next_online, rows, nb_actions)
        probabilities = ops.softmax(logits, axis=-1)  # (batch, nb_atoms)
        support = ops.cast(self.support, probabilities.dtype)
        shifted = ops.clip(
            rewards[:, None] + discount[:, None] * support[None, :], self.v_min, self.v_max
        )
        # Projection onto the support: each shifted atom splits its
        # probability between its two neighbours, in proportion to how close
        # it is to each (all of it to an atom it falls on). `position`: where
        # each shifted atom falls, counted in atoms from v_min (0 to
        # nb_atoms - 1); `lower`: the neighbour below (the one below the
        # last atom for an atom that falls on it).
        n = self.nb_atoms
        position = (shifted - self.v_min) / ((self.v_max - self.v_min) / (n - 1))
        lower = ops.clip(ops.floor(position), 0, n - 2)
        upper_share = position - lower
        # One sum by destination over the whole batch: the atoms of row b are
        # b * n to b * n + n - 1. (Summing a (batch, atom, shifted atom)
        # array of shares instead made a C51 gradient step of the Zoo's
        # Acrobot network 1.3 times as long on JAX, 1.8 times on PyTorch.)
        batch = ops.shape(probabilities)[0]
        below = ops.cast(lower, "int32") + n * ops.arange(batch, dtype="int32")[:, None]
        shares = ops.concatenate(
            [probabilities * (1.0 - upper_share), probabilities * upper_share], axis=1
        )
        target = ops.segment_sum(
            ops.reshape(shares, (-1,)),
            ops.reshape(ops.concatenate([below, below + 1], axis=1), (-1,)),
            num_segments=batch * n,
        )
        target = ops.stop_gradient(ops.reshape(target, (batch, n)))
        taken = self._taken(self._atoms(outputs, nb_actions), rows, nb_actions)
        log_probabilities = ops.log_softmax(taken, axis=-1)
        return -ops.sum(ops.cast(target, log_probabilities.dtype) * log_probabilities, axis=-1)


@dataclasses.dataclass(frozen=True)
class QuantileRegression(_Distribution):
    """Quantile regression DQN, QR-DQN (Dabney et al., 2018).

    Each action's return is `nb_quantiles` values, the model's outputs,
    learned as the quantiles at the midpoints `(2i + 1) / (2 nb_quantiles)`.
    Targets are the next state's quantiles (of its greedy action), times the
    discount, plus the reward; the loss is the quantile Huber loss of every
    pair of quantile and target, summed over quantiles and averaged over
    targets, as in the paper and sb3-contrib. It is also the priority with
    prioritized replay.

    Args:
        nb_quantiles: Number of quantiles per action. Defaults to 200 (as
            sb3-contrib's `QRDQN`).
        kappa: Threshold of the Huber loss. Defaults to 1.0.

    Raises:
        TypeError: If `nb_quantiles` is not an int or `kappa` not a number.
        ValueError: If `nb_quantiles < 1` or `kappa <= 0`.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((1, 6)),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(3 * 25),  # nb_actions * nb_quantiles
    ])
    model.compile(keras.optimizers.Adam(6.3e-4))  # the loss is QR-DQN's own
    agent = Agent(model, distribution=QuantileRegression(nb_quantiles=25))
    ```
    """

    nb_quantiles: int = 200
    kappa: float = 1.0

    def __post_init__(self):
        nb_quantiles = _check_positive_int("nb_quantiles", self.nb_quantiles)
        kappa = _number("QuantileRegression", "kappa", self.kappa)
        if kappa <= 0:
            raise ValueError(f"QuantileRegression expects kappa > 0. Received: kappa={kappa}")
        object.__setattr__(self, "nb_quantiles", nb_quantiles)
        object.__setattr__(self, "kappa", kappa)

    @property
    def nb_atoms(self) -> int:
        """Outputs per action: `nb_quantiles`."""
        return self.nb_quantiles

    @property
    def fractions(self) -> np.ndarray:
        """The quantiles' fractions `(2i + 1) / (2 nb_quantiles)`, float32."""
        n = self.nb_quantiles
        return ((2 * np.arange(n) + 1) / (2 * n)).astype(np.float32)

    def _q_values(self, outputs, nb_actions):
        return keras.ops.mean(self._atoms(outputs, nb_actions), axis=-1)

    def _losses(self, outputs, next_outputs, next_online, rows, nb_actions):
        ops = keras.ops
        quantiles, rewards, discount = self._bootstrap(next_outputs, next_online, rows, nb_actions)
        target = ops.stop_gradient(rewards[:, None] + discount[:, None] * quantiles)
        current = self._taken(self._atoms(outputs, nb_actions), rows, nb_actions)
        # (batch, quantile i, target j)
        errors = ops.cast(target, current.dtype)[:, None, :] - current[:, :, None]
        size = ops.abs(errors)
        kappa = self.kappa
        huber = ops.where(size <= kappa, 0.5 * errors**2, kappa * (size - 0.5 * kappa))
        below = ops.cast(ops.stop_gradient(errors) < 0, current.dtype)
        fractions = ops.cast(self.fractions, current.dtype)[None, :, None]
        pairs = ops.abs(fractions - below) * huber / kappa
        return ops.sum(ops.mean(pairs, axis=2), axis=1)


def _to_config(distribution) -> dict | None:
    """`agent.json`'s record of a distribution option."""
    if distribution is None:
        return None
    return {"class": type(distribution).__name__, **dataclasses.asdict(distribution)}


def _from_config(config: dict | None):
    """The distribution option `_to_config` recorded."""
    if config is None:
        return None
    kinds = {"C51": C51, "QuantileRegression": QuantileRegression}
    config = dict(config)
    kind = config.pop("class")
    if kind not in kinds:
        raise ValueError(
            f"Agent.load() knows the distributions {sorted(kinds)}. Received: {kind!r}"
        )
    return kinds[kind](**config)
