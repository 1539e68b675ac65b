"""Recurrent Q-networks: `recurrent()`, `SequenceReplay` and the R2D2 learner."""

import keras
import numpy as np
import pytest

from qlearning4k import C51, Agent, SequenceReplay, recurrent
from qlearning4k._internals import SequenceBuffers, SequenceConfig, StepConfig, make_learner
from qlearning4k.games import Catch, Snake, VectorCatch
from tests.conftest import make_model


def make_recurrent(frame_shape=(10, 10), nb_actions=3, core="gru", dueling=False, seed=0):
    keras.utils.set_random_seed(seed)
    layer = keras.layers.GRU(16) if core == "gru" else keras.layers.LSTM(16)
    encoder = keras.Sequential(
        [
            keras.Input(frame_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
        ],
    )
    model = recurrent(layer, frame_shape, nb_actions, encoder=encoder, dueling=dueling)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.Huber())
    return model


# -- the model ---------------------------------------------------------------


@pytest.mark.parametrize("core, sizes", [("gru", (16,)), ("lstm", (16, 16))])
def test_recurrent_follows_the_contract(core, sizes):
    model = make_recurrent(core=core, dueling=core == "lstm")
    frames = np.zeros((2, 5, 10, 10), np.float32)
    states = [np.zeros((2, s), np.float32) for s in sizes]
    q, *after = model([frames, *states])
    assert tuple(q.shape) == (2, 5, 3)
    assert [tuple(a.shape) for a in after] == [(2, s) for s in sizes]
    agent = Agent(model)
    assert isinstance(agent.memory, SequenceReplay) and agent.nb_frames == 1
    assert agent.initial_state().shape == (sum(sizes),)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"core": keras.layers.Dense(4)}, TypeError, "RNN layer"),
        ({"core": keras.layers.GRU(4, return_sequences=True)}, ValueError, "return_sequences"),
        ({"encoder": keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])}, ValueError,
         "encoder of one frame"),
    ],
)  # fmt: skip
def test_recurrent_rejects_bad_parts(kwargs, error, match):
    args = {"core": keras.layers.GRU(4), "frame_shape": (4,), "nb_actions": 2, **kwargs}
    with pytest.raises(error, match=match):
        recurrent(**args)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda m: Agent(m, nb_frames=4), "stacking frames as well is ambiguous"),
        (lambda m: Agent(m, distribution=C51(3)), "distributions"),
        (lambda m: Agent(m, memory=__import__("qlearning4k").ExperienceReplay(10)),
         "learns from a SequenceReplay"),
        (lambda m: Agent(make_model(), memory=SequenceReplay(100)), "SequenceReplay feeds"),
        (lambda m: Agent(m).act(np.zeros((10, 10))), "needs its state"),
        (lambda m: Agent(m).act(np.zeros((10, 10)), state=np.zeros(5)), r"expects a state \(16,\)"),
        (lambda m: Agent(make_model()).act(np.zeros((10, 10)), state=np.zeros(16)),
         "for recurrent agents only"),
        (lambda m: Agent(m).train(Catch(), nb_epoch=1, reset_memory=True), "reset_memory"),
        (lambda m: Agent(m).q_values(np.zeros((10, 10))), "depend on its state"),
        (lambda m: Agent(m).export("policy.onnx"), "not exported yet"),
        (lambda m: setattr(Agent(m), "memory_size", 10), "keeps the number of steps"),
    ],
)  # fmt: skip
def test_recurrent_agent_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_recurrent())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sequence_length": 10, "burn_in": 10}, "above burn_in"),
        ({"sequence_length": 10, "burn_in": 4, "overlap": 2}, "burn_in <= overlap"),
        ({"sequence_length": 10, "burn_in": 4, "overlap": 8}, "burn_in <= overlap"),
        ({"memory_size": -1}, "fixed number"),
        ({"eta": 2.0}, "eta must be"),
    ],
)
def test_sequence_replay_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceReplay(**kwargs)


# -- the memory ---------------------------------------------------------------


