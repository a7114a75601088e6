"""A pretrained Transformer encoder (BERT, DistilBERT, RoBERTa, DeBERTaV3, ELECTRA, ...), fine-tuned.

`--preset DIR` is a local directory, never downloaded: a KerasHub preset
(`config.json` with a `registered_name`, `metadata.json`, weights, tokenizer
assets) or a Hugging Face checkpoint (`config.json` with a `model_type`,
`model.safetensors`, and `vocab.txt` or only `tokenizer.json`). KerasHub loads
both (`Backbone.from_preset`); for a Hugging Face BERT-family directory with
`tokenizer.json` alone, the WordPiece vocabulary and lowercasing are read from
it here. The preset's tokenizer and packer are tensorflow-text ops: they run
in `tf.data` on the shards' raw text and inside `model.keras` (wrapped in
`PresetPreprocessor`), so the saved model takes raw strings like every other.

The classifier: the encoder's token vectors, averaged over real tokens (the
padding mask), as sentence-transformers pool; dropout; one sigmoid unit.
Fine-tuned as practitioners do: AdamW with linear warm-up then linear decay,
gradient clipping, a small learning rate, batch 32, early stopping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from pathlib import Path

import keras

from models.zoo.layers import MeanOverMask, class_probabilities
from pipeline.errors import ReviewflowError

WEIGHT_FILES = ("model.safetensors", "model.weights.h5")
HF_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")
PACKED_SPECIAL_TOKENS = 2   # the packer adds a start and an end token ([CLS] ... [SEP], <s> ... </s>)


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """What `config.json` records of the checkpoint a run was fine-tuned from."""

    path: str
    format: str                 # "keras_hub" or "huggingface"
    architecture: str           # the backbone's class, e.g. BertBackbone
    weights_file: str
    weights_sha256: str
    parameters: int
    max_sequence_length: int | None


def check_preset(path: Path) -> str:
    """The directory's format, "keras_hub" or "huggingface"; a ReviewflowError naming what is missing."""
    path = Path(path)
    expected = ("Expected a KerasHub preset (config.json, metadata.json, model.weights.h5, tokenizer.json and its "
                "assets, as save_to_preset writes) or a Hugging Face checkpoint of a BERT-family encoder "
                "(config.json, model.safetensors, and vocab.txt or tokenizer.json).")
    if not path.is_dir():
        raise ReviewflowError(f"--preset {path}: no such directory. {expected}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ReviewflowError(f"--preset {path}: no config.json. {expected}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReviewflowError(f"--preset {path}: config.json is not JSON ({exc}). {expected}") from exc
    if "registered_name" in config:
        missing = [name for name in ("metadata.json", "model.weights.h5", "tokenizer.json")
                   if not (path / name).is_file()]
        kind = "keras_hub"
    elif "model_type" in config:
        missing = [] if (path / "model.safetensors").is_file() else ["model.safetensors"]
        if not any((path / name).is_file() for name in HF_TOKENIZER_FILES):
            missing.append("vocab.txt or tokenizer.json")
        kind = "huggingface"
    else:
        raise ReviewflowError(f"--preset {path}: config.json names neither a KerasHub class (registered_name) nor "
                              f"a Hugging Face model_type. {expected}")
    if missing:
        raise ReviewflowError(f"--preset {path}: missing {', '.join(missing)}. {expected}")
    return kind


def _keras_hub():
    try:
        import keras_hub
    except ImportError as exc:  # an install without the pretrained extra
        raise ReviewflowError("the pretrained model needs KerasHub: pip install 'keras-hub==0.32.*' "
                              "(setup.cfg installs it).") from exc
    return keras_hub


def load_backbone(path: Path):
    """The pretrained encoder with its weights (KerasHub's own loader, for either kind of directory)."""
    kind = check_preset(path)
    try:
        return _keras_hub().models.Backbone.from_preset(str(path))
    except (ValueError, KeyError, OSError) as exc:
        raise ReviewflowError(f"--preset {path} ({kind}): KerasHub could not load its encoder: "
                              f"{str(exc).splitlines()[0][:300]}") from exc


def load_tokenizer(path: Path):
    """The preset's tokenizer; for a Hugging Face directory with only tokenizer.json, built from it."""
    path = Path(path)
    kind = check_preset(path)
    keras_hub = _keras_hub()
    if kind == "huggingface" and not (path / "vocab.txt").is_file():
        return wordpiece_from_tokenizer_json(path / "tokenizer.json")
    try:
        return keras_hub.models.Tokenizer.from_preset(str(path))
    except (ValueError, KeyError, OSError) as exc:
        raise ReviewflowError(f"--preset {path} ({kind}): KerasHub could not load its tokenizer: "
                              f"{str(exc).splitlines()[0][:300]}") from exc


def wordpiece_from_tokenizer_json(path: Path):
    """A BERT tokenizer from a Hugging Face `tokenizer.json` holding a WordPiece model (no vocab.txt)."""
    try:
        spec = json.loads(Path(path).read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ReviewflowError(f"{path}: not JSON ({exc}); the preset's tokenizer.json is damaged. Restore it, or "
                              "give the preset a vocab.txt.") from None
    model = (spec.get("model") if isinstance(spec, dict) else None) or {}
    if model.get("type") != "WordPiece":
        raise ReviewflowError(f"{path}: the tokenizer is {model.get('type')!r}, not WordPiece; give the preset a "
                              "vocab.txt, or convert it to a KerasHub preset (save_to_preset).")
    vocabulary = [token for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1])]
    normalizer = spec.get("normalizer") or {}
    lowercase = bool(normalizer.get("lowercase", True))
    return _keras_hub().models.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase)


