"""Stable-Baselines3 DQN and sb3-contrib QR-DQN settings (and the RL Zoo's) as an agent
and `train()` arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from qlearning4k._checks import _did_you_mean
from qlearning4k.agent import Agent
from qlearning4k.distributional import QuantileRegression
from qlearning4k.games.game import Game

# Stable-Baselines3's DQN defaults (2.x), for the keys a config leaves out.
_DEFAULTS = {
    "policy": "MlpPolicy",
    "learning_rate": 1e-4,
    "buffer_size": 1_000_000,
    "learning_starts": 100,
    "batch_size": 32,
    "tau": 1.0,
    "gamma": 0.99,
    "train_freq": 4,
    "gradient_steps": 1,
    "n_steps": 1,
    "target_update_interval": 10_000,
    "exploration_fraction": 0.1,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
    "max_grad_norm": 10.0,
    "policy_kwargs": None,
    "n_envs": 1,
    "frame_stack": 1,
}
# sb3-contrib's QRDQN defaults (2.x) where they differ from DQN's; its
# policy_kwargs may also set n_quantiles.
_QRDQN_DEFAULTS = {
    "learning_rate": 5e-5,
    "exploration_fraction": 0.005,
    "exploration_final_eps": 0.01,
    "max_grad_norm": None,
}
_NB_QUANTILES = 200  # QRDQN's default n_quantiles
_ALGOS = ("dqn", "qrdqn")
# Keys that change nothing qlearning4k computes: logging, devices, memory layout.
_IGNORED = {"verbose", "device", "tensorboard_log", "stats_window_size", "optimize_memory_usage"}
_BUDGETS = ("n_timesteps", "total_timesteps")  # the Zoo's name and learn()'s
_POLICIES = ("MlpPolicy", "MultiInputPolicy")
_CNN_OUTPUT_DIM = 256  # CombinedExtractor's default cnn_output_dim
_MAX_LAYERS = 256  # layers a network's seeds cover


def from_sb3(
    hyperparams: Mapping[str, Any], game: Game, seed: int | None = None, algo: str = "dqn"
) -> tuple[Agent, dict[str, Any]]:
    """Builds the agent and `train()` arguments of a Stable-Baselines3 DQN config.

    `hyperparams` holds the arguments of `stable_baselines3.DQN` and the
    budget, as an RL Baselines3 Zoo entry does (`n_timesteps`, or
    `total_timesteps` as `learn()` calls it); keys it leaves out take
    Stable-Baselines3's defaults. The result trains the same algorithm:

    - the network of `MlpPolicy`: the stacked frames flattened, one ReLU
      `Dense` layer per `policy_kwargs["net_arch"]` entry (default
      `[64, 64]`), one linear output per action. With
      `policy="MultiInputPolicy"` (a game whose frames are dicts, as from a
      Gymnasium `Dict` space) the features are `CombinedExtractor`'s: one
      named input per key, NatureCNN for each image part (3-D `uint8`,
      scaled to [0, 1] unless `policy_kwargs["normalize_images"]` is
      `False`; `features_extractor_kwargs={"cnn_output_dim": 256}`), the
      other parts flattened, all end to end, then the same `net_arch`;
    - Adam with `learning_rate`, the Huber loss, gradients clipped to the
      global norm `max_grad_norm`. Keras' Huber loss averages over the
      actions (the Q-targets equal the Q-values except at the taken one),
      so its gradients are Stable-Baselines3's divided by `nb_actions`:
      the clip norm and Adam's epsilon (1e-8) are divided by it too, which
      leaves every update Stable-Baselines3's. On TensorFlow the model is
      compiled with `jit_compile=True` (XLA), which Keras leaves off on
      CPUs and which makes these steps a fifth to a third faster;
    - a replay memory of `buffer_size` transitions, `n_envs` copies of the
      game side by side (`nb_parallel`) and `frame_stack` stacked frames;
    - `train()` arguments in env steps: `total_timesteps`,
      `learning_starts`, `epsilon=(exploration_initial_eps,
      exploration_final_eps)`, `epsilon_rate=exploration_fraction`,
      `train_freq`, `gradient_steps` (`-1` included),
      `target_update_interval`, `batch_size`, `gamma`, `n_step=n_steps`.

    With `algo="qrdqn"` the config is sb3-contrib's `QRDQN` (the Zoo's
    `hyperparams/qrdqn.yml`), with its defaults: the network ends in
    `nb_actions * n_quantiles` units (`policy_kwargs["n_quantiles"]`,
    default 200), the agent learns with `distribution=QuantileRegression`,
    and Adam's epsilon is QRDQN's `0.01 / batch_size`. Its loss is not
    averaged over the actions, so the clip norm is `max_grad_norm` as it is
    (QRDQN's default: no clipping).

    Keys that change nothing computed (`verbose`, `device`,
    `tensorboard_log`, `stats_window_size`, `optimize_memory_usage`) are
    ignored. The network's initial weights are drawn as PyTorch's
    `nn.Linear` draws them (kernel and bias uniform in `+-1/sqrt(fan_in)`),
    not with Keras' default (Glorot uniform kernel, zero bias).

    Args:
        hyperparams: The config, a mapping of Stable-Baselines3 DQN argument
            names to values. `policy_kwargs` is a dict (the Zoo's YAML
            writes it as the string `"dict(net_arch=[256, 256])"`: pass the
            dict).
        game: The game to learn: gives the frame shape (it is reset once to
            read a frame) and the number of actions.
        seed: Seed of the network's initial weights and of the agent (its
            exploration and memory sampling), or `None`. Defaults to `None`.
        algo: `"dqn"` (Stable-Baselines3's `DQN`) or `"qrdqn"` (sb3-contrib's
            `QRDQN`). Defaults to `"dqn"`.

    Returns:
        `(agent, train_kwargs)`: an `Agent` with its compiled model, and the
        arguments to pass on as `agent.train(game, **train_kwargs)`.

    Raises:
        ValueError: For an unknown key, a value qlearning4k has no
            equivalent for (a policy other than `MlpPolicy` and
            `MultiInputPolicy`, `tau` other than 1, `train_freq` counted in
            episodes, `policy_kwargs` other than `net_arch`, and for
            `MultiInputPolicy` `normalize_images` and
            `features_extractor_kwargs`), a config without a budget, or a
            game of several action parts (which DQN does not take).
        TypeError: If `game` is not a `Game` or a value has the wrong type.

    Example:

    ```python
    from qlearning4k import from_sb3
    from qlearning4k.games import GymGame

    zoo = {  # the RL Baselines3 Zoo's DQN entry for CartPole-v1
        "n_timesteps": 5e4, "policy": "MlpPolicy", "learning_rate": 2.3e-3,
        "batch_size": 64, "buffer_size": 100000, "learning_starts": 1000,
        "gamma": 0.99, "target_update_interval": 10, "train_freq": 256,
        "gradient_steps": 128, "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]},
    }
    agent, train_kwargs = from_sb3(zoo, GymGame("CartPole-v1"), seed=0)
    train_kwargs["total_timesteps"] = 2000  # a shorter run than the Zoo's
    agent.train(GymGame("CartPole-v1", seed=0), verbose=0, **train_kwargs)
    ```
    """
    if not isinstance(hyperparams, Mapping):
        raise TypeError(
            "hyperparams must be a mapping of Stable-Baselines3 DQN arguments. "
            f"Received: {hyperparams!r} (of type {type(hyperparams).__name__})"
        )
    if not isinstance(game, Game):
        raise TypeError(
            f"Expected a qlearning4k Game. Received: {game!r} (of type {type(game).__name__})"
        )
    if algo not in _ALGOS:
        raise ValueError(f"algo must be one of {_ALGOS}. Received: algo={algo!r}")
    quantiles = algo == "qrdqn"
    config, budget, train_freq, net_arch, distribution = _read_config(hyperparams, quantiles)
    model = _mlp(config, game, net_arch, distribution, seed)
    agent = Agent(
        model, memory_size=_count(config, "buffer_size"), seed=seed, distribution=distribution
    )
    return agent, _train_kwargs(config, budget, train_freq)


def _read_config(hyperparams: Mapping, quantiles: bool):
    """The checked config with its defaults: `(config, budget key, train_freq,
    net_arch, distribution)`."""
    known = set(_DEFAULTS) | _IGNORED | set(_BUDGETS)
    unknown = sorted(set(hyperparams) - known)
    if unknown:
        raise ValueError(
            f"Unknown Stable-Baselines3 DQN setting {unknown[0]!r}"
            f"{_did_you_mean(unknown[0], sorted(known))}: qlearning4k knows "
            f"{', '.join(sorted(known))}. Received: {unknown[0]}={hyperparams[unknown[0]]!r}"
        )
    budgets = [key for key in _BUDGETS if key in hyperparams]
    if len(budgets) != 1:
        raise ValueError(
            "The config needs one budget: n_timesteps (the Zoo's name) or total_timesteps. "
            f"Received: {', '.join(budgets) or 'neither'}"
        )
    config = {**_DEFAULTS, **(_QRDQN_DEFAULTS if quantiles else {}), **hyperparams}
    if config["policy"] not in _POLICIES:
        raise ValueError(
            "from_sb3 builds the networks of MlpPolicy and MultiInputPolicy; for another "
            "policy build the Keras model yourself and pass the train() arguments. "
            f"Received: policy={config['policy']!r}"
        )
    if float(config["tau"]) != 1.0:
        raise ValueError(
            "qlearning4k copies the target network every target_update_interval env steps "
            "(tau=1); soft updates count gradient steps (train(target_update=tau)). "
            f"Received: tau={config['tau']!r}"
        )
    train_freq = config["train_freq"]
    if isinstance(train_freq, (tuple, list)):
        if len(train_freq) != 2 or train_freq[1] != "step":
            raise ValueError(
                "train_freq must count steps: an int or (n, 'step'). "
                f"Received: train_freq={train_freq!r}"
            )
        train_freq = train_freq[0]
    policy_kwargs = dict(config["policy_kwargs"] or {})
    allowed = {"net_arch", "n_quantiles"} if quantiles else {"net_arch"}
    if config["policy"] == "MultiInputPolicy":
        allowed |= {"normalize_images", "features_extractor_kwargs"}
    if set(policy_kwargs) - allowed:
        raise ValueError(
            f"policy_kwargs may only set {' and '.join(sorted(allowed))}. "
            f"Received: policy_kwargs={policy_kwargs!r}"
        )
    distribution = None
    if quantiles:
        n_quantiles = _count({"n_quantiles": _NB_QUANTILES, **policy_kwargs}, "n_quantiles")
        distribution = QuantileRegression(nb_quantiles=n_quantiles)
    net_arch = policy_kwargs.get("net_arch", [64, 64])
    if (
        not isinstance(net_arch, (list, tuple))
        or not all(_is_count(width) for width in net_arch)
        or len(net_arch) > _MAX_LAYERS // 2
    ):
        raise ValueError(
            f"net_arch must be a list of at most {_MAX_LAYERS // 2} positive ints. "
            f"Received: net_arch={net_arch!r}"
        )

    extractor = dict(policy_kwargs.get("features_extractor_kwargs") or {})
    if set(extractor) - {"cnn_output_dim"}:
        raise ValueError(
            "features_extractor_kwargs may only set cnn_output_dim (CombinedExtractor's). "
            f"Received: features_extractor_kwargs={extractor!r}"
        )
    config["_cnn_output_dim"] = _count({"cnn_output_dim": _CNN_OUTPUT_DIM, **extractor},
                                       "cnn_output_dim")  # fmt: skip
    config["_normalize_images"] = bool(policy_kwargs.get("normalize_images", True))
    return config, budgets[0], train_freq, net_arch, distribution


def _mlp(config: dict, game, net_arch, distribution, seed) -> keras.Model:
    """The policy's network for `game`, compiled as Stable-Baselines3's DQN trains it:
    MlpPolicy's, or MultiInputPolicy's (`_combined_features`) for frames in parts."""
    quantiles = distribution is not None
    nb_frames = _count(config, "frame_stack")
    game.reset()
    frame = game.get_frame()
    nb_actions = game.nb_actions
    if isinstance(nb_actions, tuple):
        raise ValueError(
            "Stable-Baselines3's DQN picks one of n actions; a game of several action parts "
            f"(nb_actions={nb_actions}) needs a branching model: build it with "
            "qlearning4k.branching(body, nb_actions) and give it to an Agent. "
            f"Received: {type(game).__name__}"
        )
    # Two seeds a layer (its kernel's and its bias's), in the order the layers are made.
    words = np.random.SeedSequence(seed).generate_state(2 * _MAX_LAYERS)
    layer_seeds = iter(words.reshape(_MAX_LAYERS, 2))
    if config["policy"] == "MultiInputPolicy":
        inputs, features, fan_in = _combined_features(config, frame, nb_frames, layer_seeds)
        head = _head(net_arch, nb_actions, distribution, fan_in, layer_seeds)
        model = keras.Model(inputs, keras.Sequential(head, name="q_head")(features))
    else:
        frame_shape = np.asarray(frame).shape
        fan_in = nb_frames * int(np.prod(frame_shape))
        head = _head(net_arch, nb_actions, distribution, fan_in, layer_seeds)
        model = keras.Sequential([keras.Input((nb_frames, *frame_shape)), keras.layers.Flatten()]
                                 + head)  # fmt: skip
    clip = config["max_grad_norm"]
    # Keras' Huber loss averages over the actions; QR-DQN's loss does not.
    scale = 1 if quantiles else nb_actions
    epsilon = 0.01 / _count(config, "batch_size") if quantiles else 1e-8
    optimizer = keras.optimizers.Adam(
        learning_rate=float(config["learning_rate"]),
        epsilon=epsilon / scale,
        global_clipnorm=None if clip is None else float(clip) / scale,
    )
    # XLA on TensorFlow, which Keras leaves off on CPUs: these networks' steps
    # are a quarter faster with it (docs/performance.md). JAX compiles anyway.
    jit = True if keras.backend.backend() == "tensorflow" else "auto"
    model.compile(optimizer, None if quantiles else keras.losses.Huber(), jit_compile=jit)
    return model


def _train_kwargs(config: dict, budget: str, train_freq) -> dict:
    """`train()`'s arguments for the config."""
    train_kwargs = {
        "total_timesteps": _count(config, budget),
        "learning_starts": _count(config, "learning_starts", zero=True),
        "batch_size": _count(config, "batch_size"),
        "gamma": float(config["gamma"]),
        "epsilon": (
            float(config["exploration_initial_eps"]),
            float(config["exploration_final_eps"]),
        ),
        "epsilon_rate": float(config["exploration_fraction"]),
        "train_freq": _count({"train_freq": train_freq}, "train_freq"),
        "gradient_steps": (
            -1 if config["gradient_steps"] == -1 else _count(config, "gradient_steps")
        ),
        "target_update_interval": _count(config, "target_update_interval"),
        "n_step": _count(config, "n_steps"),
        "nb_parallel": _count(config, "n_envs"),
    }
    return train_kwargs


