"""C51 and QR-DQN: losses against slow NumPy references, the compiled step, options, saving."""

import keras
import numpy as np
import pytest
from conftest import StopAfter
from test_dqn_options import BATCH, NB_ACTIONS, STEPS, _call_buffers, _random_batches

from qlearning4k import Agent, EvalCallback, Memory, PrioritizedExperienceReplay, dueling
from qlearning4k._internals import Rows, StepConfig
from qlearning4k.distributional import C51, QuantileRegression
from qlearning4k.games import Catch

DISTRIBUTIONS = [
    C51(nb_atoms=5, v_min=-2.0, v_max=2.0),  # atoms 1 apart: rewards land on and between
    C51(nb_atoms=11, v_min=-1.0, v_max=1.0),
    QuantileRegression(nb_quantiles=4),
    QuantileRegression(nb_quantiles=7, kappa=0.5),
]


def _ids(value):
    return repr(value).replace(" ", "")


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reference(distribution, outputs, next_outputs, next_online, rows):
    """Each transition's loss and target, one transition and atom at a time (`rows`: NumPy)."""
    n, a_count = distribution.nb_atoms, NB_ACTIONS
    losses, targets = [], []
    for b in range(len(outputs)):
        action, reward = int(rows.actions[b]), float(rows.rewards[b])
        discount = float(rows.discounts[b])
        atoms = outputs[b].reshape(a_count, n).astype(np.float64)
        next_atoms = next_outputs[b].reshape(a_count, n).astype(np.float64)
        chooser = next_atoms if next_online is None else next_online[b].reshape(a_count, n)
        if isinstance(distribution, C51):
            support = np.linspace(distribution.v_min, distribution.v_max, n)
            next_atoms = _softmax(next_atoms)
            chooser_q = _softmax(chooser.astype(np.float64)) @ support
        else:
            chooser_q = chooser.mean(axis=1)
        mask = rows.next_mask
        allowed = mask[b] > 0.5 if mask is not None else np.ones(a_count, bool)
        if not allowed.any():
            discount, best = 0.0, 0  # no future: which action does not matter
        else:
            best = int(np.argmax(np.where(allowed, chooser_q, -np.inf)))
        if isinstance(distribution, C51):
            lo, hi = distribution.v_min, distribution.v_max
            spacing = (hi - lo) / (n - 1)
            target = np.zeros(n)
            for j in range(n):
                shifted = min(max(reward + discount * support[j], lo), hi)
                position = (shifted - lo) / spacing
                low, up = int(np.floor(position)), int(np.ceil(position))
                if low == up:
                    target[low] += next_atoms[best, j]
                else:
                    target[low] += next_atoms[best, j] * (up - position)
                    target[up] += next_atoms[best, j] * (position - low)
            logits = atoms[action] - atoms[action].max()
            log_p = logits - np.log(np.exp(logits).sum())
            loss = -(target * log_p).sum()
        else:
            kappa = distribution.kappa
            target = reward + discount * next_atoms[best]
            loss = 0.0
            for i in range(n):
                fraction = (2 * i + 1) / (2 * n)
                for j in range(n):
                    u = target[j] - atoms[action, i]
                    huber = 0.5 * u * u if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)
                    loss += abs(fraction - (u < 0)) * huber / kappa / n
        losses.append(loss)
        targets.append(target)
    return np.array(losses), np.array(targets, dtype=np.float32)


def _fixed_batch(rng, masked):
    """Transitions at the edges: game over, rewards beyond the support, on and between atoms."""
    mask = (rng.random((BATCH, NB_ACTIONS)) < 0.6).astype(np.float32)
    mask[1] = 0.0  # a next state with no possible action
    return Rows(
        actions=rng.integers(NB_ACTIONS, size=BATCH).astype(np.float32),
        rewards=np.array([0.0, 0.5, 5.0, -5.0, 1.0, -0.3, 0.0, 2.5], np.float32),
        discounts=np.array([1.0, 1.0, 0.9, 0.9, 0.0, 0.81, 0.0, 0.5], np.float32),
        weights=rng.uniform(0.2, 1.0, BATCH).astype(np.float32),
        next_mask=mask if masked else None,
    )


