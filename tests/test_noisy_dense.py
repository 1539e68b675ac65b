"""NoisyDense: factorised noise, saving, and when the agent draws noise."""

import keras
import numpy as np
import pytest
from conftest import StopAfter

from qlearning4k import C51, Agent, NoisyDense, PrioritizedExperienceReplay, dueling
from qlearning4k._internals import counter_normal, reseed
from qlearning4k.games import Catch

IN, UNITS = 5, 4


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _layer(**kwargs):
    layer = NoisyDense(UNITS, seed=3, **kwargs)
    layer.build((None, IN))
    return layer


def _noise_state(model):
    return [_numpy(layer.seed_generator.state.value).tolist() for layer in _noisy_layers(model)]


def _noisy_layers(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, NoisyDense)]


def _catch_model(hidden=64, noisy_output=True):
    last = NoisyDense(3, seed=1) if noisy_output else keras.layers.Dense(3)
    model = keras.Sequential([
        keras.Input((1, 10, 10)),
        keras.layers.Flatten(),
        keras.layers.Dense(hidden, activation="relu"),
        last,
    ])  # fmt: skip
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def test_the_noise_is_factorised_and_shared_by_the_batch():
    layer = _layer()
    # Rows: zeros (the bias alone), then each input alone: the noisy kernel row by row.
    x = np.concatenate([np.zeros((1, IN)), np.eye(IN)]).astype(np.float32)
    y = _numpy(layer(x, training=True))
    mu_w, sigma_w = _numpy(layer.kernel_mu), _numpy(layer.kernel_sigma)
    mu_b, sigma_b = _numpy(layer.bias_mu), _numpy(layer.bias_sigma)
    bias, kernel = y[0], y[1:] - y[0]
    noise_out = (bias - mu_b) / sigma_b  # f(e_out)
    noise = (kernel - mu_w) / sigma_w  # f(e_in) f(e_out)^T: rank one
    noise_in = noise[:, 0] / noise_out[0]
    np.testing.assert_allclose(noise, np.outer(noise_in, noise_out), rtol=1e-4, atol=1e-5)
    assert np.linalg.matrix_rank(noise, tol=1e-4) == 1
    # f(x) = sign(x) sqrt(|x|) of Gaussian draws: none is 0, and not all alike.
    assert np.all(np.abs(noise_in) > 0) and np.std(noise_in) > 0
    # A second call draws new noise; inference mode is the Dense layer of the means.
    assert not np.allclose(_numpy(layer(x, training=True)), y)
    x = np.random.default_rng(0).normal(size=(3, IN)).astype(np.float32)
    np.testing.assert_allclose(_numpy(layer(x)), x @ mu_w + mu_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_numpy(layer(x, training=False)), x @ mu_w + mu_b, rtol=1e-5)


@pytest.mark.parametrize("sigma0, use_bias", [(0.5, True), (0.1, False), (0.0, True)])
def test_initial_weights_follow_the_paper(sigma0, use_bias):
    layer = _layer(sigma0=sigma0, use_bias=use_bias)
    bound = 1 / np.sqrt(IN)
    assert np.all(np.abs(_numpy(layer.kernel_mu)) <= bound)
    np.testing.assert_allclose(_numpy(layer.kernel_sigma), sigma0 * bound, rtol=1e-6)
    assert len(layer.trainable_weights) == (4 if use_bias else 2)
    x = np.ones((2, IN), np.float32)
    if sigma0 == 0.0:  # no noise at all
        np.testing.assert_allclose(_numpy(layer(x, training=True)), _numpy(layer(x)), rtol=1e-6)


def test_the_same_seed_gives_the_same_weights_and_noise():
    x = np.ones((2, IN), np.float32)
    a, b, c = _layer(), _layer(), NoisyDense(UNITS, seed=4)
    c.build((None, IN))
    np.testing.assert_array_equal(_numpy(a(x, training=True)), _numpy(b(x, training=True)))
    assert not np.allclose(_numpy(a.kernel_mu), _numpy(c.kernel_mu))


