"""ExperienceReplay: ring buffer, frame sharing, sampling and vectorized targets."""

import keras
import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, Batch, ExperienceReplay, Memory
from qlearning4k._internals import FrameOnceStates, NStep, StepBatch
from qlearning4k.games import Catch, VectorCatch


def _episode(nb_frames, length, frame_shape=(3, 4), start=0, dtype=np.uint8):
    """States of one stacked-frame episode: the first frame repeated, then shifted."""
    frames = [np.full(frame_shape, start + i, dtype=dtype) for i in range(length + 1)]
    stack = [frames[0]] * nb_frames
    states = []
    for frame in frames[1:]:
        next_stack = stack[1:] + [frame]
        states.append((np.stack(stack)[None], np.stack(next_stack)[None]))
        stack = next_stack
    return states


def _all_transitions(memory):
    """Every stored transition, oldest first, through sample()'s reconstruction."""
    order = memory._chronological()
    states, nexts = memory._transitions(order)
    return states, memory._actions[order], memory._rewards[order], nexts


def _streams(rng, nb_frames, copies, moves, frame_shape=(3, 4), p_end=0.15):
    """`moves` batches of (s, s_prime, game_over) of `copies` games played side
    by side, stacked as the agent stacks them, each game restarting when it ends."""

    def first():
        return [rng.integers(0, 256, frame_shape, dtype=np.uint8)] * nb_frames

    stacks = [first() for _ in range(copies)]
    for _ in range(moves):
        nexts = [st[1:] + [rng.integers(0, 256, frame_shape, dtype=np.uint8)] for st in stacks]
        over = rng.random(copies) < p_end
        yield np.stack([np.stack(x) for x in stacks]), np.stack([np.stack(x) for x in nexts]), over
        stacks = [first() if o else x for x, o in zip(nexts, over, strict=True)]


def test_ring_buffer_overwrites_the_oldest():
    memory = ExperienceReplay(memory_size=3, seed=0)
    for i, (s, s2) in enumerate(_episode(2, 5)):
        memory.remember(s, i % 3, float(i), s2, i == 4)
    assert len(memory) == 3 and memory.capacity == 3
    states, actions, rewards, _ = _all_transitions(memory)
    assert rewards.tolist() == [2.0, 3.0, 4.0]
    assert actions.tolist() == [2, 0, 1]
    assert states[0, -1, 0, 0] == 2


def test_unbounded_memory_grows_and_keeps_everything():
    memory = ExperienceReplay(memory_size=-1, seed=0)
    total = 0
    for episode in range(300):
        for s, s2 in _episode(1, 9, start=episode % 100):
            memory.remember(s, 1, float(total), s2, False)
            total += 1
    assert len(memory) == total == 2700
    assert memory.capacity >= total
    assert _all_transitions(memory)[2].tolist() == list(map(float, range(total)))


