"""The batches `train()` hands the compiled step, checked against an independent construction.

The games log every move they make; from that log alone the test builds
each n-step transition (the discounted rewards, the state `n` moves later,
the bootstrap discount `gamma ** steps`, 0 after a game over, `gamma **
steps` again for a game stopped by `max_steps`), and from the priorities
the memory held before each draw the importance-sampling weights. Every
batch row the step received must be one of those transitions with its
weight, and the priorities written back must be those of the step's TD
errors, at the sampled slots.
"""

import keras
import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, ExperienceReplay, PrioritizedExperienceReplay
from qlearning4k._internals import Learner
from qlearning4k.games import Catch, Snake

GAMMA, N_STEP, MAX_STEPS, BATCH = 0.9, 3, 5, 16


class _LoggedSnake(Snake):
    """Snake that logs each game: its frames, and each move's action and reward."""

    def __init__(self, **kwargs):
        self.games = []  # Snake resets in its constructor
        super().__init__(**kwargs)

    def reset(self):
        super().reset()
        self.games.append({"frames": [self.get_frame().copy()], "moves": [], "over": False})

    def play(self, action):
        super().play(action)
        game = self.games[-1]
        game["frames"].append(self.get_frame().copy())
        game["moves"].append((int(action), float(self.get_score())))
        game["over"] = self.is_over()


def _transitions(games, n, gamma, max_steps):
    """Every n-step transition of the logged games, by hand:
    `(state bytes, action, next state bytes) -> [(return, discount)]`."""
    found = {}
    for game in games:
        moves, frames = game["moves"], game["frames"]
        length = len(moves)
        if not length:
            continue
        assert game["over"] or length == max_steps  # else the run would not have ended it
        for t in range(length):
            k = min(n, length - t)  # fewer steps at the end of a game
            ret = sum(gamma**i * moves[t + i][1] for i in range(k))
            game_over = game["over"] and t + k == length
            discount = 0.0 if game_over else gamma**k  # a stopped game still bootstraps
            key = (frames[t].tobytes(), moves[t][0], frames[t + k].tobytes())
            found.setdefault(key, []).append((ret, discount))
    return found


class _Recorder:
    """Records the step's batches, the memory's draws and the priorities it writes back."""

    def __init__(self, memory, monkeypatch):
        self.memory, self.batches, self.draws, self.writes = memory, [], [], []
        step, draw, update = Learner.step, memory._draw, memory.update_priorities

        def recording_step(learner, buffers, count):
            for batch in buffers.batches[:count]:
                self.batches.append([None if x is None else np.array(x) for x in batch])
            out = step(learner, buffers, count)
            if count:
                self.writes.append({"td": out[2][: count * learner.batch_size]})
            return out

        def recording_draw(batch_size):
            before = {"leaves": memory._tree.leaves(memory.capacity).copy(), "beta": memory.beta}
            idx, weights = draw(batch_size)
            self.draws.append({**before, "idx": idx.copy(), "weights": weights.copy()})
            return idx, weights

        def recording_update(indices, td_errors):
            update(indices, td_errors)
            self.writes[-1].update(
                indices=np.array(indices), after=memory._tree.leaves(memory.capacity).copy()
            )

        monkeypatch.setattr(Learner, "step", recording_step)
        monkeypatch.setattr(memory, "_draw", recording_draw)
        monkeypatch.setattr(memory, "update_priorities", recording_update)


def test_batches_priorities_and_weights_match_an_independent_construction(monkeypatch):
    keras.utils.set_random_seed(0)
    memory = PrioritizedExperienceReplay(500, alpha=0.6, beta=0.4, seed=0)
    agent = Agent(make_model(frame_shape=(6, 6), nb_actions=5), memory=memory, seed=0)
    game = _LoggedSnake(grid_size=6, seed=0)
    recorder = _Recorder(memory, monkeypatch)
    agent.train(game, nb_epoch=30, batch_size=BATCH, gamma=GAMMA, n_step=N_STEP,
                max_steps=MAX_STEPS, epsilon=0.5, verbose=0)  # fmt: skip
    games = game.games
    assert any(g["over"] for g in games) and any(not g["over"] and g["moves"] for g in games)
    expected = _transitions(games, N_STEP, GAMMA, MAX_STEPS)
    assert len(recorder.batches) == len(recorder.draws) > 20
    discounts = set()
    for (states, next_states, actions, rewards, disc, weights, mask), draw in zip(
        recorder.batches, recorder.draws, strict=True
    ):
        assert mask is None  # Snake allows every action
        for row in range(BATCH):
            key = (states[row, 0].tobytes(), int(actions[row]), next_states[row, 0].tobytes())
            candidates = expected.get(key, [])
            assert any(
                np.isclose(rewards[row], ret, rtol=1e-6) and np.isclose(disc[row], d, rtol=1e-6)
                for ret, d in candidates
            ), f"row {row}: {rewards[row]}, {disc[row]} not in {candidates}"
            discounts.add(round(float(disc[row]), 6))
        # Importance-sampling weights from the priorities before the draw.
        probabilities = draw["leaves"][draw["idx"]] / draw["leaves"].sum()
        by_hand = (len(memory) * probabilities) ** -draw["beta"]
        np.testing.assert_allclose(weights, by_hand / by_hand.max(), rtol=1e-5)
    # Every kind of bootstrap showed up: a game over, short windows, full ones.
    assert {0.0, round(GAMMA, 6), round(GAMMA**N_STEP, 6)} <= discounts
    # The priorities written back are the step's TD errors', at the sampled slots.
    assert len(recorder.writes) > 5
    draws = iter(recorder.draws)
    for write in recorder.writes:
        count = len(write["td"]) // BATCH
        sampled = np.concatenate([next(draws)["idx"] for _ in range(count)])
        np.testing.assert_array_equal(write["indices"], sampled)
        last = {int(i): e for i, e in zip(sampled, write["td"], strict=True)}  # the last wins
        slots = np.array(list(last))
        priority = (np.abs(np.array(list(last.values()))) + memory.epsilon) ** memory.alpha
        np.testing.assert_allclose(write["after"][slots], priority, rtol=1e-6)


@pytest.mark.parametrize("reset", [False, True])
def test_reset_memory_starts_every_game_with_an_empty_memory(reset):
    """With reset_memory=True each game learns from its own moves only: the
    memory holds the last game's transitions at the end; without, all of them."""
    agent = Agent(make_model(), memory=ExperienceReplay(100, seed=0), seed=0)
    history = agent.train(Catch(seed=0), nb_epoch=3, batch_size=4, verbose=0, reset_memory=reset)
    steps = [int(s) for s in history.history["steps"]]
    assert len(agent.memory) == (steps[-1] if reset else sum(steps))