def test_saves_and_loads_as_keras_with_its_noise_state(tmp_path):
    model = _catch_model()
    x = np.random.default_rng(0).integers(0, 2, (4, 1, 10, 10)).astype(np.float32)
    model(x, training=True)  # moves the noise generator on
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[-1], NoisyDense)
    assert loaded.layers[-1].get_config() == model.layers[-1].get_config()
    assert _noise_state(loaded) == _noise_state(model)
    np.testing.assert_allclose(_numpy(loaded(x)), _numpy(model(x)), rtol=1e-6)
    np.testing.assert_allclose(
        _numpy(loaded(x, training=True)), _numpy(model(x, training=True)), rtol=1e-6
    )


def test_training_draws_noise_at_each_gradient_step_and_acting_call():
    model = _catch_model()
    agent = Agent(model, memory_size=500, seed=0)
    history = agent.train(Catch(seed=0), nb_epoch=10, batch_size=8, epsilon=0.0, verbose=0)
    # One draw a call in training mode: the first move's Q-values, then at each
    # env step one gradient step (its sampled states) and the next move's Q-values.
    steps = int(np.sum(history.history["steps"]))
    assert _noise_state(model)[0][1] == 1 + 2 * steps


def test_evaluation_acts_on_the_means_unless_asked():
    model = _catch_model()
    agent = Agent(model, memory_size=500, seed=0)
    agent.train(Catch(seed=0), nb_epoch=5, batch_size=8, epsilon=0.0, verbose=0)
    before = _noise_state(model)
    first = agent.evaluate(Catch(), nb_games=20, seed=0)
    states = np.random.default_rng(0).integers(0, 2, (6, 1, 10, 10)).astype(np.float32)
    agent.act(states), agent.play(Catch(seed=0), nb_epoch=2, visualize=False, verbose=0)
    np.testing.assert_allclose(agent.q_values(states), _numpy(model(states)), rtol=1e-5)
    assert _noise_state(model) == before  # nothing drew noise
    assert (
        agent.evaluate(Catch(), nb_games=20, seed=0)["scores"].tolist() == first["scores"].tolist()
    )
    noisy = agent.evaluate(Catch(), nb_games=20, seed=0, noisy=True)
    # The 20 games side by side: one call (one draw) a step; Catch games all last 9.
    assert noisy["mean_steps"] == 9
    assert _noise_state(model)[0][1] == before[0][1] + 9
    with pytest.raises(TypeError, match="noisy must be a bool"):
        agent.evaluate(Catch(), nb_games=2, noisy="yes")


def test_exact_resume_draws_the_same_noise(tmp_path):
    def run(**kwargs):
        keras.utils.set_random_seed(0)
        agent = Agent(_catch_model(), seed=0, memory=PrioritizedExperienceReplay(500, seed=1))
        agent.train(Catch(seed=0), batch_size=8, target_update=5, double_dqn=True,
                    epsilon=0.0, verbose=0, **kwargs)  # fmt: skip
        return agent

    whole = run(nb_epoch=20)
    path = tmp_path / "checkpoint"
    run(nb_epoch=20, checkpoint=10, checkpoint_path=path, callbacks=[StopAfter(10)])
    resumed = Agent.load(path)
    resumed.train(Catch(seed=0), nb_epoch=20, batch_size=8, target_update=5, double_dqn=True,
                  epsilon=0.0, verbose=0, resume=True, checkpoint_path=path)  # fmt: skip
    assert _noise_state(resumed.model) == _noise_state(whole.model)
    for x, y in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)


def test_a_dueling_head_of_noisy_streams_saves_and_loads(tmp_path):
    body = keras.Sequential([keras.Input((1, 10, 10)), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation="relu")])  # fmt: skip
    model = dueling(body, nb_actions=3, units=8, nb_atoms=5, noisy=True)
    assert len(_noisy_layers(model)) == 4  # each stream's hidden and output layers
    assert model.output.shape == (None, 15)
    model.compile(keras.optimizers.Adam(1e-3))
    agent = Agent(model, seed=0, distribution=C51(nb_atoms=5, v_min=-1.0, v_max=1.0))
    agent.train(Catch(seed=0), nb_epoch=3, batch_size=8, epsilon=0.0, verbose=0)
    agent.save(tmp_path / "saved")
    loaded = Agent.load(tmp_path / "saved")
    states = np.random.default_rng(0).integers(0, 2, (5, 1, 10, 10)).astype(np.float32)
    np.testing.assert_allclose(loaded.q_values(states), agent.q_values(states), rtol=1e-6)
    assert _noise_state(loaded.model) == _noise_state(model)
    plain = dueling(body, nb_actions=3)
    assert not _noisy_layers(plain)