def test_batched_remember_equals_one_by_one():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, (7, 2, 3, 3)).astype(np.uint8)
    s2 = np.concatenate([s[:, 1:], rng.integers(0, 5, (7, 1, 3, 3)).astype(np.uint8)], axis=1)
    s2[3] = 9  # one s_prime that is not s shifted
    a, r, over = rng.integers(0, 4, 7), rng.normal(size=7), rng.random(7) < 0.3
    one, many = ExperienceReplay(5, seed=0), ExperienceReplay(5, seed=0)
    for i in range(7):
        one.remember(s[i : i + 1], a[i], r[i], s2[i : i + 1], over[i])
    many.remember(s, a, r, s2, over)
    for x, y in zip(_all_transitions(one), _all_transitions(many), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("nb_frames", [1, 2, 4])
def test_stacked_states_come_back_exactly(nb_frames):
    memory = ExperienceReplay(memory_size=-1, seed=0)
    expected = []
    for episode in range(4):
        for s, s2 in _episode(nb_frames, 6, start=10 * episode):
            memory.remember(s, 0, 0.0, s2, False)
            expected.append((s[0], s2[0]))
    # A user's own s_prime that does not continue s is kept whole.
    odd = np.full((1, nb_frames, 3, 4), 200, dtype=np.uint8)
    memory.remember(odd - 1, 0, 0.0, odd, True)
    expected.append((odd[0] - 1, odd[0]))
    states, _, _, nexts = _all_transitions(memory)
    np.testing.assert_array_equal(states, np.stack([e[0] for e in expected]))
    np.testing.assert_array_equal(nexts, np.stack([e[1] for e in expected]))
    if nb_frames > 1:  # each frame once: 7 a game, and one for each odd stack
        assert memory._layout.written == 4 * 7 + 2


@pytest.mark.parametrize(
    ("nb_frames", "copies", "memory_size"),
    [(2, 1, 5), (4, 1, 50), (4, 3, 7), (4, 3, 200), (3, 4, -1), (4, 16, 40), (1, 3, 20)],
)
def test_frames_stored_once_rebuild_every_state_of_interleaved_games(
    nb_frames, copies, memory_size
):
    rng = np.random.default_rng(nb_frames * 100 + copies)
    memory = ExperienceReplay(memory_size, seed=0)
    seen = []
    for s, s2, over in _streams(rng, nb_frames, copies, 150):
        memory.remember(s, 1, 0.0, s2, over)
        seen += zip(s, s2, strict=True)
    seen = seen[-len(memory) :]
    states, _, _, nexts = _all_transitions(memory)
    np.testing.assert_array_equal(states, np.stack([x for x, _ in seen]))
    np.testing.assert_array_equal(nexts, np.stack([y for _, y in seen]))
    batch = memory.sample(64)  # and what sample() rebuilds is among them
    pairs = {(x.tobytes(), y.tobytes()) for x, y in seen}
    rebuilt = zip(batch.states, batch.next_states, strict=True)
    assert all((x.tobytes(), y.tobytes()) in pairs for x, y in rebuilt)


def test_shifted_states_share_frames_as_n_step_transitions_do():
    # n-step: s is the previous s shifted by one frame, s_prime lies n moves ahead.
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (40, 2, 2), dtype=np.uint8)
    memory, n = ExperienceReplay(100, seed=0), 3
    stacks = [frames[max(0, t - 3) : t + 1] for t in range(40)]
    stacks = [np.concatenate([st[:1]] * (4 - len(st)) + [st]) for st in stacks]
    for t in range(40 - n):
        memory.remember(stacks[t][None], 0, 0.0, stacks[t + n][None], False)
    states, _, _, nexts = _all_transitions(memory)
    np.testing.assert_array_equal(states, np.stack(stacks[: 40 - n]))
    np.testing.assert_array_equal(nexts, np.stack(stacks[n:]))
    assert memory._layout.written <= 2 * (40 - n) + 4  # two frames a transition, not eight


def test_frame_ring_grows_rather_than_lose_a_frame_in_use():
    # One-move games: two frames a transition, more than the ring first holds.
    rng = np.random.default_rng(0)
    memory = ExperienceReplay(64, seed=0)
    seen = []
    for s, s2, over in _streams(rng, 4, 2, 300, p_end=1.0):
        memory.remember(s, 0, 0.0, s2, over)
        seen += zip(s, s2, strict=True)
    assert len(memory._layout.frames) >= 2 * 64
    states, _, _, nexts = _all_transitions(memory)
    np.testing.assert_array_equal(states, np.stack([x for x, _ in seen[-64:]]))
    np.testing.assert_array_equal(nexts, np.stack([y for _, y in seen[-64:]]))


@pytest.mark.parametrize("memory_size", [30, 12])
def test_frame_once_memory_saves_and_restores_exactly(memory_size):
    rng = np.random.default_rng(4)
    memory = ExperienceReplay(30, seed=0)
    for s, s2, over in _streams(rng, 4, 2, 50):
        memory.remember(s, 2, 1.0, s2, over)
    restored = ExperienceReplay(memory_size, seed=0)
    restored._set_state(memory._get_state())
    for x, y in zip(_all_transitions(restored), _all_transitions(memory), strict=True):
        np.testing.assert_array_equal(x, y[-memory_size:])
    for s, s2, over in _streams(rng, 4, 2, 50):  # and it goes on storing
        memory.remember(s, 2, 1.0, s2, over)
        restored.remember(s, 2, 1.0, s2, over)
    for x, y in zip(_all_transitions(restored), _all_transitions(memory), strict=True):
        np.testing.assert_array_equal(x, y[-memory_size:])


def test_sample_is_seeded_and_uniform_over_stored():
    def draw(seed):
        memory = ExperienceReplay(50, seed=seed)
        for i, (s, s2) in enumerate(_episode(1, 40)):
            memory.remember(s, 0, float(i), s2, False)
        return memory.sample(4000)

    batch = draw(1)
    assert isinstance(batch, Batch)
    np.testing.assert_array_equal(batch.rewards, draw(1).rewards)
    counts = np.bincount(batch.rewards.astype(int), minlength=40)
    assert counts.min() > 50 and counts.max() < 160
    assert batch.states.dtype == np.uint8 and batch.states.shape == (4000, 1, 3, 4)
    np.testing.assert_array_equal(batch.next_states[:, 0, 0, 0], batch.states[:, 0, 0, 0] + 1)