@pytest.mark.parametrize("distribution", DISTRIBUTIONS, ids=_ids)
@pytest.mark.parametrize("double, masked", [(False, False), (True, False), (True, True)])
def test_losses_equal_a_slow_numpy_reference(distribution, double, masked):
    rng = np.random.default_rng(0)
    width = NB_ACTIONS * distribution.nb_atoms
    outputs, next_outputs, online = (2 * rng.normal(size=(3, BATCH, width))).astype(np.float32)
    rows = _fixed_batch(rng, masked)
    tensor = keras.ops.convert_to_tensor
    tensors = Rows(*(None if column is None else tensor(column) for column in rows))
    got = distribution._losses(tensor(outputs), tensor(next_outputs),
                               tensor(online) if double else None, tensors, NB_ACTIONS)  # fmt: skip
    expected, _ = _reference(distribution, outputs, next_outputs, online if double else None,
                             rows)  # fmt: skip
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS[::2], ids=_ids)
def test_acting_uses_the_mean_of_each_distribution(distribution):
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(4, NB_ACTIONS * distribution.nb_atoms)).astype(np.float32)
    atoms = outputs.reshape(4, NB_ACTIONS, -1)
    if isinstance(distribution, C51):
        expected = _softmax(atoms) @ distribution.support
    else:
        expected = atoms.mean(axis=-1)
    got = distribution._q_values(keras.ops.convert_to_tensor(outputs), NB_ACTIONS)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-5, atol=1e-6)


def _model(distribution, hidden=16, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((1, 10, 10)), keras.layers.Flatten(),
                              keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(NB_ACTIONS * distribution.nb_atoms)])  # fmt: skip
    model.compile(keras.optimizers.Adam(1e-2))
    return model


def _keras_loss(distribution):
    """The loss of a transition given its target (`y_true`: target atoms, then the
    one-hot action), as a Keras loss for `train_on_batch` on a twin model."""
    ops, n = keras.ops, distribution.nb_atoms

    def loss(y_true, y_pred):
        target, taken = y_true[:, :n], y_true[:, n:]
        current = ops.sum(ops.reshape(y_pred, (-1, NB_ACTIONS, n)) * taken[:, :, None], axis=1)
        if isinstance(distribution, C51):
            return -ops.sum(target * ops.log_softmax(current, axis=-1), axis=-1)
        u = target[:, None, :] - current[:, :, None]
        kappa = distribution.kappa
        huber = ops.where(ops.abs(u) <= kappa, 0.5 * u**2, kappa * (ops.abs(u) - 0.5 * kappa))
        below = ops.cast(u < 0, "float32")
        fractions = ops.convert_to_tensor(distribution.fractions)[None, :, None]
        return ops.sum(ops.mean(ops.abs(fractions - below) * huber / kappa, axis=2), axis=1)

    return loss