def _head(net_arch, nb_actions: int, distribution, fan_in: int, layer_seeds) -> list:
    """The `Dense` layers after the features: one ReLU layer per `net_arch` entry, then
    one linear unit per action (and atom)."""
    widths = [int(width) for width in net_arch]
    widths.append(nb_actions * (1 if distribution is None else distribution.nb_atoms))
    layers = []
    for i, width in enumerate(widths):
        activation = "relu" if i < len(net_arch) else None
        layers.append(_torch_linear(width, fan_in, next(layer_seeds), activation))
        fan_in = width
    return layers


def _combined_features(config: dict, frame, nb_frames: int, layer_seeds):
    """MultiInputPolicy's CombinedExtractor: `(inputs, features, width)`.

    One named input per key (in sorted order, as Gymnasium's `Dict` keeps
    them); a part that is an image (3-D `uint8`, as Stable-Baselines3's
    `is_image_space` sees a `Box(0, 255)`) goes through NatureCNN (scaled to
    [0, 1] unless `normalize_images=False`; its stacked frames as channels,
    as `VecFrameStack` stacks them), any other is flattened; all end to end.
    """
    if not isinstance(frame, dict):
        raise ValueError(
            "MultiInputPolicy takes games whose frames are dicts (a Gymnasium Dict space). "
            f"Received: a frame of type {type(frame).__name__}; use MlpPolicy"
        )
    inputs, features, width = {}, [], 0
    for key in sorted(frame):
        part = np.asarray(frame[key])
        inputs[key] = x = keras.Input((nb_frames, *part.shape), name=str(key))
        if part.dtype == np.uint8 and part.ndim == 3:
            height, width_, channels = part.shape
            if part.shape[0] < min(part.shape[1:]):  # channels first
                channels, height, width_ = part.shape
                x = keras.layers.Permute((1, 3, 4, 2))(x)
            x = keras.layers.Permute((2, 3, 1, 4))(x)  # the stacked frames next to channels
            x = keras.layers.Reshape((height, width_, nb_frames * channels))(x)
            if config["_normalize_images"]:
                x = keras.layers.Rescaling(1 / 255)(x)
            x, size = _nature_cnn(x, nb_frames * channels, config["_cnn_output_dim"], layer_seeds)
        else:
            x, size = keras.layers.Flatten()(x), nb_frames * int(np.prod(part.shape))
        features.append(x)
        width += size
    joined = features[0] if len(features) == 1 else keras.layers.Concatenate()(features)
    return inputs, joined, width


