"""The model zoo: one module per architecture, each `build(vocab_size, max_len, **hyperparameters)`.

Every builder maps token ids (batch, max_len) to P(positive) (batch, 1). The
registry holds names, not modules: importing an architecture imports Keras,
and the CLI lists the names in `--help` without it.
"""

from __future__ import annotations

import importlib
import types

# The registry: a name is the module `models/zoo/NAME.py`, which defines `build`.
MODELS = ("cnn", "rnn", "lstm", "cnn_lstm", "ffn", "hybrid", "hybrid_split")

# The studies' optimizer: RMSprop at Keras's default rate, unless the module names its own (`OPTIMIZER`).
DEFAULT_OPTIMIZER = "rmsprop"
DEFAULT_LEARNING_RATE = 1e-3


def module(name: str) -> types.ModuleType:
    """The architecture's module; refuses a name outside the registry."""
    if name not in MODELS:
        from pipeline.errors import ReviewflowError

        raise ReviewflowError(f"unknown model {name!r}; choose from {', '.join(MODELS)}.")
    return importlib.import_module(f"models.zoo.{name}")


def build(name: str, vocab_size: int, max_len: int, **hyperparameters):
    """The named architecture's token-id model."""
    return module(name).build(vocab_size=vocab_size, max_len=max_len, **hyperparameters)


def optimizer_for(name: str) -> str:
    return getattr(module(name), "OPTIMIZER", DEFAULT_OPTIMIZER)