@pytest.mark.parametrize("nb_frames", [1, 3])
def test_sample_into_call_arrays_equals_sample(nb_frames):
    def filled(seed):
        memory = ExperienceReplay(40, seed=seed)
        for episode in range(5):
            for s, s2 in _episode(nb_frames, 5, start=7 * episode):
                memory.remember(s, episode % 3, float(episode), s2, episode == 4)
        odd = np.full((1, nb_frames, 3, 4), 99, dtype=np.uint8)
        memory.remember(odd - 1, 1, 0.5, odd, True)  # one s_prime kept whole
        return memory

    batch = filled(5).sample(64)
    states = np.zeros((64, nb_frames, 3, 4), np.uint8)
    next_states = np.zeros_like(states)
    floats = np.zeros((64, 4), np.float32)
    into = StepBatch(states, next_states, *floats.T, next_mask=None)
    idx = filled(5)._sample_into(into, gamma=0.5)
    np.testing.assert_array_equal(idx, batch.indices)
    np.testing.assert_array_equal(states, batch.states)
    np.testing.assert_array_equal(next_states, batch.next_states)
    discount = 0.5 * ~batch.game_over
    np.testing.assert_array_equal(floats.T, [batch.actions, batch.rewards, discount, np.ones(64)])


def test_snake_transition_fits_in_200_bytes():
    memory = ExperienceReplay(memory_size=1000, seed=0)
    for s, s2 in _episode(4, 3, frame_shape=(10, 10)):
        memory.remember(s, 4, 1.0, s2, False)
    per_transition = memory.nbytes / memory.capacity
    assert per_transition <= 200  # two whole float64 states: 6,400


def test_84x84_frames_stacked_4_deep_take_under_7300_bytes_a_transition():
    rng = np.random.default_rng(0)
    memory = ExperienceReplay(memory_size=4096, seed=0)
    stack = [rng.integers(0, 256, (84, 84), dtype=np.uint8)] * 4
    for move in range(5000):  # games of 200 moves; the ring wraps
        nexts = stack[1:] + [rng.integers(0, 256, (84, 84), dtype=np.uint8)]
        memory.remember(np.stack(stack)[None], 0, 0.0, np.stack(nexts)[None], False)
        stack = [nexts[-1]] * 4 if move % 200 == 199 else nexts
    assert memory.nbytes / memory.capacity <= 7300
    assert np.array_equal(memory._transitions([memory._cursor - 1])[1][0], np.stack(nexts))


def test_memory_size_setter_keeps_the_newest_and_reset_frees():
    memory = ExperienceReplay(10, seed=0)
    for i, (s, s2) in enumerate(_episode(1, 8)):
        memory.remember(s, 0, float(i), s2, False)
    memory.memory_size = 4
    assert len(memory) == 4 and _all_transitions(memory)[2].tolist() == [4.0, 5.0, 6.0, 7.0]
    memory.memory_size = -1
    s, s2 = _episode(1, 1, start=50)[0]
    memory.remember(s, 0, 9.0, s2, True)
    assert len(memory) == 5
    memory.reset_memory()
    assert len(memory) == 0 and memory.nbytes == 0
    s = np.zeros((1, 2, 5), dtype=np.float32)  # another shape after a reset is fine
    memory.remember(s, 0, 0.0, s, True)
    assert len(memory) == 1


def _reference_targets(model, batch, gamma):
    """Slow per-sample Q-targets, written the plain way."""
    targets = []
    for s, a, r, s2, over in zip(*batch[:5], strict=True):
        q = keras.ops.convert_to_numpy(model(s[None].astype("float32")))[0]
        q_next = keras.ops.convert_to_numpy(model(s2[None].astype("float32")))[0]
        q[a] = r if over else r + gamma * q_next.max()
        targets.append(q)
    return np.stack(targets)


