"""The model zoo: the registry of architectures, one frozen `ModelSpec` each (models/zoo/spec.py).

Every builder maps token ids (batch, any length up to max_len; padding masked) to P(positive) (batch, 1) for two
classes, or to a softmax over `num_classes` (batch, N) (`layers.class_probabilities`).
The registry is plain data: `--help`, `stats` and the run plan read it without
TensorFlow. Adding an architecture is its module `models/zoo/NAME.py` (`build`,
`search_space`, optionally `adapt`) and one entry below; the test matrices are
made from this registry.
"""

from __future__ import annotations

import math

from models.zoo.spec import BAG_LENGTHS, EMBEDDING_VOCAB_SIZE, LengthPolicy, ModelSpec  # noqa: F401 - re-exported
from pipeline.errors import ReviewflowError

SPECS = (
    ModelSpec("cnn", "the reference study's CNN: three convolutions with batch norm and pooling"),
    ModelSpec("rnn", "the study's SimpleRNN"),
    ModelSpec("lstm", "the study's LSTM"),
    ModelSpec("cnn_lstm", "the study's CNN then LSTM"),
    # RMSprop at 3e-3, not the studies' 1e-3: an averaged embedding moves slowly, and a small corpus gives few
    # steps. Test accuracy, two seeds each, 1e-3 -> 3e-3: BBC News (1,174 articles) 0.727 / 0.667 -> 0.937 /
    # 0.939; 2,412 long synthetic reviews 0.830 / 0.875 -> 0.900 / 0.910; the 5-star corpus 0.524 / 0.518 ->
    # 0.535 / 0.520; IMDB 0.8860 / 0.8867 -> 0.8853 / 0.8839, in 8-9 epochs instead of 10; the 200k-line
    # Amazon-like corpus 0.8416 / 0.8430 -> 0.8424 / 0.8410, in 5-6 epochs instead of 6-8. 1e-2 failed a seed.
    ModelSpec("ffn", "the studies' feed-forward bag of embeddings", lengths=BAG_LENGTHS, learning_rate=3e-3),
    # The study trains the hybrids with Adam at 1e-3.
    ModelSpec("hybrid", "the IMDB study's CNN || BiLSTM on one shared embedding", optimizer="adam"),
    ModelSpec("hybrid_split", "the IMDB study's CNN || BiLSTM, one embedding per branch", optimizer="adam"),
    # Row-wise Adagrad (models/zoo/optimizers.py), on the embedding rows a batch uses only: one compiled
    # function a step, where Keras's Adam would update the whole table and both its moment tables.
    # A step costs ~4 ms: 8 steps per call into TensorFlow keep Keras's per-step overhead off it. A linear model
    # on averaged embeddings takes larger steps than the deep ones. Every word of the shard's vocabulary (32768
    # ids by default): a bag's weight per word is cheap, and rare words carry sentiment ("unwatchable"). On IMDB,
    # 8192 -> 32768 ids: linear 0.9047 -> 0.9067, ngram_bag 0.9038 -> 0.9053.
    # XLA compiles the whole step (gather, mean, gradient, row updates) into a few loops: a step alone takes half
    # the time of TensorFlow's kernels (batch 256: 3.9 vs 7.9 ms); in a whole fit on the Amazon-like corpus, a
    # cached epoch of 625 steps took 0.3-1.2 s less, and the first +2.3 s of compiles (one per batch width and
    # function). 5000 steps sure to be trained repay them (early stopping's least: 4 epochs; 160k reviews give 2500);
    # on 400k reviews (6248), the whole fit was 1.11x as fast as without.
    ModelSpec("ngram_bag", "fastText's bag of word and hashed n-gram embeddings, then one linear layer",
              optimizer="row_adagrad", learning_rate=1e-1, batch_size=256, lengths=BAG_LENGTHS, vocab_size=None,
              steps_per_execution=8, xla_from_steps=5000),
    # A convex model on normalized features: large steps are safe. Trained to convergence, as scikit-learn trains
    # it: the L2 penalty is the regularizer, and on a small corpus the validation loss (noisy, and rising as the
    # model grows sure of itself) picked the first epoch. Three epochs converge: IMDB's validation accuracy was
    # 0.9079, 0.9081, 0.9124 after epochs 1-3 and 0.9089-0.9126 after 4-10 (test 0.9065 after 3, 0.9047 after
    # 10); the Amazon-like corpus's 0.8211, 0.8206, 0.8200 (test 0.8225 / 0.8223).
    # Its rate decays linearly to 0 over the run (after 1% of warm-up): at a constant 5e-2 Adam circled the
    # optimum (BBC News: the training loss flat at 0.68-0.71 from the second epoch, 0.50 with the decay). Test
    # accuracy, constant -> decay: BBC 0.9670 / 0.9560 / 0.9686 -> 0.9686 / 0.9717 / 0.9733 (seeds 1-3); the
    # 200k-line Amazon-like corpus 0.8224 -> 0.8274; IMDB 0.9076 / 0.9054 -> 0.9061 / 0.9065 (a tie); ~2,400 short
    # or long synthetic reviews within a 200-review test's noise (0.847 -> 0.847, 0.940 -> 0.932, three seeds);
    # the synthetic 5-star corpus lost 0.6 (0.4406 -> 0.4346, three seeds: it fits the training reviews closer).
    ModelSpec("linear", "logistic regression on TF-IDF-weighted word n-grams (scikit-learn's classic)",
              optimizer="adam", learning_rate=5e-2, warmup_share=0.01, batch_size=256, epochs=3,
              early_stopping=False, lengths=BAG_LENGTHS, vocab_size=None, steps_per_execution=8),
    # evaluate/predict score 256 reviews at once (not 4096): attention's scores are (batch, heads, length,
    # length) floats, 14 GB at 4096 x 4 x 464 x 464 (IMDB's chosen length), which ran out of a 24 GB machine.
    ModelSpec("transformer", "a small Transformer encoder trained from scratch", optimizer="adam",
              inference_batch_size=256),
    # Fine-tuned as practitioners do: AdamW at BERT's 2e-5..5e-5 (Devlin et al. 2019), linear warm-up over 10%
    # of the steps then decay, clipping, batch 32. Lengths are the preset's word pieces (counted by its own
    # tokenizer): 90% of reviews, at most 256; attention's memory grows with the square (on a GPU, 512 is
    # common). evaluate/predict score 128 at once: MiniLM's activations at 4096 x 128 pieces took 15 GB.
    ModelSpec("pretrained", "a pretrained BERT-family encoder from --preset DIR, fine-tuned",
              optimizer="adamw", learning_rate=3e-5, batch_size=32, warmup_share=0.1, clipnorm=1.0,
              lengths=LengthPolicy(coverage=0.9, cap=256), vocab_size=None, inference_batch_size=128,
              preprocessor="preset"),
)
MODELS = tuple(spec.name for spec in SPECS)
_BY_NAME = {spec.name: spec for spec in SPECS}
assert len(_BY_NAME) == len(SPECS), "two specs share a name"