def _play(memory, lengths, ends, nb_copies=2, state_size=3):
    """Plays games of `lengths` (each copy in turn) through `_remember_steps`.

    Frame of copy c, game g, step k: `[c, g, k]`; reward k + 1; state [c, g, k].
    `ends[g]`: "terminal" or "truncated". Returns nothing; the memory holds them.
    """
    memory._start(np.zeros((nb_copies, 3), np.int32), nb_copies, state_size)
    games = {c: list(range(c, len(lengths), nb_copies)) for c in range(nb_copies)}
    step = {c: 0 for c in range(nb_copies)}
    while any(games.values()):
        copies = [c for c in range(nb_copies) if games[c]]
        frames, states, rewards, terminal, ended, last = [], [], [], [], [], []
        for c in copies:
            g, k = games[c][0], step[c]
            frames.append([c, g, k])
            states.append([c, g, k])
            rewards.append(k + 1)
            over = k + 1 == lengths[g]
            terminal.append(over and ends[g] == "terminal")
            ended.append(over)
            last.append([c, g, k + 1])
            step[c] = 0 if over else k + 1
            if over:
                games[c].pop(0)
        memory._remember_steps(np.array(copies), np.array(frames, np.int32),
                               np.array(states, np.float32), np.zeros(len(copies), np.int32),
                               np.array(rewards, np.float32), np.array(terminal),
                               np.array(ended), np.array(last, np.int32))  # fmt: skip


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("length, burn_in, overlap", [(8, 2, 4), (6, 0, 3), (10, 4, 4)])
def test_sequences_hold_their_games(length, burn_in, overlap, n_step):
    lengths = [3, 17, 9, 25, 12, 4]
    ends = ["terminal", "truncated", "terminal", "terminal", "truncated", "truncated"]
    memory = SequenceReplay(1000, sequence_length=length, burn_in=burn_in, overlap=overlap, seed=0)
    _play(memory, lengths, ends)
    learned = length - burn_in
    buffers = SequenceBuffers(1, 64, 1, length, learned, (3,), np.int32, 3, 3, False)
    batch = buffers.batches[0]
    gamma = 0.9
    covered = set()
    for _ in range(20):
        memory._sample_into(batch, gamma, n_step)
        for i in range(64):
            c, g, first = batch.frames[i, 0]
            frames = batch.frames[i]
            fresh = bool(batch.fresh[i])
            start = 0 if fresh else first + burn_in  # the first learned step
            assert fresh == (burn_in > 0 and start == 0) or burn_in == 0
            if not fresh:  # the stored state is the one before the first frame
                np.testing.assert_array_equal(batch.states[i], [c, g, first])
            else:
                np.testing.assert_array_equal(batch.states[i], 0.0)
            n = lengths[g]
            for j in range(learned):
                k = start + j
                played = k < n
                assert batch.weights[i, j] == float(played)
                np.testing.assert_array_equal(frames[burn_in + j], [c, g, min(k, n)])
                if not played:
                    continue
                covered.add((g, k))
                # the n-step return inside the sequence, and its bootstrap
                m, ret, over = 0, 0.0, False
                while m < n_step and j + m < learned and k + m < n:
                    ret += gamma**m * (k + m + 1)
                    m += 1
                    if k + m == n and ends[g] == "terminal":
                        over = True
                        break
                np.testing.assert_allclose(batch.rewards[i, j], ret, rtol=1e-6)
                assert batch.bootstrap[i, j] == j + m
                np.testing.assert_allclose(batch.discounts[i, j], 0.0 if over else gamma**m,
                                           rtol=1e-6)  # fmt: skip
    every = {(g, k) for g, n in enumerate(lengths) for k in range(n)}
    assert covered == every  # every step of every game is learned