@pytest.mark.parametrize("distribution", DISTRIBUTIONS[1::2], ids=_ids)
@pytest.mark.parametrize(
    "options",
    [{}, {"target_update": 2, "double_dqn": True}, {"masked": True, "prioritized": True}],
    ids=lambda options: "-".join(options) or "plain",
)
def test_compiled_step_equals_a_reference_on_a_twin_model(distribution, options):
    """Three gradient steps in one call: losses, priorities, weights, target and Q-values."""
    fused, reference = _model(distribution), _model(distribution)
    reference.set_weights(fused.get_weights())
    reference.compile(keras.optimizers.Adam(1e-2), _keras_loss(distribution))
    agent = Agent(fused, seed=0, distribution=distribution)
    config = StepConfig(batch_size=BATCH, max_steps=STEPS, **options)
    learner = agent._learner(config)
    batches = _random_batches(np.random.default_rng(0), 3, config.masked)
    buffers = _call_buffers(learner, batches)
    learner.begin()
    losses, q_act, td = learner.step(buffers, 3)
    learner.end()

    target = [w.copy() for w in reference.get_weights()]
    target_model = _model(distribution)  # for forward passes with the target's weights
    ref_losses, ref_errors = [], []
    for counter, (s, s2, a, r, discount, w, mask) in enumerate(batches, start=1):
        x, x2 = s.astype(np.float32), s2.astype(np.float32)
        r, discount, w = (np.asarray(c, np.float32) for c in (r, discount, w))  # as buffered
        rows = Rows(a.astype(np.float32), r, discount, w, mask if config.masked else None)
        online_next = keras.ops.convert_to_numpy(reference(x2))
        next_outputs = online_next
        if config.target_update is not None:
            target_model.set_weights(target)
            next_outputs = keras.ops.convert_to_numpy(target_model(x2))
        double = online_next if config.double_dqn else None
        outputs = keras.ops.convert_to_numpy(reference(x))
        errors, targets = _reference(distribution, outputs, next_outputs, double, rows)
        y = np.concatenate([targets, np.eye(NB_ACTIONS, dtype=np.float32)[a]], axis=1)
        ref_losses.append(float(reference.train_on_batch(x, y, sample_weight=w)))
        ref_errors.append(errors)
        if config.target_update is not None and counter % config.target_update == 0:
            target = [v.copy() for v in reference.get_weights()]
    np.testing.assert_allclose(losses[:3], ref_losses, rtol=2e-4, atol=1e-5)
    for mine, theirs in zip(fused.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    outputs = keras.ops.convert_to_numpy(reference(buffers.acting.astype(np.float32)))
    expected_q = keras.ops.convert_to_numpy(distribution._q_values(outputs, NB_ACTIONS))
    np.testing.assert_allclose(q_act, expected_q, rtol=1e-4, atol=1e-5)
    if config.prioritized:
        np.testing.assert_allclose(td[: 3 * BATCH], np.concatenate(ref_errors), rtol=1e-4,
                                   atol=1e-5)  # fmt: skip
    if config.target_update is not None:
        for mine, theirs in zip(learner.get_target()[:-1], target, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS[1::2], ids=_ids)
def test_every_option_together_learns_catch(distribution):
    memory = PrioritizedExperienceReplay(2000, seed=0)
    model = _model(distribution, hidden=64)
    model.optimizer.learning_rate.assign(1e-3)
    agent = Agent(model, memory=memory, seed=0, distribution=distribution)
    agent.train(Catch(seed=0), nb_epoch=300, batch_size=32, target_update=50, double_dqn=True,
                n_step=2, verbose=0)  # fmt: skip
    # Untrained, the greedy policy wins 0.2 to 0.3 of the games.
    assert agent.evaluate(Catch(), nb_games=100, seed=0)["win_rate"] >= 0.5


@pytest.mark.parametrize("distribution", DISTRIBUTIONS[1::2], ids=_ids)
def test_save_load_and_exact_resume_keep_the_distribution(tmp_path, distribution):
    def run(**kwargs):
        agent = Agent(_model(distribution), seed=0, distribution=distribution,
                      memory=PrioritizedExperienceReplay(500, seed=1))  # fmt: skip
        agent.train(Catch(seed=0), batch_size=8, target_update=5, n_step=2, verbose=0, **kwargs)
        return agent

    whole = run(nb_epoch=20)
    path = tmp_path / "checkpoint"
    run(nb_epoch=20, checkpoint=10, checkpoint_path=path, callbacks=[StopAfter(10)])
    resumed = Agent.load(path)
    assert resumed.distribution == distribution and resumed.nb_actions == NB_ACTIONS
    resumed.train(Catch(seed=0), nb_epoch=20, batch_size=8, target_update=5, n_step=2,
                  verbose=0, resume=True, checkpoint_path=path)  # fmt: skip
    for x, y in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
    whole.save(tmp_path / "saved")
    loaded = Agent.load(tmp_path / "saved")
    states = np.random.default_rng(0).integers(0, 2, (5, 1, 10, 10)).astype(np.float32)
    np.testing.assert_allclose(loaded.q_values(states), whole.q_values(states), rtol=1e-6)
    assert loaded.q_values(states).shape == (5, NB_ACTIONS)


def test_eval_callback_evaluates_a_distributional_agent_by_its_means():
    distribution = DISTRIBUTIONS[2]
    agent = Agent(_model(distribution), seed=0, distribution=distribution)
    evaluation = EvalCallback(Catch(), every_games=5, nb_games=10, seed=0)
    agent.train(Catch(seed=0), nb_epoch=10, batch_size=8, verbose=0, callbacks=[evaluation])
    again = agent.evaluate(Catch(), nb_games=10, seed=0)
    assert evaluation.results[-1]["mean_score"] == again["mean_score"]


def test_a_dueling_head_of_distributions():
    body = keras.Sequential([keras.Input((1, 10, 10)), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation="relu")])  # fmt: skip
    model = dueling(body, nb_actions=NB_ACTIONS, nb_atoms=11)
    assert model.outputs[0].shape[-1] == NB_ACTIONS * 11
    x = np.random.default_rng(0).random((4, 1, 10, 10)).astype(np.float32)
    out = keras.ops.convert_to_numpy(model(x)).reshape(4, NB_ACTIONS, 11)
    value = keras.ops.convert_to_numpy(model.get_layer("value")(body(x)))  # (4, 11)
    # Advantages average to zero over the actions, atom by atom: the mean is the value.
    np.testing.assert_allclose(out.mean(axis=1), value, rtol=1e-5, atol=1e-5)
    model.compile(keras.optimizers.Adam(1e-3))
    agent = Agent(model, distribution=C51(nb_atoms=11, v_min=-1.0, v_max=1.0), seed=0)
    agent.train(Catch(seed=0), nb_epoch=5, batch_size=8, verbose=0)


