"""The PyTorch learner's traced graphs: the same numbers as the eager step, traced once.

On PyTorch the learner records each gradient step and acting call as one FX
graph (see `qlearning4k._learner._TorchLearner`); the eager step through
Keras stays as the fallback. These tests compare the two on twin models,
operation for operation, and check what the graphs must keep doing after
they are traced: read the variables anew at each call, fall back with a
warning where a model cannot be traced.
"""

import keras
import numpy as np
import pytest
from test_dqn_options import BATCH, NB_ACTIONS, STEPS, _call_buffers, _random_batches

from qlearning4k import Agent, dueling
from qlearning4k._internals import StepConfig
from qlearning4k.distributional import C51, QuantileRegression
from qlearning4k.games import Catch

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the traced PyTorch step"
)


def _body(kind: str, outputs: int) -> list:
    layers = {
        "mlp": [keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")],
        "batchnorm": [
            keras.layers.Flatten(),
            keras.layers.Dense(16),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
        ],
        "conv": [
            keras.layers.Reshape((10, 10, 1)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
        ],
    }[kind]
    return [keras.Input((1, 10, 10)), *layers, keras.layers.Dense(outputs)]


def _model(kind: str, optimizer, atoms: int = 1) -> keras.Model:
    if kind == "noisy":  # Rainbow's head: noisy dueling streams of distributions
        body = keras.Sequential(_body("mlp", 16)[:-1])
        model = dueling(body, NB_ACTIONS, units=8, nb_atoms=atoms, noisy=True)
    elif kind == "dueling":
        body = keras.Sequential(_body("mlp", 16)[:-1])
        model = dueling(body, NB_ACTIONS, units=8, nb_atoms=atoms)
    else:
        model = keras.Sequential(_body(kind, NB_ACTIONS * atoms))
    model.compile(optimizer, "huber")
    model.optimizer.build(model.trainable_variables)
    return model


CASES = {
    "mlp-sgd-plain": ("mlp", lambda: keras.optimizers.SGD(0.1, momentum=0.9), {}, None),
    "mlp-adam-target-double": (
        "mlp",
        lambda: keras.optimizers.Adam(1e-2),
        {"target_update": 2, "double_dqn": True},
        None,
    ),
    "mlp-rmsprop-masked-prioritized": (
        "mlp",
        lambda: keras.optimizers.RMSprop(1e-2),
        {"masked": True, "prioritized": True},
        None,
    ),
    "mlp-adamw-clipnorm-soft-target": (
        "mlp",
        lambda: keras.optimizers.AdamW(1e-2, clipnorm=0.5),
        {"target_update": 0.3},
        None,
    ),
    "batchnorm-adam": ("batchnorm", lambda: keras.optimizers.Adam(1e-2), {}, None),
    "conv-adam-target": (
        "conv",
        lambda: keras.optimizers.Adam(1e-2),
        {"target_update": 3},
        None,
    ),
    "dueling-adam": ("dueling", lambda: keras.optimizers.Adam(1e-2), {"double_dqn": True}, None),
    "c51-target-double-prioritized": (
        "mlp",
        lambda: keras.optimizers.Adam(1e-2),
        {"target_update": 2, "double_dqn": True, "prioritized": True},
        C51(nb_atoms=11, v_min=-2.0, v_max=2.0),
    ),
    "noisy-c51-rainbow": (
        "noisy",
        lambda: keras.optimizers.Adam(1e-2),
        {"target_update": 2, "double_dqn": True, "prioritized": True, "noisy": True},
        C51(nb_atoms=5, v_min=-2.0, v_max=2.0),
    ),
    "qr-masked": (
        "mlp",
        lambda: keras.optimizers.Adam(1e-2),
        {"masked": True},
        QuantileRegression(nb_quantiles=5),
    ),
}


def _learner(model, options, distribution, traced: bool):
    agent = Agent(model, seed=0, distribution=distribution)
    learner = agent._learner(StepConfig(batch_size=BATCH, max_steps=STEPS, **options))
    if not traced:
        learner._traces_learning = learner._traces_acting = False
    return learner


def _state(model) -> list[np.ndarray]:
    variables = model.trainable_variables + model.non_trainable_variables
    return [keras.ops.convert_to_numpy(v.value) for v in variables + model.optimizer.variables]


@pytest.mark.parametrize("script", [True, False], ids=["torchscript", "fx-graph"])
@pytest.mark.parametrize("case", list(CASES))
def test_traced_step_equals_the_eager_step(case, script, monkeypatch):
    """Five gradient steps in two calls, then an acting call, on twin models:
    losses, TD errors, Q-values, every variable (optimizer and noise states
    included) and the target network agree with the eager step's. In both
    forms of the graph: TorchScript, and the FX graph that runs where
    TorchScript cannot be made (here made to fail)."""
    import torch

    if not script:

        def fail(*args, **kwargs):
            raise RuntimeError("no TorchScript")

        monkeypatch.setattr(torch.jit, "script", fail)
    kind, optimizer, options, distribution = CASES[case]
    atoms = 1 if distribution is None else distribution.nb_atoms
    traced_model = _model(kind, optimizer(), atoms)
    eager_model = _model(kind, optimizer(), atoms)
    eager_model.set_weights(traced_model.get_weights())
    for mine, theirs in zip(  # noise generators' states too
        eager_model.non_trainable_variables, traced_model.non_trainable_variables, strict=True
    ):
        mine.assign(theirs.value)
    traced = _learner(traced_model, options, distribution, traced=True)
    eager = _learner(eager_model, options, distribution, traced=False)
    rng = np.random.default_rng(0)
    for count in (3, 2, 0):  # two learning calls, then acting only
        batches = _random_batches(rng, count, options.get("masked", False))
        outs = [learner.step(_call_buffers(learner, batches), count) for learner in (traced, eager)]
        for mine, theirs in zip(*outs, strict=True):
            if mine is None:
                assert theirs is None
            else:
                np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(_state(traced_model), _state(eager_model), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    if options.get("target_update") is not None:
        for mine, theirs in zip(traced.get_target(), eager.get_target(), strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    # Both kinds of graph were traced, in the form asked for, and the eager
    # twin traced nothing.
    assert sorted(key[0] for key in traced._graphs) == ["act", "learn"]
    for graph in traced._graphs.values():
        assert isinstance(graph, torch.jit.ScriptModule) == script
        assert isinstance(graph, torch.fx.GraphModule) != script
    assert not eager._graphs


def test_each_graph_is_traced_once_for_each_shape():
    model = _model("mlp", keras.optimizers.Adam(1e-3))
    agent = Agent(model, seed=0)
    agent.train(Catch(seed=0), nb_epoch=30, batch_size=BATCH, verbose=0)
    (training,) = agent._learners.values()
    # 30 games, a call at each step: one learning graph and one acting graph.
    assert sorted(key[0] for key in training._graphs) == ["act", "learn"]
    for n in (5, 5, 1, 5):
        agent.act(np.zeros((n, 1, 10, 10), np.float32))
    acting = agent._learner()
    assert sorted(key[1][0][0] for key in acting._graphs) == [1, 5]  # one per batch size


def test_the_graphs_read_the_variables_at_each_call():
    model = _model("mlp", keras.optimizers.Adam(1e-2))
    learner = _learner(model, {}, None, traced=True)
    rng = np.random.default_rng(1)
    buffers = _call_buffers(learner, _random_batches(rng, 2, False))
    learner.step(buffers, 2)  # traces both graphs
    # A learning rate set after the trace holds: 0 leaves the weights as they are.
    model.optimizer.learning_rate.assign(0.0)
    before = [w.copy() for w in model.get_weights()]
    learner.step(buffers, 2)
    for mine, theirs in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # Weights set after the trace are the ones the acting graph uses.
    model.set_weights([np.zeros_like(w) for w in before])
    np.testing.assert_array_equal(learner.q_values(buffers.frames[:4].astype(np.float32)), 0.0)


def _dropout_model(seed):
    model = keras.Sequential(
        [
            keras.Input((1, 10, 10)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.5, seed=seed),
            keras.layers.Dense(NB_ACTIONS),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def test_unseeded_dropout_is_traced_and_draws_new_masks_at_each_step():
    # Keras' unseeded Dropout draws from PyTorch's global generator: an
    # operation of the graph, drawn anew at each call, as in the eager step.
    model = _dropout_model(seed=None)
    learner = _learner(model, {}, None, traced=True)
    buffers = _call_buffers(learner, _random_batches(np.random.default_rng(2), 1, False))
    weights = model.get_weights()
    losses = []
    for _ in range(3):
        model.set_weights(weights)
        losses.append(learner.step(buffers, 1)[0][0])
    assert all(graph is not None for graph in learner._graphs.values())
    assert len(set(losses)) == 3


def test_a_model_that_cannot_be_traced_runs_eagerly_with_a_warning():
    # A seeded Dropout seeds a generator from its seed's value, which a
    # trace on fake tensors cannot read.
    model = _dropout_model(seed=1)
    learner = _learner(model, {}, None, traced=True)
    buffers = _call_buffers(learner, _random_batches(np.random.default_rng(2), 2, False))
    before = [w.copy() for w in model.get_weights()]
    with pytest.warns(UserWarning, match="could not trace this model's PyTorch step"):
        losses, _, _ = learner.step(buffers, 2)
    assert [key[0] for key, graph in learner._graphs.items() if graph is None] == ["learn"]
    assert np.isfinite(losses[:2]).all() and (losses[:2] > 0).all()
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))
    # Acting (Dropout off) is still traced.
    assert [key[0] for key, graph in learner._graphs.items() if graph is not None] == ["act"]