def _nature_cnn(x, channels: int, output_dim: int, layer_seeds):
    """Stable-Baselines3's NatureCNN (PyTorch's initial weights): three ReLU
    convolutions, flattened, then a ReLU `Dense` of `output_dim`."""
    for filters, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
        if min(x.shape[1:3]) < kernel:
            raise ValueError(
                f"NatureCNN needs images of at least {kernel}x{kernel} at its "
                f"{filters}-filter convolution (as Stable-Baselines3's does). Received: "
                f"{tuple(x.shape[1:3])}; use MlpPolicy on a flattened image instead"
            )
        x = keras.layers.Conv2D(
            filters, kernel, stride, activation="relu",
            **_torch_init(channels * kernel * kernel, next(layer_seeds)),
        )(x)  # fmt: skip
        channels = filters
    x = keras.layers.Flatten()(x)
    x = _torch_linear(output_dim, int(x.shape[-1]), next(layer_seeds), "relu")(x)
    return x, output_dim


def _torch_init(fan_in: int, seeds) -> dict:
    """PyTorch's initial weights of `nn.Linear` and `nn.Conv2d` as Keras initializers:
    kernel and bias uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / np.sqrt(fan_in)
    return {
        # Kaiming uniform with a = sqrt(5): the limit sqrt(3 * scale / fan_in) is 1/sqrt(fan_in).
        "kernel_initializer": keras.initializers.VarianceScaling(
            scale=1 / 3, mode="fan_in", distribution="uniform", seed=int(seeds[0])
        ),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound, seed=int(seeds[1])),
    }


def _torch_linear(units: int, fan_in: int, seeds, activation: str | None):
    """A Dense layer initialised as PyTorch's `nn.Linear` is (Stable-Baselines3's
    networks keep that default): kernel and bias uniform in +-1/sqrt(fan_in)."""
    return keras.layers.Dense(units, activation=activation, **_torch_init(fan_in, seeds))


def _is_count(value) -> bool:
    """An int, or an integral float (YAML's `!!float 5e4`), that is positive."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return False
    return float(value).is_integer() and value > 0


def _count(config: Mapping, key: str, zero: bool = False) -> int:
    value = config[key]
    if not (_is_count(value) or (zero and not isinstance(value, bool) and value == 0)):
        least = "an int >= 0" if zero else "a positive int"
        raise ValueError(f"{key} must be {least}. Received: {key}={value!r}")
    return int(value)