def preset_vectorizer(preset: Path, max_len: int, truncate: str = "head") -> "PresetPreprocessor":
    """Raw strings -> the encoder's inputs (token ids, padding mask, ...) of `max_len` word pieces; a longer
    review keeps its `truncate` part (text.TRUNCATIONS)."""
    tokenizer = load_tokenizer(preset)
    keras_hub = _keras_hub()
    try:
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            str(preset), tokenizer=tokenizer, sequence_length=max_len)
    except (ValueError, KeyError, OSError):  # a Hugging Face BERT directory: KerasHub's BERT packer
        preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=max_len)
    return PresetPreprocessor(preprocessor, max_len, truncate=truncate, name="vectorizer")


def build(vocab_size: int = 0, max_len: int = 128, preset: str = "", dropout: float = 0.1,
          num_classes: int = 2) -> keras.Model:
    """The encoder's inputs -> encoder -> mean over real tokens -> Dropout -> Dense(1) sigmoid.

    `vocab_size` is the preset's own (the shards' vocabulary is not used).
    """
    backbone = load_backbone(Path(preset))
    limit = getattr(backbone, "max_sequence_length", None)
    if limit is not None and max_len > limit:
        raise ReviewflowError(f"--max-len {max_len} is above the checkpoint's limit of {limit} positions "
                              f"({preset}); give --max-len {limit} or less.")
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in backbone.input}
    outputs = backbone(inputs)
    sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    pooled = MeanOverMask(name="mean_over_tokens")(sequence, inputs["padding_mask"])
    x = keras.layers.Dropout(dropout)(pooled)
    return keras.Model(inputs, class_probabilities(x, num_classes), name="pretrained")


def describe(preset: Path, model: keras.Model) -> PresetInfo:
    """The checkpoint as `config.json` records it: path, format, architecture, weights' sha256, size.

    `model`: the one `build` made, whose encoder is described (not loaded from the preset a second time).
    """
    preset = Path(preset)
    kind = check_preset(preset)
    weights = next(preset / name for name in WEIGHT_FILES if (preset / name).is_file())
    with open(weights, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    backbone = next(layer for layer in model.layers if hasattr(layer, "token_embedding"))
    return PresetInfo(str(preset.resolve()), kind, type(backbone).__name__, weights.name, digest,
                      backbone.count_params(), getattr(backbone, "max_sequence_length", None))


def word_spans(review: str) -> list[tuple[int, int]]:
    """The (start, end) characters of the words a BERT tokenizer makes of `review` before its word pieces:
    the runs between whitespace, with each punctuation mark and each CJK character a word of its own."""
    spans, start = [], None
    for index, character in enumerate(review):
        alone = _is_punctuation(character) or _is_cjk(character)
        if character.isspace() or alone:
            if start is not None:
                spans.append((start, index))
                start = None
            if alone:
                spans.append((index, index + 1))
        elif start is None:
            start = index
    if start is not None:
        spans.append((start, len(review)))
    return spans


def _is_punctuation(character: str) -> bool:
    """BERT's punctuation: every ASCII symbol that is not a letter or digit, and Unicode's P* classes."""
    code = ord(character)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(character).startswith("P"))