@pytest.mark.parametrize("rainbow", [False, True], ids=["noisy-dqn", "rainbow"])
def test_noisy_networks_learn_catch_without_epsilon(rainbow):
    if rainbow:  # all six parts: noisy dueling C51 head, Double DQN, 3-step returns, PER
        body = keras.Sequential([keras.Input((1, 10, 10)), keras.layers.Flatten(),
                                 keras.layers.Dense(100, activation="relu")])  # fmt: skip
        model = dueling(body, nb_actions=3, nb_atoms=11, noisy=True)
        model.compile(keras.optimizers.Adam(2e-3))
        agent = Agent(model, memory=PrioritizedExperienceReplay(2000, seed=0), seed=0,
                      distribution=C51(nb_atoms=11, v_min=-1.0, v_max=1.0))  # fmt: skip
        options = {"target_update": 50, "double_dqn": True, "n_step": 3, "nb_epoch": 500}
    else:
        agent, options = Agent(_catch_model(), memory_size=2000, seed=0), {"nb_epoch": 300}
    agent.train(Catch(seed=0), batch_size=32, epsilon=0.0, verbose=0, **options)
    # Untrained, the greedy policy wins 0.2 to 0.3 of the games.
    assert agent.evaluate(Catch(), nb_games=100, seed=0)["win_rate"] >= 0.8


def test_reseeding_gives_model_copies_their_own_noise():
    x = np.ones((2, 1, 10, 10), np.float32)
    a, b = _catch_model(), _catch_model()
    b.set_weights(a.get_weights())
    reseed(a, 1), reseed(b, 2)
    assert _noise_state(a) != _noise_state(b)
    assert not np.allclose(_numpy(a(x, training=True)), _numpy(b(x, training=True)))
    reseed(a, 1), reseed(b, 1)
    np.testing.assert_allclose(_numpy(a(x, training=True)), _numpy(b(x, training=True)), rtol=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the generator of NoisyDense on PyTorch"
)
@pytest.mark.parametrize("seed", [(0, 0), (12345, 7), (-5, 2**30)])
def test_the_counter_generator_draws_standard_normals(seed):
    def draws(seed, size=100_000):
        return _numpy(counter_normal(size, np.array(seed, np.int32), "float32"))

    x = draws(seed)
    assert abs(x.mean()) < 0.015 and abs(x.std() - 1) < 0.015  # 4.7 standard errors
    assert abs(np.mean(np.abs(x) > 1.96) - 0.05) < 0.004
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.015  # neighbours independent
    np.testing.assert_array_equal(draws(seed, 10), draws(seed, 10))  # a function of the seed
    moved = draws((seed[0], seed[1] + 1))  # the generator's next state
    assert abs(np.corrcoef(x, moved)[0, 1]) < 0.015
    assert not np.array_equal(draws((seed[0] + 1, seed[1]), 10), draws(seed, 10))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"units": 0}, ValueError, "units must be positive. Received: units=0"),
        ({"units": 2.5}, TypeError, "units must be an int"),
        ({"units": 2, "sigma0": -0.1}, ValueError, "sigma0 to be finite and >= 0"),
        ({"units": 2, "sigma0": float("nan")}, ValueError, "sigma0 to be finite"),
        ({"units": 2, "sigma0": "big"}, TypeError, "sigma0 to be a number"),
        ({"units": 2, "seed": 1.5}, TypeError, "seed must be an int or None"),
    ],
)
def test_bad_noisy_dense_input_is_a_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        NoisyDense(**kwargs)


def test_dueling_rejects_a_non_bool_noisy():
    body = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    with pytest.raises(TypeError, match="noisy must be a bool"):
        dueling(body, nb_actions=2, noisy=1)
