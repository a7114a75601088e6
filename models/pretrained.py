"""`fit --embeddings FILE`: start a model's embedding layer(s) from pretrained word vectors."""

from __future__ import annotations

import inspect

import keras

from models import zoo
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from pipeline.vectors import PretrainedVectors


def embedding_layers(model: keras.Model) -> list[keras.layers.Embedding]:
    """The token embeddings of a token-id model (`embedding`, or one per branch: `*_embedding`)."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.Embedding) and layer.name.endswith("embedding")]


def hparams_for(model_name: str, hparams: dict, vectors: PretrainedVectors) -> dict:
    """The builder's arguments with `embedding_dim` set to the vectors' where the user left it unset."""
    accepts = "embedding_dim" in inspect.signature(zoo.module(model_name).build).parameters
    if not accepts:
        raise ReviewflowError(f"--embeddings: the {model_name} model has no word embedding to start from vectors; "
                              "choose a model with one (cnn, lstm, ffn, ngram_bag, transformer, ...).")
    if "embedding_dim" in hparams and hparams["embedding_dim"] != vectors.dim:
        raise ReviewflowError(f"--embeddings: {vectors.path} has {vectors.dim}-dimensional vectors but "
                              f"--param embedding_dim={hparams['embedding_dim']}; drop that --param (the model then "
                              f"takes {vectors.dim}) or use vectors of that size.")
    return {**hparams, "embedding_dim": vectors.dim}


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


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
