"""Which words made a prediction: attributions for every model of the zoo, on the user's own text.

Two methods, one answer's shape:
- the bags (`linear`, `ngram_bag`) are linear in their features: their module's `token_contributions` splits
  the logit exactly, weight times feature value, each n-gram's part shared by the tokens it covers;
- every other model: integrated gradients (Sundararajan et al. 2017) at the token embeddings' output, from a
  padding baseline (each word's vector replaced by the padding id's, the mask and special tokens kept) to the
  review, in `steps` midpoint steps run `steps_per_batch` at a time, so memory stays bounded.

The target is the logit of the explained class, as the calibrated model gives it (divided by the run's
temperature): for two classes the log-odds of the class, for N the class's logit. Tokens come back merged
into the review's words (word pieces too), each with its characters in the review, so a page can shade them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from models import zoo
from models.run_dir import RunConfig
from models.zoo.layers import Temperature, all_layers
from pipeline import text as text_lib
from pipeline.errors import ReviewflowError

DEFAULT_STEPS = 50          # integrated gradients' steps (Captum's default); the error it leaves is reported
STEPS_PER_BATCH = 25        # interpolated reviews run at once: memory is this many reviews' activations
DEFAULT_TOP = 5             # words `predict --explain` prints on each side


@dataclasses.dataclass(frozen=True)
class WordWeight:
    """One word of the review: its text, its characters [start, end) in the review (None if unknown), its part."""

    text: str
    start: int | None
    end: int | None
    weight: float


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why the model gave `label`: each word's part of the explained class's logit."""

    label: str                   # as `predict` prints it ("__label__2" for a fastText corpus)
    probability: float           # of that label
    method: str                  # "exact" (linear in its features) or "integrated_gradients"
    words: tuple[WordWeight, ...]
    logit: float                 # the explained class's logit for the review
    reference: float             # the bias (exact), or the logit of the padding baseline (integrated gradients)
    completeness_error: float    # |sum of the weights - (logit - reference)|: 0 up to rounding when exact
    steps: int | None = None

    def top(self, count: int = DEFAULT_TOP) -> tuple[list[WordWeight], list[WordWeight]]:
        """The `count` words that pushed most towards the label, and most against it."""
        ranked = sorted(self.words, key=lambda word: word.weight)
        return ([word for word in reversed(ranked) if word.weight > 0][:count],
                [word for word in ranked if word.weight < 0][:count])

    def summary(self, count: int = DEFAULT_TOP) -> str:
        """The top words on each side, as `predict --explain` prints them: "for: excellent +0.66 ...\tagainst: ..."."""
        pushed, pulled = self.top(count)
        show = lambda words: " ".join(f"{word.text}{word.weight:+.3f}" for word in words) or "-"  # noqa: E731
        return f"for: {show(pushed)}\tagainst: {show(pulled)}"

    def to_json(self) -> dict:
        return {"label": self.label, "probability": self.probability, "method": self.method,
                "logit": self.logit, "reference": self.reference, "completeness_error": self.completeness_error,
                "steps": self.steps, "tokens": [dataclasses.asdict(word) for word in self.words]}


def inner_model(model: keras.Model) -> keras.Model:
    """The token-id model inside an end-to-end `model.keras`."""
    found = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(found) != 1:
        raise ReviewflowError(f"{model.name}: not a reviewflow end-to-end model (vectorizer, then one model).")
    return found[0]


def temperature_of(model: keras.Model) -> float:
    return next((layer.temperature for layer in model.layers if isinstance(layer, Temperature)), 1.0)


