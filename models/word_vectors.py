"""`fit --embeddings FILE`: start a model's embedding layer(s) from pretrained word vectors."""

from __future__ import annotations

import dataclasses

import keras

from models import zoo
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from pipeline.vectors import PretrainedVectors, read_vectors


def embedding_layers(model: keras.Model) -> list[keras.layers.Embedding]:
    """The token embeddings of a token-id model (`embedding`, or one per branch: `*_embedding`)."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.Embedding) and layer.name.endswith("embedding")]


def has_word_embedding(model_name: str) -> bool:
    return "embedding_dim" in zoo.parameters(model_name)


def table_holds_ngrams(model_name: str, hparams: dict) -> bool:
    """Whether the model's embedding table holds hashed n-grams after its words (`ngram_bag`, ngrams > 1)."""
    defaults = zoo.parameters(model_name)
    return "embedding_dim" in defaults and "ngrams" in defaults and hparams.get("ngrams", defaults["ngrams"]) > 1


def hparams_for(model_name: str, hparams: dict, vectors: PretrainedVectors, freeze: bool = False) -> dict:
    """The builder's arguments with `embedding_dim` set to the vectors' where the user left it unset."""
    if not has_word_embedding(model_name):
        raise ReviewflowError(f"--embeddings: the {model_name} model has no word embedding to start from vectors; "
                              "choose a model with one (cnn, lstm, ffn, ngram_bag, transformer, ...).")
    if freeze and table_holds_ngrams(model_name, hparams):
        raise ReviewflowError(f"--freeze-embeddings: {model_name} keeps its hashed n-grams in the same table as "
                              "its words, and frozen they would stay at their random start. Leave out "
                              "--freeze-embeddings (the vectors still start the word rows), or pass --param ngrams=1.")
    if "embedding_dim" in hparams and hparams["embedding_dim"] != vectors.dim:
        raise ReviewflowError(f"--embeddings: {vectors.path} has {vectors.dim}-dimensional vectors but "
                              f"--param embedding_dim={hparams['embedding_dim']}; drop that --param (the model then "
                              f"takes {vectors.dim}) or use vectors of that size.")
    return {**hparams, "embedding_dim": vectors.dim}


def with_vectors(settings, data: DataDir, vocab_size: int | None):
    """`settings` (FitSettings) with `embedding_dim` set by its --embeddings file, and the vectors of the first
    `vocab_size` ids read; or as they are, and None, without one."""
    if settings.embeddings is None:
        return settings, None
    vectors = read_vectors(settings.embeddings, data.vocabulary(vocab_size))
    hparams = hparams_for(settings.model, settings.hparams, vectors, settings.freeze_embeddings)
    return dataclasses.replace(settings, hparams=hparams), vectors


def initialize(model: keras.Model, vectors: PretrainedVectors, freeze: bool) -> list[str]:
    """Copy each covered word's vector into every token embedding; returns the layers' names."""
    layers = embedding_layers(model)
    if not layers:
        raise ReviewflowError(f"--embeddings: the {model.name} model has no word embedding layer.")
    for layer in layers:
        weights = layer.embeddings.numpy()
        rows = len(vectors.covered)  # ngram_bag's table goes on past the words, with its n-gram buckets
        weights[:rows][vectors.covered] = vectors.matrix[vectors.covered]
        layer.embeddings.assign(weights)
        layer.trainable = not freeze
    return [layer.name for layer in layers]


def describe(vectors: PretrainedVectors, data: DataDir, freeze: bool) -> dict:
    """What config.json records: the file, its size and how much of the vocabulary and the tokens it covers."""
    return {"path": vectors.path, "dim": vectors.dim, "lines_read": vectors.lines_read,
            "vocab_ids_covered": vectors.ids_covered, "share_of_vocab_ids": round(vectors.share_of_ids(), 6),
            "share_of_training_tokens": _rounded(vectors.share_of_tokens(data.token_counts(),
                                                                          data.manifest.vocabulary.tokens_seen)),
            "frozen": freeze}


def coverage_line(described: dict) -> str:
    """What `fit` prints of the vectors `describe` recorded."""
    tokens = described["share_of_training_tokens"]
    return (f"embeddings: {described['path']} ({described['dim']} dimensions) covers "
            f"{described['share_of_vocab_ids']:.1%} of the vocabulary"
            + (f" and {tokens:.1%} of training tokens" if tokens is not None else "")
            + ("; frozen" if described["frozen"] else ""))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
