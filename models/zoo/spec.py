"""One frozen spec per architecture: its builder, its defaults, its preprocessing and its hooks.

A spec is plain data and imports no TensorFlow, so `--help`, `stats` and the
run plan (`models/run_plan.py`) read every model's defaults without Keras. The
builder and the hooks live in the architecture's module (`models/zoo/NAME.py`)
and are imported only when called:

- `build(vocab_size, max_len, **arguments, num_classes)`: token ids -> class probabilities.
- `search_space(hp)`: the builder arguments `tune` searches.
- `adapt(model, batches) -> bool` (optional): statistics of the training split, set before the first
  epoch (`linear`'s IDF); True if it read the batches.

What a model reads (the shard's vocabulary or a checkpoint's own tokenizer) is its preprocessor
(`models/zoo/preprocessors.py`), named here: it makes the vectorizer, counts review lengths in the
model's own units, chooses the vocabulary, and says what `config.json` records of it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types

OPTIMIZERS = ("rmsprop", "adam", "lazy_adam", "row_adagrad", "sgd", "adagrad", "adamw")
PREPROCESSORS = ("vocabulary", "preset")
# Arguments of every builder that fit sets itself; `--param` sets only the others.
FIT_ARGUMENTS = ("vocab_size", "max_len", "preset", "num_classes")
# The ids a model with a learnt word embedding takes of the shard's vocabulary (the most frequent words): an
# embedding learns little for a rare word, and its table, with its optimizer moments, grows with the count.
# 8192 is what the sequence models were measured with.
EMBEDDING_VOCAB_SIZE = 8192


@dataclasses.dataclass(frozen=True)
class LengthPolicy:
    """fit without --max-len takes `coverage` of training reviews whole, up to `cap` tokens (models/max_len.py)."""

    coverage: float
    cap: int

    def __post_init__(self):
        if not 0 < self.coverage <= 1 or self.cap < 1:
            raise ValueError(f"a length policy takes a coverage in (0, 1] and a cap >= 1, not {self}")


# A sequence model's time and memory per step grow with the length (attention's with its square).
SEQUENCE_LENGTHS = LengthPolicy(coverage=0.9, cap=512)
# A bag of words costs little per token. IMDB cut at 128 tokens cost linear and ngram_bag 4.4 points.
BAG_LENGTHS = LengthPolicy(coverage=0.99, cap=2048)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """An architecture: where its builder is, how fit trains it by default, and what it reads.

    A field not listed here is a TypeError where the spec is written, never a silent default.
    """

    name: str
    summary: str                               # one line: what the architecture is
    optimizer: str = "rmsprop"                 # the studies' optimizer, at Keras's default rate
    learning_rate: float = 1e-3
    batch_size: int = 64                       # per replica; fit lowers it for a small corpus
    epochs: int = 10                           # the most epochs fit trains without --epochs
    early_stopping: bool = True                # keep the epoch of lowest validation loss, stop after `patience`
    lengths: LengthPolicy = SEQUENCE_LENGTHS
    vocab_size: int | None = EMBEDDING_VOCAB_SIZE   # ids taken of the shard's vocabulary; None: all of them
    inference_batch_size: int | None = None    # the most reviews evaluate/predict score at once; None: no cap
    warmup_share: float = 0.0                  # of all steps, a linear learning-rate warm-up, then decay to 0
    clipnorm: float | None = None
    steps_per_execution: int = 1               # training steps per call into TensorFlow (Keras's compile)
    xla_from_steps: int | None = None          # XLA for the step where a run is sure to train this many; None: off
    preprocessor: str = "vocabulary"           # "vocabulary": the shard's; "preset": a checkpoint's (--preset)
    module_name: str = ""                      # the builder's module; "" for models/zoo/NAME.py

    def __post_init__(self):
        problems = [f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}"] * (
            self.optimizer not in OPTIMIZERS)
        problems += [f"preprocessor {self.preprocessor!r} is not one of {', '.join(PREPROCESSORS)}"] * (
            self.preprocessor not in PREPROCESSORS)
        problems += ["learning_rate must be > 0"] * (not self.learning_rate > 0)
        problems += ["batch_size must be >= 1"] * (self.batch_size < 1)
        problems += ["epochs must be >= 1"] * (self.epochs < 1)
        problems += ["warmup_share must be in [0, 1)"] * (not 0 <= self.warmup_share < 1)
        problems += ["steps_per_execution must be >= 1"] * (self.steps_per_execution < 1)
        problems += ["xla_from_steps must be None or >= 1"] * (self.xla_from_steps is not None and
                                                              self.xla_from_steps < 1)
        if problems:
            raise ValueError(f"model spec {self.name!r}: {'; '.join(problems)}")

    @property
    def needs_preset(self) -> bool:
        """Whether the model fine-tunes a checkpoint (`fit --preset DIR`) instead of the shard's vocabulary."""
        return self.preprocessor == "preset"

    def module(self) -> types.ModuleType:
        """The builder's module (imports Keras)."""
        return importlib.import_module(self.module_name or f"models.zoo.{self.name}")

    def parameters(self) -> dict:
        """The builder's arguments that `--param` may set, with their defaults."""
        signature = inspect.signature(self.module().build)
        return {parameter.name: parameter.default for parameter in signature.parameters.values()
                if parameter.name not in FIT_ARGUMENTS}

    def search_space(self, hp) -> dict:
        return self.module().search_space(hp)

    def adapt(self, model, batches) -> bool:
        """Let the architecture read the training split once before training, if it needs to; True if it did."""
        adapt = getattr(self.module(), "adapt", None)
        return bool(adapt(model, batches)) if adapt is not None else False
