"""The model zoo: one module per architecture, each `build(vocab_size, max_len, **hyperparameters, num_classes)`.

Every builder maps token ids (batch, max_len) to P(positive) (batch, 1) for two
classes, or to a softmax over `num_classes` (batch, N) (`layers.class_probabilities`). The
registry holds names, not modules: importing an architecture imports Keras,
and the CLI lists the names in `--help` without it.

Each module also defines `search_space(hp)`: the builder arguments that `tune`
searches, next to the builder they feed. It may define `OPTIMIZER`,
`LEARNING_RATE`, `BATCH_SIZE`, `EARLY_STOPPING`, `MAX_LEN_COVERAGE`,
`MAX_LEN_CAP`, `VOCAB_SIZE` and `INFERENCE_BATCH_SIZE` (its defaults), and
`adapt(model, batches) -> bool` (statistics of the training split, set
before the first epoch, e.g. `linear`'s IDF; True if it read the batches).
"""

from __future__ import annotations

import importlib
import inspect
import types

from pipeline.errors import ReviewflowError

# The registry: a name is the module `models/zoo/NAME.py`, which defines `build`.
MODELS = ("cnn", "rnn", "lstm", "cnn_lstm", "ffn", "hybrid", "hybrid_split", "ngram_bag", "linear", "transformer",
          "pretrained")

# The studies' optimizer: RMSprop at Keras's default rate, unless the module names its own.
DEFAULT_OPTIMIZER = "rmsprop"
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_BATCH_SIZE = 64
# fit without --max-len takes this share of training reviews whole, up to this many tokens (models/max_len.py):
# a sequence model's time and memory per step grow with the length (attention's with its square).
DEFAULT_MAX_LEN_COVERAGE = 0.9
DEFAULT_MAX_LEN_CAP = 512
# fit without --vocab-size: the ids a model takes of the shard's vocabulary (the most frequent words). A word
# embedding learns little for a rare word, and its table, with its optimizer moments, grows with the count;
# 8192 is what the sequence models were measured with. A module's VOCAB_SIZE = None takes the whole vocabulary.
DEFAULT_VOCAB_SIZE = 8192


def module(name: str) -> types.ModuleType:
    """The architecture's module; refuses a name outside the registry."""
    if name not in MODELS:
        raise ReviewflowError(f"unknown model {name!r}; choose from {', '.join(MODELS)}.")
    return importlib.import_module(f"models.zoo.{name}")


def parameters(name: str) -> dict:
    """The builder's arguments that `--param` may set, with their defaults."""
    signature = inspect.signature(module(name).build)
    return {parameter.name: parameter.default for parameter in signature.parameters.values()
            if parameter.name not in ("vocab_size", "max_len", "preset", "num_classes")}


def check_hyperparameters(name: str, hyperparameters: dict) -> None:
    """Refuse a `--param` name the builder does not take, listing those it does."""
    unknown = sorted(set(hyperparameters) - set(parameters(name)))
    if unknown:
        accepted = ", ".join(f"{key}={value!r}" for key, value in parameters(name).items())
        raise ReviewflowError(f"--param {', '.join(unknown)}: the {name} model takes no such argument. "
                              f"Its arguments, with their defaults: {accepted}.")


def build(name: str, vocab_size: int, max_len: int, **hyperparameters):
    """The named architecture's token-id model; a `--param` value it cannot take is a ReviewflowError."""
    check_hyperparameters(name, {key: value for key, value in hyperparameters.items()
                                 if key not in ("preset", "num_classes")})
    try:
        return module(name).build(vocab_size=vocab_size, max_len=max_len, **hyperparameters)
    except (TypeError, ValueError) as exc:  # a value of the wrong type or range, e.g. embedding_dim=abc
        raise ReviewflowError(f"--param: the {name} model cannot be built with {hyperparameters}: "
                              f"{str(exc).splitlines()[0][:300]}") from exc


def optimizer_for(name: str) -> str:
    return getattr(module(name), "OPTIMIZER", DEFAULT_OPTIMIZER)


def batch_size_for(name: str) -> int:
    return getattr(module(name), "BATCH_SIZE", DEFAULT_BATCH_SIZE)


def stops_early(name: str) -> bool:
    """Whether fit keeps the epoch of lowest validation loss and stops after `patience` worse ones.

    A module sets `EARLY_STOPPING = False` when its model is trained to convergence instead (a convex,
    regularized model: `linear`), where a small validation split's noisy loss would pick an early epoch.
    """
    return getattr(module(name), "EARLY_STOPPING", True)


def max_len_policy(name: str) -> tuple[float, int]:
    """(share of training reviews to take whole, the most tokens) for fit's choice of --max-len."""
    module_ = module(name)
    return (getattr(module_, "MAX_LEN_COVERAGE", DEFAULT_MAX_LEN_COVERAGE),
            getattr(module_, "MAX_LEN_CAP", DEFAULT_MAX_LEN_CAP))


def inference_batch_size_for(name: str) -> int | None:
    """The most reviews `evaluate` and `predict` score at once by default (memory grows with the batch);
    None: no cap of the model's own."""
    return getattr(module(name), "INFERENCE_BATCH_SIZE", None)


def vocab_size_for(name: str) -> int | None:
    """The vocabulary ids the model takes by default; None: all of the shard's."""
    return getattr(module(name), "VOCAB_SIZE", DEFAULT_VOCAB_SIZE)


def needs_preset(name: str) -> bool:
    """Whether the model fine-tunes a pretrained checkpoint (`fit --preset DIR`) instead of the shards' vocabulary."""
    return getattr(module(name), "NEEDS_PRESET", False)


def warmup_share_for(name: str) -> float:
    """The share of training steps over which the learning rate warms up linearly (then decays); 0: constant."""
    return getattr(module(name), "WARMUP_SHARE", 0.0)


def clipnorm_for(name: str) -> float | None:
    return getattr(module(name), "CLIPNORM", None)


def learning_rate_for(name: str) -> float:
    return getattr(module(name), "LEARNING_RATE", DEFAULT_LEARNING_RATE)


def adapt(name: str, model, batches) -> bool:
    """Let the architecture read the training split once before training, if it needs to; True if it did."""
    adapt_fn = getattr(module(name), "adapt", None)
    return bool(adapt_fn(model, batches)) if adapt_fn is not None else False
