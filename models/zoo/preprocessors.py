"""What a model reads, one object per kind (KerasHub's preprocessor idea): raw strings -> the model's inputs.

A spec names its preprocessor (`ModelSpec.preprocessor`). Each one makes the
vectorizer that `model.keras` and `tf.data` share, counts review lengths in the
units its model reads (the shard's tokens, or a checkpoint's word pieces),
chooses the vocabulary, says which builder arguments it supplies and what
`config.json` records of it. Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from models import vocab_size as vocab_size_lib
from pipeline.errors import ReviewflowError

# Reviews tokenized with a checkpoint's tokenizer to count their word pieces: enough for a 90th percentile
# within a few pieces, and a few seconds on a CPU whatever the corpus's size.
LENGTH_SAMPLE_REVIEWS = 10_000
LENGTH_SAMPLE_SEED = 0


class ShardVocabulary:
    """The shard's own words (vocab.txt): `TextVectorization` over the most frequent `vocab_size` of them."""

    name = "vocabulary"
    length_unit = "tokens"

    def check(self, settings) -> None:
        """Nothing to check: `--preset` is ignored (so a study can mix models)."""

    def lengths(self, settings, data) -> dict[int, int] | None:
        """The train split's length histogram as `shard` recorded it (None for an older data directory)."""
        return data.split("train").lengths()

    def vocab_choice(self, settings, model_default: int | None, available: int | None):
        return vocab_size_lib.choose(settings.vocab_size, model_default, available)

    def make_vectorizer(self, plan, settings, data):
        from pipeline import text

        return text.vocabulary_vectorizer(data.vocabulary(plan.vocab.vocab_size), plan.max_len.max_len, plan.truncate)

    def build_arguments(self, settings) -> dict:
        return {}

    def describe(self, settings, model) -> dict | None:
        return None


class PresetTokenizer:
    """A pretrained checkpoint's own tokenizer and packer (`--preset DIR`): word pieces, `[CLS]` and `[SEP]`."""

    name = "preset"
    length_unit = "word pieces"

    def check(self, settings) -> None:
        if settings.preset is None:
            raise ReviewflowError(f"the {settings.model} model needs --preset DIR: a KerasHub preset or a Hugging "
                                  "Face checkpoint directory of a BERT-family encoder.")
        if settings.embeddings is not None:
            raise ReviewflowError(f"--embeddings: the {settings.model} model's token embeddings are its "
                                  "checkpoint's own, trained with its tokenizer; leave out --embeddings.")

    def lengths(self, settings, data) -> dict[int, int]:
        """Word pieces per review, the packer's start and end tokens included, of a sample of the train split.

        The shard's histogram counts words; a checkpoint reads ~1.3 pieces a word, more for rare ones, and a
        length chosen in words took 32 pieces where 90% of the reviews needed 42.
        """
        from models.zoo import pretrained
        from pipeline import dataset, text

        tokenizer = pretrained.load_tokenizer(settings.preset)
        sample = dataset.make_text_dataset(data, "train", 1024, shuffle=True, seed=LENGTH_SAMPLE_SEED,
                                           known_size=False).unbatch().take(LENGTH_SAMPLE_REVIEWS).batch(1024)
        # In tf.data the tokenizer runs as a graph and gives ragged pieces (called eagerly, KerasHub gives lists).
        lengths = sample.map(lambda texts, _: tokenizer(texts).row_lengths() + pretrained.PACKED_SPECIAL_TOKENS)
        histogram: dict[int, int] = {}
        for batch in lengths:
            text.add_lengths(histogram, batch.numpy())
        return histogram

    def vocab_choice(self, settings, model_default: int | None, available: int | None):
        return vocab_size_lib.VocabChoice(None, "preset", "the checkpoint's own tokenizer and vocabulary")

    def make_vectorizer(self, plan, settings, data):
        from models.zoo import pretrained

        return pretrained.preset_vectorizer(settings.preset, plan.max_len.max_len, plan.truncate)

    def build_arguments(self, settings) -> dict:
        return {"preset": str(settings.preset)}

    def describe(self, settings, model) -> dict:
        from models.zoo import pretrained

        return dataclasses.asdict(pretrained.describe(Path(settings.preset), model))


PREPROCESSORS = {preprocessor.name: preprocessor for preprocessor in (ShardVocabulary(), PresetTokenizer())}


def for_spec(spec):
    """The preprocessor the spec names."""
    return PREPROCESSORS[spec.preprocessor]
