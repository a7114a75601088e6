"""Small layers shared by the architectures."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="reviewflow")
class PaddingMask(keras.layers.Layer):
    """Token ids (batch, length) -> mask, True on real tokens (padding id 0 is at the end).

    The first position is always True: a review that vectorizes to no tokens
    is read as one padding token instead of an empty sequence, which cuDNN's
    LSTM kernel cannot take. Masks stay right-padded, so cuDNN stays eligible.
    """

    def call(self, ids):
        first = ops.arange(ops.shape(ids)[1]) == 0
        return ops.logical_or(ops.not_equal(ids, 0), first[None, :])

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")
