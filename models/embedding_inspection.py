"""`embed` (the command): how a trained model's embedding layer(s) represent a sentence; projector files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models.run_dir import RunDir
from pipeline import atomic, text
from pipeline.errors import ReviewflowError

OOV_ID = 1  # TextVectorization's id for every word outside its vocabulary ([UNK]; 0 is padding)


def parts(model: keras.Model) -> tuple[keras.layers.TextVectorization, list[keras.layers.Embedding]]:
    """The vectorizer and the embedding layers of an end-to-end model; a ReviewflowError for a model without one
    (`linear`), which would otherwise show nothing and succeed."""
    vectorizer = model.get_layer("vectorizer")
    inner = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    embeddings = [layer for layer in inner.layers if isinstance(layer, keras.layers.Embedding)]
    if not embeddings:
        raise ReviewflowError(f"the {inner.name} model has no embedding layer (it weighs each word directly): there "
                              "are no vectors to show. `predict --explain` shows each word's part in a score.")
    return vectorizer, embeddings


def pretrained_parts(model: keras.Model):
    """A fine-tuned pretrained encoder's tokenizer and token embedding, or None for a zoo model of our own."""
    vectorizer = model.get_layer("vectorizer")
    if not hasattr(vectorizer, "preprocessor"):
        return None
    backbone = next(layer for layer in _nested_layers(model) if hasattr(layer, "token_embedding"))
    return vectorizer.tokenizer, backbone.token_embedding


def _nested_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _nested_layers(layer)


@dataclasses.dataclass(frozen=True)
class SentenceVectors:
    """A sentence as the model embeds it: its tokens, their ids, which the vocabulary knows, each layer's rows."""

    tokens: list[str]
    ids: list[int]
    known: list[bool]                   # False: out of the vocabulary, embedded as its unknown-token row
    vectors: dict[str, np.ndarray]      # embedding layer name -> (tokens, dim)


def embed_sentence(run_dir: Path, sentence: str) -> SentenceVectors:
    """How the run's embedding layer(s) represent a sentence; a ReviewflowError for one with no tokens."""
    model = RunDir(run_dir).load_model()
    if (found := pretrained_parts(model)) is not None:  # the checkpoint's word pieces and token embedding
        tokenizer, token_embedding = found
        ids = [int(i) for i in np.asarray(tokenizer(tf.constant([sentence]))[0]).tolist()]
        tokens = [tokenizer.id_to_token(i) for i in ids]  # an unknown word piece shows as the unknown token
        embedded = SentenceVectors(tokens, ids, [True] * len(ids),
                                   {token_embedding.name: token_embedding.embeddings.numpy()[ids]})
    else:
        vectorizer, embeddings = parts(model)
        tokens = [t.decode("utf-8") for t in text.tokenize(tf.constant([sentence]))[0].numpy().tolist()]
        ids = vectorizer(tf.constant([sentence])).numpy()[0][: len(tokens)].tolist()
        embedded = SentenceVectors(tokens, ids, [token_id != OOV_ID for token_id in ids],
                                   {layer.name: layer.embeddings.numpy()[ids] for layer in embeddings})
    if not embedded.tokens:
        raise ReviewflowError(f"{sentence!r} has no tokens once standardized (lowercased, punctuation taken out "
                              "as training does): give a sentence with words.")
    return embedded


def write_projector(run_dir: Path, out_dir: Path) -> list[Path]:
    """vectors.tsv (per embedding layer) and metadata.tsv for TensorBoard's Embedding Projector."""
    vectorizer, embeddings = parts(RunDir(run_dir).load_model())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocabulary = vectorizer.get_vocabulary()
    atomic.write_text(out_dir / "metadata.tsv", "".join((token or "[PAD]") + "\n" for token in vocabulary))
    written = [out_dir / "metadata.tsv"]
    for layer in embeddings:
        name = "vectors.tsv" if len(embeddings) == 1 else f"vectors-{layer.name}.tsv"
        rows = layer.embeddings.numpy()[: len(vocabulary)]
        atomic.write_text(out_dir / name, "".join("\t".join(f"{v:.6f}" for v in row) + "\n" for row in rows))
        written.append(out_dir / name)
    return written
