"""A compiled Keras Q-network from the `network` section of a run's config.

The section names Keras' own layers, optimizer and loss by their class
names, with their arguments, so that a YAML file describes a network
without code:

```yaml
network:
  layers:                       # the body, in order, after the input
    - Permute: {dims: [2, 3, 1]}
    - Conv2D: {filters: 16, kernel_size: 3, activation: relu}
    - Flatten
    - Dense: {units: 128, activation: relu}
  head: q                       # q: one linear unit per action (and atom); or dueling
  optimizer: {RMSprop: {learning_rate: 2.5e-4, rho: 0.95, centered: true}}
  loss: Huber                   # a keras.losses class; none for C51 and QR-DQN
  jit_compile: auto
```

Only classes of `keras.layers`, `keras.optimizers` and `keras.losses` are
made, never a `Lambda` layer or anything named by a module path: a config
describes a network, it does not run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras

from qlearning4k._checks import _check_keys, _did_you_mean
from qlearning4k.dueling import dueling

_HEADS = ("q", "dueling")
_NETWORK_KEYS = ("layers", "head", "optimizer", "loss", "jit_compile")
# Layers that run code given to them (a function, a saved model), which a config cannot give.
_REFUSED_LAYERS = {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}


@dataclass(frozen=True)
class NetworkSpec:
    """The checked `network` section: layers as `(class name, arguments)` pairs."""

    layers: tuple[tuple[str, dict], ...]
    head: str = "q"
    optimizer: tuple[str, dict] = ("Adam", {})
    loss: tuple[str, dict] | None = ("Huber", {})
    jit_compile: bool | str = "auto"


def named_entry(where: str, entry: Any) -> tuple[str, dict]:
    """`Name` or `{Name: {arguments}}` as `(name, arguments)`."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, Mapping) and len(entry) == 1:
        ((name, arguments),) = entry.items()
        arguments = {} if arguments is None else arguments
        if isinstance(name, str) and isinstance(arguments, Mapping):
            return name, dict(arguments)
    raise ValueError(
        f"{where} must be a class name or a mapping of one class name to its arguments, "
        f"such as {{Name: {{argument: value}}}}. Received: {entry!r}"
    )


def _keras_class(where: str, module, name: str, base: type) -> type:
    """The class `name` of the Keras module `module` (a subclass of `base`)."""
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, base)) or name in _REFUSED_LAYERS:
        known = [n for n in dir(module) if isinstance(getattr(module, n), type)]
        known = [n for n in known if issubclass(getattr(module, n), base)]
        known = [n for n in known if n not in _REFUSED_LAYERS]
        raise ValueError(
            f"{where} names a class of {module.__name__}{_did_you_mean(name, known)}. "
            f"Received: {name!r}"
        )
    return found


def network_spec(section: Mapping) -> NetworkSpec:
    """Checks the `network` section of a config: a `NetworkSpec`.

    Raises:
        ValueError: For an unknown key or class, or a malformed entry.
    """
    section = _check_keys("network.", section, _NETWORK_KEYS)
    layers = section.get("layers", [])
    if not isinstance(layers, list):
        raise ValueError(f"network.layers must be a list of layers. Received: {layers!r}")
    checked = []
    for i, entry in enumerate(layers):
        name, arguments = named_entry(f"network.layers[{i}]", entry)
        _keras_class(f"network.layers[{i}]", keras.layers, name, keras.layers.Layer)
        checked.append((name, arguments))
    head = section.get("head", "q")
    if head not in _HEADS:
        raise ValueError(f"network.head must be one of {_HEADS}. Received: head={head!r}")
    optimizer = named_entry("network.optimizer", section.get("optimizer", "Adam"))
    _keras_class("network.optimizer", keras.optimizers, optimizer[0], keras.optimizers.Optimizer)
    loss = section.get("loss", "Huber")
    if loss is not None:
        loss = named_entry("network.loss", loss)
        _keras_class("network.loss", keras.losses, loss[0], keras.losses.Loss)
    jit = section.get("jit_compile", "auto")
    if jit not in (True, False, "auto"):
        raise ValueError(f"network.jit_compile must be true, false or auto. Received: {jit!r}")
    return NetworkSpec(tuple(checked), head, optimizer, loss, jit)


def build_network(
    spec: NetworkSpec, input_shape: tuple, nb_actions: int, nb_atoms: int = 1
) -> keras.Model:
    """The compiled model of `spec` for states of `input_shape` `(nb_frames, ...)`:
    the layers, then `nb_actions * nb_atoms` linear outputs (or dueling streams).

    Raises:
        ValueError: If a layer's arguments do not fit it (Keras' own message).
    """

    def made(where: str, module, base, name: str, arguments: dict):
        cls = _keras_class(where, module, name, base)
        try:
            return cls(**arguments)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {name}({arguments}) failed: {error}") from error

    inputs = keras.Input(input_shape)
    x = inputs
    for i, (name, arguments) in enumerate(spec.layers):
        x = made(f"network.layers[{i}]", keras.layers, keras.layers.Layer, name, arguments)(x)
    if spec.head == "dueling":
        model = dueling(keras.Model(inputs, x), nb_actions, nb_atoms=nb_atoms)
    else:
        if len(x.shape) > 2:
            x = keras.layers.Flatten()(x)
        model = keras.Model(inputs, keras.layers.Dense(nb_actions * nb_atoms)(x))
    optimizer = made("network.optimizer", keras.optimizers, keras.optimizers.Optimizer,
                     *spec.optimizer)  # fmt: skip
    loss = None
    if spec.loss is not None and nb_atoms == 1:
        loss = made("network.loss", keras.losses, keras.losses.Loss, *spec.loss)
    model.compile(optimizer, loss, jit_compile=spec.jit_compile)
    return model