def spec(name: str) -> ModelSpec:
    """The architecture's spec; refuses a name outside the registry."""
    if name not in _BY_NAME:
        raise ReviewflowError(f"unknown model {name!r}; choose from {', '.join(MODELS)}.")
    return _BY_NAME[name]


def parameters(name: str) -> dict:
    """The builder's arguments that `--param` may set, with their defaults."""
    return spec(name).parameters()


def check_hyperparameters(name: str, hyperparameters: dict) -> None:
    """Refuse a `--param` name the builder does not take, listing those it does, and a value not of its
    default's kind (KINDS)."""
    defaults = parameters(name)
    unknown = sorted(set(hyperparameters) - set(defaults))
    if unknown:
        accepted = ", ".join(f"{key}={value!r}" for key, value in defaults.items())
        raise ReviewflowError(f"--param {', '.join(unknown)}: the {name} model takes no such argument. "
                              f"Its arguments, with their defaults: {accepted}.")
    for key, value in hyperparameters.items():
        kind = KINDS.get(type(defaults[key]))
        if kind is not None and not kind[1](value):
            default = defaults[key]
            raise ReviewflowError(f"--param {key}={value!r}: the {name} model's {key} is {kind[0]} (default: "
                                  f"{list(default) if isinstance(default, tuple) else default}).")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What a `--param` value must be, by the type of the argument's default: how the error names it, and the check.
# (Keras would refuse a wrong one deep inside the builder, in words about its own arguments, or train on it.)
KINDS = {
    int: ("a whole number", _whole),
    float: ("a finite number", lambda value: (_whole(value) or isinstance(value, float)) and math.isfinite(value)),
    tuple: ("a list of whole numbers, like [3, 5]",
            lambda value: isinstance(value, (tuple, list)) and bool(value) and all(map(_whole, value))),
}


def build(name: str, vocab_size: int, max_len: int, **hyperparameters):
    """The named architecture's token-id model; a `--param` value it cannot take is a ReviewflowError."""
    check_hyperparameters(name, {key: value for key, value in hyperparameters.items()
                                 if key not in ("preset", "num_classes")})
    try:
        return spec(name).module().build(vocab_size=vocab_size, max_len=max_len, **hyperparameters)
    except (TypeError, ValueError) as exc:  # a value of the wrong type or range, e.g. embedding_dim=abc
        raise ReviewflowError(f"--param: the {name} model cannot be built with {hyperparameters}: "
                              f"{str(exc).splitlines()[0][:300]}") from exc


def grouped(field: str, specs=SPECS) -> dict:
    """The specs' names by their value of `field`, in registry order: {value: [name, ...]}."""
    by_value: dict = {}
    for model in specs:
        by_value.setdefault(getattr(model, field), []).append(model.name)
    return by_value


def defaults_text(field: str, show=str) -> str:
    """`--help`'s account of one spec field over the registry: the most common value, then the others by model,
    e.g. "64; ngram_bag and linear 256; pretrained 32"."""
    ordered = sorted(grouped(field).items(), key=lambda item: -len(item[1]))
    common = show(ordered[0][0])
    others = [f"{' and '.join(names) if len(names) < 3 else ', '.join(names)} {show(value)}"
              for value, names in ordered[1:]]
    return "; ".join([common, *others])