class _OwnBatches(Memory):
    """A memory with no `sample()`: it builds its own Q-value targets (`get_batch`)."""

    memory_size = 100

    def __init__(self):
        self.transitions = []

    def remember(self, s, a, r, s_prime, game_over):
        self.transitions.append((s, a, r, s_prime, game_over))

    def __len__(self):
        return len(self.transitions)

    def reset_memory(self):
        self.transitions = []

    def get_batch(self, model, batch_size, gamma=0.9):
        raise AssertionError("a distributional agent must not ask for Q-value targets")


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: C51(nb_atoms=1), ValueError, "at least 2 atoms"),
        (lambda: C51(nb_atoms=5.0), TypeError, "nb_atoms must be an int"),
        (lambda: C51(v_min=1.0, v_max=1.0), ValueError, "v_min < v_max"),
        (lambda: C51(v_min="low"), TypeError, "v_min to be a number"),
        (lambda: C51(v_max=float("inf")), ValueError, "finite"),
        (lambda: QuantileRegression(nb_quantiles=0), ValueError, "nb_quantiles must be positive"),
        (lambda: QuantileRegression(kappa=0.0), ValueError, "kappa > 0"),
        (lambda: Agent(_model(C51(nb_atoms=5)), distribution=C51(nb_atoms=4)), ValueError,
         "Received: 15 outputs"),
        (lambda: Agent(_model(C51(nb_atoms=5)), distribution="c51"), TypeError, "C51 or Quantile"),
        (lambda: Agent(_model(C51()), distribution=C51(), memory=_OwnBatches()).train(
            Catch(), nb_epoch=2, verbose=0), ValueError, "implement sample"),
    ],
)  # fmt: skip
def test_bad_distributional_input_is_a_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()