def test_sequence_replay_stores_each_frame_once():
    """At 84x84 frames, a step costs what a frame-once transition of 4 stacked frames does."""
    size, rng = 4000, np.random.default_rng(0)
    frames = rng.integers(0, 255, (size + 1, 84, 84), np.uint8)
    sequences = SequenceReplay(size, seed=0)  # R2D2's sequences
    state_size = 512  # an LSTM of 256 units
    sequences._start(frames[:1], 1, state_size)
    for k in range(size):
        last = k == size - 1
        sequences._remember_steps(np.array([0]), frames[k : k + 1], np.zeros((1, state_size)),
                                  np.zeros(1, np.int32), np.zeros(1), np.array([last]),
                                  np.array([last]), frames[k + 1 : k + 2])  # fmt: skip
    stacked = __import__("qlearning4k").ExperienceReplay(size, seed=0)
    for k in range(size):
        s = frames[max(k - 3, 0) : k + 1]
        s = np.concatenate([np.repeat(s[:1], 4 - len(s), axis=0), s])
        s_next = np.concatenate([s[1:], frames[k + 1 : k + 2]])
        stacked.remember(s[None], 0, 0.0, s_next[None], k == size - 1)
    per_step = sequences.nbytes / size
    states = state_size * 4 / sequences.period  # a stored state a sequence
    assert per_step <= 1.1 * stacked.nbytes / size + states


def test_sequence_replay_drops_sequences_of_overwritten_frames():
    memory = SequenceReplay(50, sequence_length=8, burn_in=2, overlap=4, seed=0)
    _play(memory, [40] * 10, ["terminal"] * 10)
    buffers = SequenceBuffers(1, 256, 1, 8, 6, (3,), np.int32, 3, 3, False)
    memory._sample_into(buffers.batches[0], 0.9)
    games = buffers.batches[0].frames[:, :, 1]
    assert games.min() >= 6  # only the newest games' sequences remain


# -- the learner ----------------------------------------------------------------


@pytest.mark.parametrize("double_dqn", [False, True])
@pytest.mark.parametrize("burn_in", [0, 3])
def test_sequence_step_matches_a_plain_reference(burn_in, double_dqn):
    """The compiled step's loss equals R2D2's loss computed step by step with the model."""
    model = make_recurrent(frame_shape=(4,), nb_actions=3, core="lstm")
    length, size, learned = 9, 5, 9 - burn_in
    sequences = SequenceConfig(length, burn_in, (16, 16))
    config = StepConfig(batch_size=size, target_update=1000, double_dqn=double_dqn,
                        sequences=sequences)  # fmt: skip
    learner = make_learner(model, config)
    buffers = learner.call_buffers(1, (1, 4), np.float32)
    batch = buffers.batches[0]
    rng = np.random.default_rng(0)
    batch.frames[...] = rng.normal(size=batch.frames.shape)
    batch.states[...] = rng.normal(size=batch.states.shape) * 0.3
    batch.fresh[...] = [1, 0, 0, 1, 0] if burn_in else 0
    batch.actions[...] = rng.integers(0, 3, batch.actions.shape)
    batch.rewards[...] = rng.normal(size=batch.rewards.shape)
    batch.discounts[...] = rng.uniform(0, 1, batch.discounts.shape)
    batch.weights[...] = rng.uniform(0.5, 1, batch.weights.shape)
    batch.bootstrap[...] = np.minimum(np.arange(learned) + rng.integers(1, 4, (size, learned)),
                                      learned)  # fmt: skip
    # the reference, with the model's weights before the step (the target's too)
    states = [batch.states[:, :16], batch.states[:, 16:]]
    if burn_in:
        burned = model([batch.frames[:, :burn_in], *states])
        _, h, c = (keras.ops.convert_to_numpy(x) for x in burned)
        keep = batch.fresh[:, None] > 0
        states = [np.where(keep, states[0], h), np.where(keep, states[1], c)]
    q_all = keras.ops.convert_to_numpy(model([batch.frames[:, burn_in:], *states])[0])
    q = q_all[:, :learned]
    at = np.take_along_axis(q_all, batch.bootstrap[..., None].astype(int), axis=1)
    best = at.argmax(-1)  # same network: Double DQN picks and evaluates alike here
    target = batch.rewards + batch.discounts * np.take_along_axis(at, best[..., None], -1)[..., 0]
    y = q.copy()
    a = batch.actions.astype(int)
    np.put_along_axis(y, a[..., None], target[..., None], -1)
    expected = keras.ops.convert_to_numpy(
        keras.losses.Huber()(y.reshape(-1, 3), q.reshape(-1, 3), batch.weights.reshape(-1))
    )
    losses, q_act, _ = learner.step(buffers, 1)
    np.testing.assert_allclose(losses[0], expected, rtol=2e-4)
    assert q_act.shape == (1, 3)


