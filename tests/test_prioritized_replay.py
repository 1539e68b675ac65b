"""PrioritizedExperienceReplay: the sum tree, proportional sampling, weights, saving."""

import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, PrioritizedExperienceReplay
from qlearning4k._internals import SumTree
from qlearning4k.games import Catch


@pytest.mark.parametrize("capacity", [1, 2, 5, 64, 1000])
def test_sum_tree_sums_and_finds_like_a_cumulative_sum(capacity):
    rng = np.random.default_rng(capacity)
    tree = SumTree(capacity)
    values = rng.random(capacity)
    tree.update(np.arange(capacity), values)
    changed = rng.integers(0, capacity, size=max(1, capacity // 3))
    values[changed] = rng.random(len(changed)) * 5  # repeats: the last one wins
    tree.update(changed, values[changed])
    values[changed] = tree.leaves(capacity)[changed]
    assert tree.total == pytest.approx(values.sum())
    mass = rng.random(500) * values.sum()
    expected = np.searchsorted(np.cumsum(values), mass, side="right")
    np.testing.assert_array_equal(tree.find(mass), np.minimum(expected, capacity - 1))


def _filled(memory_size=50, count=40, seed=0, **kwargs):
    memory = PrioritizedExperienceReplay(memory_size, seed=seed, **kwargs)
    s = np.arange(count, dtype=np.float32).reshape(count, 1, 1)
    memory.remember(s, np.zeros(count, int), np.arange(count), s + 1, np.zeros(count, bool))
    return memory


def test_new_transitions_get_the_highest_priority_and_sampling_follows_priorities():
    memory = _filled(alpha=0.5, beta=1.0, beta_increment=0.0)
    errors = np.zeros(40)
    errors[:4] = [3.0, 1.0, 8.0, 0.5]
    memory.update_priorities(np.arange(40), errors)
    priorities = (np.abs(errors) + memory.epsilon) ** 0.5
    assert memory.max_priority == pytest.approx(priorities.max())
    batch = memory.sample(20_000)
    counts = np.bincount(batch.rewards.astype(int), minlength=40)
    np.testing.assert_allclose(counts / 20_000, priorities / priorities.sum(), atol=0.01)
    # Zero errors keep a priority of epsilon ** alpha: rarely, but still drawn.
    assert counts[4:].sum() / 20_000 == pytest.approx(priorities[4:].sum() / priorities.sum(),
                                                      rel=0.3)  # fmt: skip
    # Importance weights (N P)^-beta, divided by the batch's largest.
    expected = (40 * priorities[batch.indices] / priorities.sum()) ** -1.0
    np.testing.assert_allclose(batch.weights, expected / expected.max(), rtol=1e-4)
    s = np.full((1, 1, 1), 99, np.float32)
    memory.remember(s, 0, 99.0, s, False)  # slot 40 gets the highest priority so far
    assert memory._tree.leaves(41)[40] == pytest.approx(priorities.max())


@pytest.mark.parametrize("memory_size", [50, -1, 3], ids=["bounded", "unbounded", "overflowing"])
def test_remember_with_td_errors_gives_first_priorities_from_them(memory_size):
    memory = PrioritizedExperienceReplay(memory_size, alpha=0.5, seed=0)
    s = np.arange(5, dtype=np.float32).reshape(5, 1, 1)
    errors = np.array([0.0, -2.0, 0.0, 6.0, 0.5])  # the sign does not count
    memory.remember(s, np.zeros(5, int), np.arange(5), s + 1, np.zeros(5, bool), td_errors=errors)
    kept = errors[-min(5, memory.capacity) :]
    priorities = (np.abs(kept) + memory.epsilon) ** 0.5
    counts = np.bincount(memory.sample(20_000).rewards.astype(int), minlength=5)[-len(kept) :]
    np.testing.assert_allclose(counts / 20_000, priorities / priorities.sum(), atol=0.01)
    assert memory.max_priority == pytest.approx(max(1.0, priorities.max()))


@pytest.mark.parametrize("errors", [[1.0, 2.0], [1.0, np.nan, 0.0]], ids=["count", "nan"])
def test_remember_refuses_td_errors_that_do_not_fit(errors):
    memory = PrioritizedExperienceReplay(10)
    s = np.zeros((3, 1, 1), np.float32)
    with pytest.raises(ValueError, match="one finite TD error per transition"):
        memory.remember(s, 0, 0.0, s, False, td_errors=errors)
    assert len(memory) == 0


def test_alpha_zero_is_uniform_and_beta_grows_to_one():
    memory = _filled(alpha=0.0, beta=0.5, beta_increment=0.2)
    memory.update_priorities(np.arange(40), np.linspace(0, 10, 40))
    batch = memory.sample(40)
    np.testing.assert_array_equal(np.sort(batch.indices), np.arange(40))  # stratified, uniform
    np.testing.assert_allclose(batch.weights, 1.0)
    for _ in range(5):
        memory.sample(4)
    assert memory.beta == 1.0


def test_resizing_keeps_the_newest_transitions_with_their_priorities():
    memory = _filled(memory_size=-1, count=1500)  # the unbounded buffers grew from 1024
    memory.update_priorities(np.arange(1500), np.arange(1500) % 7)
    before = memory._tree.leaves(1500).copy()
    memory.memory_size = 100
    np.testing.assert_allclose(memory._tree.leaves(100), before[-100:])
    assert memory._tree.total == pytest.approx(before[-100:].sum())
    assert memory.sample(500).rewards.min() >= 1400


def test_agent_updates_priorities_from_the_compiled_step():
    memory = PrioritizedExperienceReplay(500, seed=0)
    agent = Agent(make_model(), memory=memory, seed=0)
    agent.train(Catch(seed=0), nb_epoch=10, batch_size=16, verbose=0)
    priorities = memory._tree.leaves(len(memory))
    assert len(np.unique(priorities)) > 20  # learned TD errors, not only the initial 1.0
    assert memory.beta > 0.4


def test_saved_agent_keeps_its_prioritized_memory(tmp_path):
    memory = _filled(alpha=0.7, beta=0.5, beta_increment=0.01)
    memory.update_priorities(np.arange(40), np.arange(40) / 10)
    agent = Agent(make_model(frame_shape=(1,)), memory=memory, seed=0)
    agent.save(tmp_path / "agent", include_memory=True)
    loaded = Agent.load(tmp_path / "agent").memory
    assert isinstance(loaded, PrioritizedExperienceReplay)
    assert (loaded.alpha, loaded.beta, loaded.beta_increment) == (0.7, 0.5, 0.01)
    np.testing.assert_allclose(loaded._tree.leaves(40), memory._tree.leaves(40))
    assert loaded.max_priority == memory.max_priority
    a, b = loaded.sample(64), memory.sample(64)
    np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize(
    "kwargs, error, kind",
    [
        ({"alpha": 1.5}, "alpha must be in \\[0, 1\\]", ValueError),
        ({"beta": -0.1}, "beta must be in \\[0, 1\\]", ValueError),
        ({"beta_increment": 2}, "beta_increment must be in \\[0, 1\\]", ValueError),
        ({"epsilon": 0.0}, "epsilon must be > 0", ValueError),
        ({"alpha": "0.6"}, "alpha must be a number", TypeError),
        ({"memory_size": 0}, "memory_size must be a positive number", ValueError),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, kind):
    with pytest.raises(kind, match=error):
        PrioritizedExperienceReplay(**kwargs)


def test_update_priorities_refuses_mismatched_or_non_finite_errors():
    memory = _filled()
    with pytest.raises(ValueError, match="one TD error per index"):
        memory.update_priorities([0, 1], [1.0])
    with pytest.raises(ValueError, match="finite TD errors"):
        memory.update_priorities([0], [np.nan])
