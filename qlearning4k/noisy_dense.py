"""`NoisyDense`: a dense layer with learned, factorised Gaussian noise (noisy networks)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
import numpy as np

from qlearning4k._checks import _check_positive_int, _is_int


@keras.saving.register_keras_serializable(package="qlearning4k")
class NoisyDense(keras.layers.Layer):
    """A `Dense` layer whose weights carry learned noise (Fortunato et al., 2018).

    Noisy networks explore by perturbing the weights rather than the
    actions: each weight is `mu + sigma * noise`, with `mu` and `sigma`
    learned by gradient descent, so the agent learns how much to explore,
    state by state, and can train with `epsilon=0`. The noise is
    factorised: one Gaussian draw per input and per unit, `f(x) =
    sign(x) * sqrt(|x|)` of each, their outer product for the kernel and
    the units' draws for the bias (the same noise for a whole batch).

    As for Keras' `Dropout` and `GaussianNoise`, the noise is on only in
    training mode (`training=True`), drawn anew at every call; otherwise
    the layer is a `Dense` layer of the means `mu`. An `Agent` whose model
    holds a `NoisyDense` layer therefore:

    - draws new noise at every gradient step (the Q-values of the sampled
      states; the next states' values use the means);
    - acts in training mode while it trains, with new noise at each
      acting call (other training-mode layers of the model, such as
      `Dropout`, are then on while it acts too);
    - plays greedily on the means in `evaluate()`, `play()`, `act()` and
      `q_values()`, unless `evaluate(..., noisy=True)` asks for noise.

    The layer saves and loads as `.keras` (it is registered with Keras),
    with its noise generator's state, so resumed runs draw the same noise.
    On TensorFlow and JAX the noise comes from `keras.random.normal`; on
    PyTorch from tensor operations on the generator's state (a hashed
    counter, Box-Muller), which qlearning4k's traced PyTorch step can
    record, so the same seed gives other noise there.

    Args:
        units: Number of output units.
        activation: Activation function, as for `Dense` (a name or a
            callable), or `None` for none. Defaults to `None`.
        use_bias: Whether the layer has a (noisy) bias. Defaults to `True`.
        sigma0: Scale of the initial noise: each `sigma` starts at
            `sigma0 / sqrt(input_dim)`, each `mu` uniform in
            `[-1 / sqrt(input_dim), 1 / sqrt(input_dim)]`, as in the paper.
            Defaults to 0.5, the paper's value for factorised noise.
        seed: Seed of the initial weights and of the noise, or `None` for
            Keras' global seeding (`keras.utils.set_random_seed`).
            Defaults to `None`.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: If `units` or `seed` is not an int, or `sigma0` not a number.
        ValueError: If `units` is not positive or `sigma0` is negative or
            not finite.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((1, 10, 10)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        qlearning4k.NoisyDense(3),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    agent = Agent(model, memory_size=1000, seed=0)
    agent.train(Catch(seed=0), nb_epoch=5, epsilon=0.0, verbose=0)
    ```
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        sigma0: float = 0.5,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.units = _check_positive_int("units", units)
        if isinstance(sigma0, bool) or not isinstance(sigma0, numbers.Real):
            raise TypeError(
                f"NoisyDense expects sigma0 to be a number. Received: sigma0={sigma0!r}"
            )
        if not math.isfinite(sigma0) or sigma0 < 0:
            raise ValueError(
                f"NoisyDense expects sigma0 to be finite and >= 0. Received: sigma0={sigma0}"
            )
        if seed is not None and not _is_int(seed):
            raise TypeError(f"seed must be an int or None. Received: seed={seed!r}")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.sigma0 = float(sigma0)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "NoisyDense needs a known last input dimension. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        bound = 1.0 / math.sqrt(input_dim)
        seeds = [None, None]
        if self.seed is not None:
            seeds = [int(s) for s in np.random.SeedSequence(self.seed).generate_state(2)]
        sigma = keras.initializers.Constant(self.sigma0 * bound)
        self.kernel_mu = self.add_weight(
            shape=(input_dim, self.units),
            initializer=keras.initializers.RandomUniform(-bound, bound, seed=seeds[0]),
            name="kernel_mu",
        )
        self.kernel_sigma = self.add_weight(
            shape=(input_dim, self.units), initializer=sigma, name="kernel_sigma"
        )
        if self.use_bias:
            self.bias_mu = self.add_weight(
                shape=(self.units,),
                initializer=keras.initializers.RandomUniform(-bound, bound, seed=seeds[1]),
                name="bias_mu",
            )
            self.bias_sigma = self.add_weight(
                shape=(self.units,), initializer=sigma, name="bias_sigma"
            )
        self.input_dim = int(input_dim)

    def call(self, inputs, training=None):
        ops = keras.ops
        kernel = self.kernel_mu
        bias = self.bias_mu if self.use_bias else None
        if training:
            size = self.input_dim + self.units
            if keras.backend.backend() == "torch":
                draws = _counter_normal(size, self.seed_generator.next(), self.compute_dtype)
            else:
                draws = keras.random.normal(
                    (size,), seed=self.seed_generator, dtype=self.compute_dtype
                )
            scaled = ops.sign(draws) * ops.sqrt(ops.abs(draws))
            noise_in, noise_out = scaled[: self.input_dim], scaled[self.input_dim :]
            # The noisy kernel itself, then one matrix product: building it costs
            # far less than a second product with the batch (forward and backward).
            kernel = kernel + self.kernel_sigma * (noise_in[:, None] * noise_out[None, :])
            if self.use_bias:
                bias = bias + self.bias_sigma * noise_out
        outputs = ops.matmul(inputs, kernel)
        if bias is not None:
            outputs = outputs + bias
        return self.activation(outputs)

    def _saved_variables(self) -> list:
        # The noise generator's state is saved after the weights: Keras saves
        # a layer's own variables only, and a resumed run must draw on.
        return (
            self._trainable_variables + self._non_trainable_variables + [self.seed_generator.state]
        )

    def save_own_variables(self, store) -> None:
        for i, variable in enumerate(self._saved_variables()):
            store[f"{i}"] = variable

    def load_own_variables(self, store) -> None:
        variables = self._saved_variables()
        if len(store.keys()) not in (len(variables), len(variables) - 1):
            raise ValueError(
                f"NoisyDense {self.name!r} expects {len(variables)} saved variables (its "
                f"weights and noise state). Received: {len(store.keys())} variables"
            )
        for i, variable in enumerate(variables[: len(store.keys())]):
            variable.assign(store[f"{i}"])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "sigma0": self.sigma0,
            "seed": self.seed,
        }


_MASK = 0xFFFFFFFF  # 32 bits


def _multiply_32(x, constant: int):
    """`x * constant` modulo 2**32, for int64 `x` in [0, 2**32): by halves of
    16 bits, so that no product overflows int64."""
    ops = keras.ops
    low = ops.bitwise_and(x, 0xFFFF) * constant
    high = ops.left_shift(ops.bitwise_and(ops.right_shift(x, 16) * constant, 0xFFFF), 16)
    return ops.bitwise_and(low + high, _MASK)


def _mix_32(x):
    """MurmurHash3's 32-bit finaliser of int64 `x` in [0, 2**32)."""
    ops = keras.ops
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = _multiply_32(x, 0x85EBCA6B)
    x = ops.bitwise_xor(x, ops.right_shift(x, 13))
    x = _multiply_32(x, 0xC2B2AE35)
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def _counter_normal(size: int, seed, dtype):
    """`size` standard normal draws, a function of `seed` (a `SeedGenerator`'s
    two-int state) computed with tensor operations alone.

    PyTorch's `keras.random.normal` seeds a `torch.Generator` from the seed's
    value, which qlearning4k's traced PyTorch step (see
    `qlearning4k._learner.torch.TorchLearner`) cannot read; this generator is
    part of the graph instead, and gives the same draws traced or not. Each
    draw hashes its index with the seed (MurmurHash3's finaliser of a
    counter) into two uniforms, made normal by the Box-Muller transform.
    """
    ops = keras.ops
    seed = ops.bitwise_and(ops.cast(seed, "int64"), _MASK)
    key = _mix_32(ops.bitwise_xor(_mix_32(seed[0]), _multiply_32(seed[1], 0x9E3779B1)))
    index = ops.arange(2 * size, dtype="int64")
    bits = _mix_32(ops.bitwise_and(_multiply_32(index, 0x9E3779B1) + key, _MASK))
    uniform = (ops.cast(bits, "float32") + 0.5) / 2.0**32  # in (0, 1)
    radius = ops.sqrt(-2.0 * ops.log(uniform[:size]))
    return ops.cast(radius * ops.cos(2.0 * math.pi * uniform[size:]), dtype)


def _has_noise(model: keras.Model) -> bool:
    """Whether `model` holds a `NoisyDense` layer, at any depth."""
    return any(isinstance(layer, NoisyDense) for layer in model._flatten_layers())


def _reseed(model: keras.Model, seed: int) -> None:
    """Starts the noise of each `NoisyDense` layer of `model` from its own seed drawn
    from `seed`: copies of one model (Ray actors) then draw different noise."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, NoisyDense)]
    seeds = np.random.SeedSequence(seed).generate_state(len(layers))
    for layer, layer_seed in zip(layers, seeds, strict=True):
        state = layer.seed_generator.state
        value = np.zeros(state.shape, dtype=keras.backend.standardize_dtype(state.dtype))
        value[0] = layer_seed % 2**31
        state.assign(value)