class Explainer:
    """Explanations of one run's end-to-end model (as `RunDir.load_model` gives it)."""

    def __init__(self, model: keras.Model, config: RunConfig, steps: int = DEFAULT_STEPS,
                 steps_per_batch: int = STEPS_PER_BATCH):
        if steps < 1 or steps_per_batch < 1:
            raise ReviewflowError(f"integrated gradients needs at least 1 step (and 1 a batch), got {steps} "
                                  f"({steps_per_batch} a batch).")
        self.model, self.config = model, config
        self.inner = inner_model(model)
        self.vectorizer = model.get_layer("vectorizer")
        self.temperature = temperature_of(model)
        self.names = config.class_names()
        self.steps, self.steps_per_batch = steps, steps_per_batch
        self.exact = getattr(zoo.spec(config.model).module(), "token_contributions", None)
        self.words = PieceWords(self.vectorizer) if zoo.spec(config.model).needs_preset else TokenWords(
            self.vectorizer, config.settings.get("max_len"), config.settings.get("truncate") or "head")
        self.embeddings = self.words.token_embeddings(self.inner)  # integrated gradients' inputs

    @classmethod
    def for_run(cls, run_dir, steps: int | None = None) -> "Explainer":
        """The explainer of a trained run directory's `model.keras` (`steps` None: DEFAULT_STEPS)."""
        from models.run_dir import RunDir

        run = RunDir(run_dir)
        return cls(run.load_model(), run.config(), steps or DEFAULT_STEPS)

    def class_index(self, name: str | None, probabilities: np.ndarray) -> int:
        """The named class's output index (its name, or its label as `predict` prints it), or the predicted one."""
        if name is None:
            return int(probabilities.argmax()) if len(probabilities) > 1 else int(probabilities[0] >= 0.5)
        prefix = self.config.label_prefix()
        if name not in self.names and prefix and name.startswith(prefix):
            name = name[len(prefix):]
        if name not in self.names:
            raise ReviewflowError(f"--explain-class {name!r} is not one of the run's classes: "
                                  f"{', '.join(self.names)}.")
        return self.names.index(name)

    def explain(self, review: str, class_name: str | None = None) -> Explanation:
        """Each word's part in the model's logit for `class_name` (None: the predicted class)."""
        probabilities = np.asarray(self.model.predict_on_batch(tf.constant([review])), float)[0]
        index = self.class_index(class_name, probabilities)
        probability = float(probabilities[index] if len(probabilities) > 1 else
                            (probabilities[0] if index == 1 else 1 - probabilities[0]))
        inputs = self.vectorizer(tf.constant([review]))
        # Two classes: one logit, for the positive class; the negative class's log-odds is its negation.
        unit, sign = (0, 1.0 if index == 1 else -1.0) if len(probabilities) == 1 else (index, 1.0)
        if self.exact is not None:
            parts, bias = self.exact(self.inner, inputs)
            per_position = sign * np.asarray(parts)[0, :, unit] / self.temperature
            reference = sign * float(np.asarray(bias).reshape(-1)[unit]) / self.temperature
            with logits_out(self.inner):  # the model's own logit, against which the parts are checked
                logit = sign * float(np.asarray(self.inner(inputs, training=False))[0, unit]) / self.temperature
            method, steps = "exact", None
        else:
            per_position, logit, reference = self.integrated_gradients(inputs, unit, sign)
            method, steps = "integrated_gradients", self.steps
        words = self.words.weigh(review, inputs, per_position)
        error = abs(float(per_position.sum()) - (logit - reference))
        return Explanation(self.config.label_prefix() + self.names[index], probability, method, tuple(words),
                           float(logit), float(reference), error, steps)

    def integrated_gradients(self, inputs, unit: int, sign: float) -> tuple[np.ndarray, float, float]:
        """Per-position attributions (L,) of the target logit, the review's logit and the baseline's."""
        ids = self.words.token_ids(inputs)
        baseline_ids = self.words.baseline_ids(ids)
        actual = [layer(ids) for layer in self.embeddings]
        base = [layer(baseline_ids) for layer in self.embeddings]
        target = (tf.constant(unit), tf.constant(sign / self.temperature, "float32"))
        alphas = (np.arange(self.steps, dtype="float32") + 0.5) / self.steps  # midpoints
        total = [np.zeros(value.shape[1:], "float32") for value in actual]
        for start in range(0, self.steps, self.steps_per_batch):
            chunk = tf.constant(alphas[start:start + self.steps_per_batch])
            _, gradients = self._path_gradients(inputs, actual, base, chunk, *target)
            total = [sum_ + np.asarray(gradient) for sum_, gradient in zip(total, gradients)]
        differences = [np.asarray(tf.cast(a - b, "float32"))[0] for a, b in zip(actual, base)]
        per_position = sum((gradient / self.steps * difference).sum(axis=-1)
                           for gradient, difference in zip(total, differences))
        ends, _ = self._path_gradients(inputs, actual, base, tf.constant([0.0, 1.0]), *target)
        return per_position, float(ends[1]), float(ends[0])

    @functools.cached_property
    def _path_gradients(self):
        """A graph (traced once a shape): the target logit along the path at `alphas`, and the gradients of its
        sum with respect to each embedding's output, summed over the alphas."""
        @tf.function(reduce_retracing=True)
        def path_gradients(inputs, actual, base, alphas, unit, scale):
            weights = alphas[:, None, None]
            with tf.GradientTape() as tape:
                paths = [tf.cast(tf.cast(b, "float32") + weights * tf.cast(a - b, "float32"), a.dtype)
                         for a, b in zip(actual, base)]
                for path in paths:
                    tape.watch(path)
                with replaced_outputs(self.embeddings, paths), logits_out(self.inner):
                    logits = self.inner(tree_repeat(inputs, tf.shape(alphas)[0]), training=False)
                target = scale * tf.cast(tf.gather(logits, unit, axis=1), "float32")
            gradients = tape.gradient(target, paths)
            return target, [tf.reduce_sum(tf.cast(gradient, "float32"), axis=0) for gradient in gradients]

        return path_gradients