@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
def test_get_batch_targets_match_a_per_sample_reference(gamma):
    model = make_model(nb_frames=2, frame_shape=(3, 4), nb_actions=4)
    memory = ExperienceReplay(100, seed=3)
    rng = np.random.default_rng(0)
    for start in range(0, 60, 6):
        for s, s2 in _episode(2, 6, start=start):
            memory.remember(s, rng.integers(4), rng.normal(), s2, rng.random() < 0.3)
    inputs, targets = memory.get_batch(model, batch_size=16, gamma=gamma)
    memory.rng = np.random.default_rng(3)  # the same draw again
    batch = memory.sample(16)
    assert inputs.dtype == np.float32 and inputs.shape == (16, 2, 3, 4)
    np.testing.assert_array_equal(inputs, batch.states.astype(np.float32))
    np.testing.assert_allclose(targets, _reference_targets(model, batch, gamma), rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ExperienceReplay(0), ValueError, "memory_size"),
        (lambda: ExperienceReplay(-2), ValueError, "memory_size"),
        (lambda: ExperienceReplay(1.5), TypeError, "memory_size"),
        (lambda: ExperienceReplay().sample(4), ValueError, "empty"),
        (lambda: _filled().sample(0), ValueError, "batch_size"),
        (
            lambda: _filled().remember(np.zeros((1, 1, 2, 2)), 0, 0.0, np.zeros((1, 1, 2, 2)), 0),
            ValueError,
            "shape",
        ),
        (
            lambda: _filled().remember(
                np.zeros((1, 1, 3, 4)), 0, np.nan, np.zeros((1, 1, 3, 4)), 0
            ),
            ValueError,
            "finite",
        ),
        (
            lambda: _filled().remember(np.zeros((1, 3, 4)), 0, 0.0, np.zeros((1, 2, 4)), 0),
            ValueError,
            "shape",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _filled():
    memory = ExperienceReplay(10, seed=0)
    s, s2 = _episode(1, 1)[0]
    memory.remember(s, 0, 0.0, s2, False)
    return memory


def test_memory_contract_says_what_to_implement():
    class Empty(Memory):
        pass

    with pytest.raises(NotImplementedError, match="remember"):
        Empty().remember(None, 0, 0, None, False)
    with pytest.raises(NotImplementedError, match="get_batch"):
        Empty().get_batch(None, 1)


class _Recording(ExperienceReplay):
    """Remembers as ExperienceReplay does, and keeps a copy of every transition."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def remember(self, s, a, r, s_prime, game_over, steps=1, next_mask=None):
        self.seen += zip(np.array(s), np.array(s_prime), strict=True)
        super().remember(s, a, r, s_prime, game_over, steps=steps, next_mask=next_mask)


@pytest.mark.parametrize(
    ("game", "nb_parallel", "n_step", "frames_each"),
    [("Catch", 1, 1, 1.3), ("Catch", 3, 1, 1.3), ("Catch", 2, 3, 1.3), ("VectorCatch", 1, 3, 1.3)],
)
def test_states_rebuilt_from_frames_are_the_states_the_agent_saw(
    game, nb_parallel, n_step, frames_each
):
    # Frames a transition: one, and one more a game (9 moves of Catch), with
    # n-step returns too (whole states: 6).
    memory = _Recording(memory_size=50, seed=0)  # the ring wraps several times
    agent = Agent(make_model(nb_frames=3), memory=memory, seed=0)
    game = Catch(seed=0) if game == "Catch" else VectorCatch(4, seed=0)
    agent.train(game, nb_epoch=25, batch_size=8, nb_parallel=nb_parallel,
                n_step=n_step, verbose=0)  # fmt: skip
    assert isinstance(memory._layout, FrameOnceStates)
    states, _, _, nexts = _all_transitions(memory)
    np.testing.assert_array_equal(states, np.stack([x for x, _ in memory.seen[-50:]]))
    np.testing.assert_array_equal(nexts, np.stack([y for _, y in memory.seen[-50:]]))
    assert memory._layout.written <= frames_each * len(memory.seen)  # whole states: 6


def test_remember_one_equals_remember_on_stacked_frames():
    rng = np.random.default_rng(2)
    one, many = ExperienceReplay(20, seed=0), ExperienceReplay(20, seed=0)
    for t, (s, s2, over) in enumerate(_streams(rng, 4, 1, 60)):
        many.remember(s, 1, 0.5, s2, over)
        if t == 0:  # the first one allocates
            one.remember(s, 1, 0.5, s2, over)
        else:
            one._remember_one(s[0], 1, 0.5, s2[0], over[0])
    for x, y in zip(_all_transitions(one), _all_transitions(many), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_smaller_frame_once_memory_gives_back_its_frames():
    rng = np.random.default_rng(5)
    memory = ExperienceReplay(400, seed=0)
    for s, s2, over in _streams(rng, 4, 2, 300):
        memory.remember(s, 0, 0.0, s2, over)
    newest = _all_transitions(memory)
    memory.memory_size = 20
    assert len(memory._layout.frames) < 100 and memory.nbytes < 100 * 12 * 4 + 20 * 80
    for x, y in zip(_all_transitions(memory), newest, strict=True):
        np.testing.assert_array_equal(x, y[-20:])
    for s, s2, over in _streams(rng, 4, 2, 30):  # and it goes on
        memory.remember(s, 0, 0.0, s2, over)
    assert len(memory) == 20


def _n_step_run(rng, copies, n, memory, moves, nb_frames=4):
    """Plays `_streams` through the agent's n-step bookkeeping into `memory`."""
    nstep = NStep(n, 0.9, copies, (nb_frames, 3, 4), np.uint8)
    playing = np.arange(copies)
    for s, s2, over in _streams(rng, nb_frames, copies, moves):
        actions, rewards = np.zeros(copies, np.int32), np.ones(copies, np.float32)
        nstep.add(memory, playing, (s, actions, rewards, s2, over, None), over)


def _distinct_frames(seen) -> int:
    return len({frame.tobytes() for pair in seen for stack in pair for frame in stack})


@pytest.mark.parametrize(
    ("copies", "n", "memory_size"),
    [(1, 3, 40), (4, 3, 30), (4, 2, 7), (16, 3, 200), (3, 5, -1), (8, 3, 12)],
)
def test_n_step_transitions_store_each_frame_about_once_and_rebuild_exactly(copies, n, memory_size):
    # Game copies end their games at different steps, so the rows of a store
    # are not the rows of the last: frames are found by content.
    memory = _Recording(memory_size, seed=0)
    _n_step_run(np.random.default_rng(copies * 10 + n), copies, n, memory, 150)
    seen = memory.seen[-len(memory) :]
    states, _, _, nexts = _all_transitions(memory)
    np.testing.assert_array_equal(states, np.stack([x for x, _ in seen]))
    np.testing.assert_array_equal(nexts, np.stack([y for _, y in seen]))
    # Each frame about once (a hash table slot shared by two recent frames
    # costs a copy), against 2 to 5 a transition before frames were looked up.
    assert memory._layout.written <= 1.02 * _distinct_frames(memory.seen) + 4


def test_n_step_memory_restored_or_made_smaller_goes_on_exactly():
    rng = np.random.default_rng(7)
    memory = _Recording(60, seed=0)
    _n_step_run(rng, 4, 3, memory, 60)
    restored = ExperienceReplay(60, seed=0)  # its frame table starts empty
    restored._set_state(memory._get_state())
    smaller = ExperienceReplay(60, seed=0)
    smaller._set_state(memory._get_state())
    smaller.memory_size = 25  # gives back frames: numbers below the kept ones are gone
    state = rng.bit_generator.state
    for target in (memory, restored, smaller):
        rng.bit_generator.state = state
        _n_step_run(rng, 4, 3, target, 60)
    for other, size in ((restored, 60), (smaller, 25)):
        for x, y in zip(_all_transitions(other), _all_transitions(memory), strict=True):
            np.testing.assert_array_equal(x, y[-size:])
    np.testing.assert_array_equal(
        _all_transitions(memory)[0], np.stack([x for x, _ in memory.seen[-60:]])
    )


def test_a_frame_found_by_content_is_not_overwritten_by_the_rest_of_its_store():
    # A memory of one transition: the frames of the state the store reuses
    # (found by content) are no longer used by any stored transition, and
    # the new frames of its next state would wrap the ring over them.
    def stack(*values):
        return np.array([[np.full((2,), v, np.uint8) for v in values]])

    memory = ExperienceReplay(1, seed=0)
    memory.remember(stack(1, 2, 3, 4), 0, 0.0, stack(5, 6, 7, 8), False, steps=2)
    memory.remember(stack(9, 10, 11, 12), 0, 0.0, stack(13, 14, 15, 16), False, steps=2)
    memory.remember(stack(1, 2, 3, 4), 0, 0.0, stack(17, 18, 19, 20), False, steps=2)
    states, _, _, nexts = _all_transitions(memory)
    np.testing.assert_array_equal(states, stack(1, 2, 3, 4))
    np.testing.assert_array_equal(nexts, stack(17, 18, 19, 20))
