"""The model zoo: one builder per architecture, token ids (batch, max_len) -> P(positive) (batch, 1)."""

from __future__ import annotations

from models import cnn, cnn_lstm, ffn, hybrid, lstm, rnn

MODELS = {
    "cnn": cnn.build,
    "rnn": rnn.build,
    "lstm": lstm.build,
    "cnn_lstm": cnn_lstm.build,
    "ffn": ffn.build,
    "hybrid": hybrid.build,
    "hybrid_split": hybrid.build_split,
}

# The studies' optimizers: RMSprop with Keras's default rate, Adam 1e-3 for the hybrids.
DEFAULT_OPTIMIZER = {"hybrid": "adam", "hybrid_split": "adam"}
FALLBACK_OPTIMIZER = "rmsprop"
DEFAULT_LEARNING_RATE = 1e-3


def optimizer_for(model_name: str) -> str:
    return DEFAULT_OPTIMIZER.get(model_name, FALLBACK_OPTIMIZER)