def tree_repeat(inputs, times):
    """One review's inputs (a tensor, or a preset's dict of them) repeated `times` along the batch."""
    if isinstance(inputs, dict):
        return {name: tf.repeat(value, times, axis=0) for name, value in inputs.items()}
    return tf.repeat(inputs, times, axis=0)


@contextlib.contextmanager
def replaced_outputs(embeddings, outputs):
    """While inside, each embedding layer outputs the given tensor (a row per point of the path), whatever ids
    it is called with. A Keras layer calls `self.call`, replaced here on the instance for the moment (while the
    graph is traced); a reversed call (a tied output embedding) is left as it was."""
    originals = [layer.call for layer in embeddings]
    for layer, output, original in zip(embeddings, outputs, originals):
        def call(inputs, *args, _output=output, _original=original, **kwargs):
            return _original(inputs, *args, **kwargs) if kwargs.get("reverse") else _output

        layer.call = call
    try:
        yield
    finally:
        for layer, original in zip(embeddings, originals):
            layer.call = original


@contextlib.contextmanager
def logits_out(model: keras.Model):
    """While inside, the model's output layer (`class_probabilities`' Dense) gives logits, not probabilities."""
    output = model.layers[-1]
    activation = getattr(output, "activation", None)
    if activation is None:
        raise ReviewflowError(f"{model.name}: its last layer has no activation to take off for the logits.")
    output.activation = keras.activations.linear
    try:
        yield
    finally:
        output.activation = activation


class TokenWords:
    """The shard vocabulary's tokens: one id per token, each token a run of word characters of the review."""

    def __init__(self, vectorizer, max_len: int | None, truncate: str):
        self.max_len = max_len or vectorizer.output_sequence_length or getattr(vectorizer, "max_len")
        self.truncate = truncate

    def token_embeddings(self, model) -> list:
        """Every embedding of the token ids (two, where the branches have their own)."""
        return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Embedding)]

    def token_ids(self, inputs):
        return inputs

    def baseline_ids(self, ids):
        return tf.zeros_like(ids)  # padding, id 0, at every position

    def weigh(self, review: str, inputs, per_position: np.ndarray) -> list[WordWeight]:
        """Per-position weights -> the review's words, with their characters where they can be found."""
        tokens, spans = text_lib.token_spans(review)
        kept = text_lib.kept_positions(len(tokens), self.max_len, self.truncate)
        words = []
        for position, index in enumerate(kept):
            start, end = spans[index] if spans is not None else (None, None)
            shown = review[start:end] if spans is not None else tokens[index]
            words.append(WordWeight(shown, start, end, float(per_position[position])))
        return merge_same_span(words)