# -- training -------------------------------------------------------------------


@pytest.mark.parametrize(
    "game, kwargs",
    [
        (Catch(seed=0), {"nb_epoch": 12, "nb_parallel": 3, "target_update": 20,
                         "double_dqn": True, "n_step": 3}),
        (VectorCatch(4, seed=0), {"total_timesteps": 300, "target_update_interval": 100}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("prioritized", [False, True])
def test_recurrent_agent_trains_evaluates_and_acts(tmp_path, game, kwargs, prioritized):
    memory = SequenceReplay(2000, sequence_length=6, burn_in=2, overlap=3,
                            prioritized=prioritized, seed=0)  # fmt: skip
    agent = Agent(make_recurrent(), memory=memory, seed=0)
    history = agent.train(game, batch_size=8, epsilon=0.3, verbose=0, learning_starts=20,
                          train_freq=2, **kwargs)  # fmt: skip
    assert np.isfinite(history.history["loss"][-1]) and len(agent.memory) > 0
    result = agent.evaluate(Catch(seed=1), nb_games=4, nb_parallel=2)
    assert 0.0 <= result["win_rate"] <= 1.0
    # act() carries the state as evaluation does: one game, move by move
    play = Catch(seed=5)
    state = agent.initial_state()
    moves = []
    while not play.is_over():
        action, state = agent.act(play.get_frame(), state)
        moves.append(action)
        play.play(action)
    # saving keeps the model, the memory and the greedy moves
    agent.save(tmp_path / "agent", include_memory=True)
    loaded = Agent.load(tmp_path / "agent")
    assert isinstance(loaded.memory, SequenceReplay) and len(loaded.memory) == len(agent.memory)
    again = Catch(seed=5)
    state = loaded.initial_state()
    for move in moves:
        action, state = loaded.act(again.get_frame(), state)
        assert action == move
        again.play(action)


class _NoLeftCatch(Catch):
    """Catch where moving left (action 0) is never possible."""

    def get_possible_actions(self):
        return [1, 2]


def test_recurrent_agent_keeps_to_the_possible_actions():
    memory = SequenceReplay(1000, sequence_length=6, burn_in=2, overlap=3, seed=0)
    agent = Agent(make_recurrent(), memory=memory, seed=0)
    agent.train(_NoLeftCatch(seed=0), nb_epoch=8, batch_size=4, epsilon=0.5, verbose=0,
                learning_starts=10, nb_parallel=2)  # fmt: skip
    buffers = SequenceBuffers(1, 64, 1, 6, 4, (10, 10), np.float32, 16, 3, True)
    batch = buffers.batches[0]
    agent.memory._sample_into(batch, 0.9)
    assert set(np.unique(batch.actions[batch.weights > 0])) <= {1.0, 2.0}
    rows = {tuple(row) for row in batch.next_mask.reshape(-1, 3).tolist()}
    assert rows <= {(0.0, 1.0, 1.0), (0.0, 0.0, 0.0)}  # none possible after a game over
    assert agent.play(_NoLeftCatch(seed=1), nb_epoch=2, visualize=False, verbose=0) >= 0.0


def _run_with_checkpoints(path, resume=False, stop_at=None):
    from test_frame_parts import _StopAt

    memory = SequenceReplay(500, sequence_length=6, burn_in=2, overlap=3, prioritized=True, seed=0)
    agent = Agent(make_recurrent(nb_actions=5, seed=0), memory=memory, seed=0)
    agent.train(  # Snake's games end at different steps: checkpoints come mid-game
        Snake(seed=0), nb_epoch=10, batch_size=4, nb_parallel=3, n_step=2, target_update=10,
        double_dqn=True, epsilon=0.3, checkpoint=4, checkpoint_path=str(path), resume=resume,
        verbose=0, callbacks=[_StopAt(stop_at)] if stop_at else None,
    )  # fmt: skip
    return agent


def test_a_killed_recurrent_run_resumes_to_the_same_weights(tmp_path):
    whole = _run_with_checkpoints(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        _run_with_checkpoints(tmp_path / "cut", stop_at=6)
    resumed = _run_with_checkpoints(tmp_path / "cut", resume=True)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("game", [Catch(seed=0), VectorCatch(3, seed=0)], ids=["plain", "vector"])
def test_stored_states_are_the_states_the_agent_played_with(game):
    """With the weights fixed (no learning yet), unrolling a sequence's frames from its
    stored state for one period gives the next sequence's stored state."""
    length, burn_in, overlap = 7, 2, 3
    memory = SequenceReplay(5000, sequence_length=length, burn_in=burn_in, overlap=overlap)
    agent = Agent(make_recurrent(core="lstm"), memory=memory, seed=0)
    kwargs = {"nb_parallel": 2} if isinstance(game, Catch) else {}
    agent.train(game, total_timesteps=200, learning_starts=10_000, epsilon=0.5, verbose=0,
                **kwargs)  # fmt: skip
    period, size = memory.period, memory._size
    first = {int(memory._slots[i, 0]): i for i in range(size) if not memory._fresh[i]}
    checked = 0
    for i in range(size):
        fresh = bool(memory._fresh[i])
        start = burn_in if fresh else 0  # a fresh sequence's real frames start after padding
        j = first.get(int(memory._slots[i, period]))
        if j is None or memory._lengths[i] < memory.learned:
            continue
        frames = memory._frames[memory._slots[i, start:period]][None].astype(np.float32)
        state = memory._states[i][None]
        _, h, c = agent.model([frames, state[:, :16], state[:, 16:]])
        after = np.concatenate([keras.ops.convert_to_numpy(h), keras.ops.convert_to_numpy(c)], -1)
        np.testing.assert_allclose(after[0], memory._states[j], rtol=1e-4, atol=1e-5)
        checked += 1
    assert checked >= 10


def test_one_compiled_call_a_move_for_all_copies(monkeypatch):
    from qlearning4k._internals import SequenceLearner

    memory = SequenceReplay(1000, sequence_length=6, burn_in=2, overlap=3, seed=0)
    agent = Agent(make_recurrent(), memory=memory, seed=0)
    calls, act = [], SequenceLearner.act

    def counted(self, frames, states):
        calls.append(len(frames))
        return act(self, frames, states)

    monkeypatch.setattr(SequenceLearner, "act", counted)
    agent.train(VectorCatch(4, seed=0), total_timesteps=4 * 30, learning_starts=10_000,
                epsilon=0.5, verbose=0)  # fmt: skip
    assert calls == [4] * 30  # one call of all 4 copies a move, random moves too


def test_sequence_priorities_mix_max_and_mean_of_played_steps():
    memory = SequenceReplay(1000, sequence_length=6, burn_in=2, overlap=3, prioritized=True,
                            alpha=1.0, eta=0.9, seed=0)  # fmt: skip
    _play(memory, [3, 20], ["terminal", "terminal"])
    short = next(i for i in range(memory._size) if memory._lengths[i] < memory.learned)
    played = int(memory._lengths[short])
    td = np.full((1, memory.learned), 100.0)  # padding's errors: ignored
    td[0, :played] = np.arange(1, played + 1)
    memory.update_priorities([short], td.ravel())
    expected = 0.9 * played + 0.1 * np.mean(np.arange(1, played + 1)) + 1e-6
    np.testing.assert_allclose(memory._tree.nodes[memory._tree.size + short], expected)
