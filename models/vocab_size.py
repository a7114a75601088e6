"""`fit` without `--vocab-size`: how many of the shard's vocabulary ids a model takes, per model.

`shard` keeps the most frequent training words (32768 ids by default, `vocab.txt`, most frequent first), and
each run takes the first N of them: a bag model (`linear`, `ngram_bag`) all, since a weight per word is cheap
and rare words carry sentiment; a model with a learnt word embedding 8192 (`spec.EMBEDDING_VOCAB_SIZE`), since an
embedding learns little for a word seen a few times and its table and optimizer moments grow with the count.
Each model's spec (`models/zoo/__init__.py`) states its default. The README's "Choosing --max-len" has the IMDB figures.
"""

from __future__ import annotations

import dataclasses

from pipeline.errors import ReviewflowError


@dataclasses.dataclass(frozen=True)
class VocabChoice:
    """The vocabulary ids a run takes of the shard's (the most frequent words), and why; `fit` prints it."""

    vocab_size: int | None   # None: all of the shard's (unknown until the data directory is open), or a preset's
    source: str              # "option" (--vocab-size), "model" (its default) or "preset"
    reason: str


def choose(given: int | None, model_default: int | None, available: int | None) -> VocabChoice:
    """`given`, or the model's default (None: everything), never more than the shard's `available` ids."""
    if given is not None:
        if available is not None and given > available:
            raise ReviewflowError(f"--vocab-size {given}: the data directory's vocabulary has {available} ids "
                                  f"(vocab.txt, from shard --vocab-size); ask for at most {available}, or shard "
                                  f"again with a larger --vocab-size.")
        return VocabChoice(given, "option", "--vocab-size")
    if model_default is None:
        return VocabChoice(available, "model", "all of the shard's vocabulary")
    if available is not None and model_default >= available:
        return VocabChoice(available, "model", f"all of the shard's vocabulary (the model takes up to {model_default})")
    return VocabChoice(model_default, "model", f"the model's {model_default} most frequent ids of the shard's "
                       f"{available if available is not None else 'vocabulary'}")