def merge_same_span(words: list[WordWeight]) -> list[WordWeight]:
    """One entry per word of the review: tokens that came from the same characters summed."""
    merged: list[WordWeight] = []
    for word in words:
        if merged and word.start is not None and (merged[-1].start, merged[-1].end) == (word.start, word.end):
            merged[-1] = dataclasses.replace(merged[-1], weight=merged[-1].weight + word.weight)
        else:
            merged.append(word)
    return merged


class PieceWords:
    """A checkpoint's word pieces ([CLS] ... [SEP], '##' continuing a word), merged back into words."""

    def __init__(self, vectorizer):
        self.vectorizer = vectorizer
        self.tokenizer = vectorizer.tokenizer
        self.pad_id = int(self.tokenizer.pad_token_id)
        # The packer's own tokens ([CLS], [SEP], padding): not words of the review ([UNK] is one).
        names = ("cls_token_id", "sep_token_id", "pad_token_id", "start_token_id", "end_token_id")
        self.special_ids = {int(value) for name in names
                            if (value := getattr(self.tokenizer, name, None)) is not None}

    def token_embeddings(self, model) -> list:
        backbone = next(layer for layer in all_layers(model) if hasattr(layer, "token_embedding"))
        return [backbone.token_embedding]

    def token_ids(self, inputs):
        return inputs["token_ids"]

    def baseline_ids(self, ids):
        special = np.isin(np.asarray(ids), list(self.special_ids))
        return tf.constant(np.where(special, np.asarray(ids), self.pad_id), dtype=ids.dtype)

    def weigh(self, review: str, inputs, per_position: np.ndarray) -> list[WordWeight]:
        from models.zoo import pretrained

        ids = np.asarray(inputs["token_ids"])[0]
        special = self.special_ids
        groups: list[tuple[str, float]] = []
        for position, piece_id in enumerate(ids.tolist()):
            if piece_id in special:
                continue
            piece = self.tokenizer.id_to_token(piece_id)
            if piece.startswith("##") and groups:
                groups[-1] = (groups[-1][0] + piece[2:], groups[-1][1] + float(per_position[position]))
            else:
                groups.append((piece, float(per_position[position])))
        spans = pretrained.word_spans(review)
        truncate = getattr(self.vectorizer, "truncate", "head")
        if len(groups) == len(spans):
            located = spans
        elif len(groups) < len(spans) and truncate in ("head", "tail"):  # a cut review: its start, or its end
            located = spans[:len(groups)] if truncate == "head" else spans[len(spans) - len(groups):]
        else:
            located = None
        if located is None:
            return [WordWeight(word, None, None, weight) for word, weight in groups]
        return [WordWeight(review[start:end], start, end, weight)
                for (_, weight), (start, end) in zip(groups, located)]


def shaded(review: str, explanation: Explanation) -> list[dict] | None:
    """The review cut into pieces for a page: each word with its weight and a background whose colour says
    which way it pushed (blue: towards the label, orange: against) and whose strength says how far; the text
    between words as it is. None when some word's place in the review is not known."""
    if any(word.start is None for word in explanation.words):
        return None
    largest = max((abs(word.weight) for word in explanation.words), default=0.0) or 1.0
    pieces, at = [], 0
    for word in explanation.words:  # in the review's order, one a span (`merge_same_span`)
        if word.start > at:
            pieces.append({"text": review[at:word.start], "weight": None, "style": ""})
        strength = 0.75 * abs(word.weight) / largest
        colour = "31, 119, 180" if word.weight >= 0 else "255, 127, 14"
        pieces.append({"text": review[word.start:word.end], "weight": word.weight,
                       "style": f"background: rgba({colour}, {strength:.2f})"})
        at = word.end
    if at < len(review):
        pieces.append({"text": review[at:], "weight": None, "style": ""})
    return pieces
