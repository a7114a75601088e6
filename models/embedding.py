"""`embed`: how a trained model's embedding layer(s) represent a sentence; projector files."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models.run_dir import RunDir
from pipeline import atomic, text


def parts(model: keras.Model) -> tuple[keras.layers.TextVectorization, list[keras.layers.Embedding]]:
    """The vectorizer and the embedding layers of an end-to-end model."""
    vectorizer = model.get_layer("vectorizer")
    inner = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    embeddings = [layer for layer in inner.layers if isinstance(layer, keras.layers.Embedding)]
    return vectorizer, embeddings


def embed_sentence(run_dir: Path, sentence: str) -> tuple[list[str], list[int], dict[str, np.ndarray]]:
    """(tokens, ids, {embedding layer name: (tokens, dim) vectors}) for a sentence."""
    vectorizer, embeddings = parts(RunDir(run_dir).load_model())
    tokens = [t.decode("utf-8") for t in text.tokenize(tf.constant([sentence]))[0].numpy().tolist()]
    ids = vectorizer(tf.constant([sentence])).numpy()[0][: len(tokens)].tolist()
    return tokens, ids, {layer.name: layer.embeddings.numpy()[ids] for layer in embeddings}


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