def _is_cjk(character: str) -> bool:
    code = ord(character)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches (learning rate, batch size and warm-up: models/tuning.py)."""
    return {"dropout": hp.Float("dropout", 0.0, 0.3, step=0.1)}


@keras.saving.register_keras_serializable(package="reviewflow")
class PresetPreprocessor(keras.layers.Layer):
    """A KerasHub preprocessor (tokenizer + packer) as one layer of `model.keras`: raw strings -> inputs.

    The preprocessor itself cannot be rebuilt symbolically before its vocabulary is restored, which is
    what loading a functional model does; this layer states its output instead (`compute_output_spec`).
    """

    def __init__(self, preprocessor, max_len: int, outputs: list[str] | None = None, truncate: str = "head",
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(preprocessor, dict):
            preprocessor = keras.saving.deserialize_keras_object(preprocessor)
        if truncate != "head" and not hasattr(preprocessor, "packer"):
            raise ReviewflowError(f"--truncate {truncate}: this checkpoint's preprocessor "
                                  f"({type(preprocessor).__name__}) has no packer to pack a cut review; "
                                  "use --truncate head.")
        self.preprocessor, self.max_len, self.truncate = preprocessor, max_len, truncate
        self.outputs = outputs  # the output names, found once by running the preprocessor

    def build(self, input_shape):
        self.built = True

    @property
    def tokenizer(self):
        return self.preprocessor.tokenizer

    def vocabulary_size(self) -> int:
        return self.tokenizer.vocabulary_size()

    def call(self, texts):
        inputs = self.preprocessor(texts) if self.truncate == "head" else self._cut_and_pack(texts)
        # int32 throughout (the padding mask comes as bool): the on-disk id cache and the encoder's inputs agree.
        return {name: keras.ops.cast(value, "int32") for name, value in inputs.items()}

    def _cut_and_pack(self, texts):
        """What the preprocessor does (tokenize, pack one segment), with the word pieces cut first: the
        packer's own cut keeps the head, and the ending of a long review holds its verdict."""
        import tensorflow as tf

        from pipeline import text

        pieces = self.tokenizer(texts)
        if not isinstance(pieces, tf.RaggedTensor):  # KerasHub hands eager callers Python lists
            pieces = tf.ragged.constant(pieces, dtype="int32", ragged_rank=1)
        budget = self.max_len - PACKED_SPECIAL_TOKENS
        pieces = text.head_and_tail(pieces, budget, int(budget * text.HEAD_SHARE[self.truncate]))
        if self.preprocessor.packer is None:  # KerasHub makes its packer when the preprocessor is built
            self.preprocessor.build(None)
        token_ids, segment_ids = self.preprocessor.packer(pieces)
        inputs = {"token_ids": token_ids, "padding_mask": token_ids != self.tokenizer.pad_token_id,
                  "segment_ids": segment_ids}
        return {name: inputs[name] for name in self._output_names()}

    def _output_names(self) -> list[str]:
        if self.outputs is None:
            import tensorflow as tf

            self.outputs = sorted(self.preprocessor(tf.constant(["a"])))
        return self.outputs

    def compute_output_spec(self, texts):
        return {name: keras.KerasTensor((texts.shape[0], self.max_len), dtype="int32", name=name)
                for name in self._output_names()}

    def get_config(self):
        return {**super().get_config(), "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
                "max_len": self.max_len, "outputs": self.outputs, "truncate": self.truncate}
