"""`fit`: stream a data directory into one of the zoo's models; write a run directory (`run_dir.py`)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models import (calibration, callbacks as callbacks_lib, diagnostics, multi_worker, run_plan, saving,
                    word_vectors, zoo)
from models.run_plan import RunPlan
from models.zoo import optimizers, preprocessors
from models.zoo.layers import Temperature, TrimPadding, all_layers
from models.zoo.spec import OPTIMIZERS
from models.run_dir import (BACKUP_DIR, BEST_CHECKPOINT, CACHE_DIR, CURVES_PNG, LOGS_DIR, MODEL_FILE, RunConfig, RunDir,
                            kept_epoch)
from pipeline import batching, data_service, dataset, plots, text
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from pipeline.vectors import PretrainedVectors

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
ADAMW_WEIGHT_DECAY = 0.01
# What a setting an interrupted run does not record meant when it was written, by an earlier reviewflow that
# had no such option: reviews cut at their end, no warm-up, the whole validation split scored each epoch (a
# missing vocab_size, all of the shard's ids, is added where the data directory is known). Calibration comes
# after training, so a run interrupted before it existed resumes and is calibrated at its end. Other missing
# settings meant their default.
EARLIER_DEFAULTS = {"truncate": "head", "warmup_share": 0.0, "calibrate": True, "validation_sample": 0}
# Settings a user may leave to the plan (None); resuming, each takes the interrupted run's value.
PLANNED_SETTINGS = ("max_len", "vocab_size", "truncate", "batch_size", "epochs", "optimizer", "learning_rate",
                    "warmup_share", "jit_compile", "validation_sample")
# Keras warns when a dataset of unknown size (a tf.data service's) ends its first epoch; that end is
# how the epoch's size is learnt, not a fault, and capped epochs repeat their dataset.
warnings.filterwarnings("ignore", message="Your input ran out of data")
# BERT's pooler gets no gradient: the pretrained model averages the token vectors instead (models/zoo/pretrained.py).
warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooled_dense")


@dataclasses.dataclass(frozen=True)
class FitSettings:
    model: str
    data: Path
    out: Path
    epochs: int | None = None             # the most epochs; None: the model's spec's (10; linear 3)
    batch_size: int | None = None         # per replica; None: the model's (lowered for a small corpus)
    max_len: int | None = None            # None: chosen from the train split's lengths (models/max_len.py)
    truncate: str | None = None           # which tokens of a longer review are kept; None: text.DEFAULT_TRUNCATE
    vocab_size: int | None = None         # ids taken of the shard's vocabulary; None: the model's spec's
    optimizer: str | None = None          # None: the study's choice for the model
    learning_rate: float | None = None    # None: the optimizer's study default
    patience: int = 3
    seed: int | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    validation_sample: int | None = None  # most validation reviews an epoch scores; None: the plan's (50k); 0: all
    mixed_precision: bool = False
    jit_compile: bool | None = None       # XLA; None: the plan's (where the model's spec says it pays)
    strategy: str = "auto"
    shuffle_buffer: int = dataset.SHUFFLE_BUFFER_EXAMPLES
    cache: bool = True                    # token ids cached on disk (RUN/cache) after the first epoch
    length_buckets: bool = True           # batches of similar lengths, padded to their bucket (pipeline/batching.py)
    data_service: str | None = None       # grpc://HOST:PORT of a tf.data service dispatcher
    hparams: dict = dataclasses.field(default_factory=dict)  # builder arguments, e.g. {"units": 64}
    embeddings: Path | None = None        # pretrained word vectors (.vec / .txt, plain, .gz or .bz2)
    freeze_embeddings: bool = False       # keep the pretrained vectors as they are
    preset: Path | None = None            # the pretrained model's checkpoint directory (KerasHub or Hugging Face)
    warmup_share: float | None = None     # of all steps, a linear learning-rate warm-up; None: the model's (0 or 0.1)
    calibrate: bool = True                # fit a temperature on the validation split (models/calibration.py)
    overwrite: bool = False

    def __post_init__(self):
        model = zoo.spec(self.model)  # an unknown name is refused here
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ReviewflowError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}.")
        preprocessors.for_spec(model).check(self)
        if self.warmup_share is not None and not 0 <= self.warmup_share < 1:
            raise ReviewflowError(f"--warmup-share must be in [0, 1), got {self.warmup_share}.")
        if self.freeze_embeddings and self.embeddings is None:
            raise ReviewflowError("--freeze-embeddings needs --embeddings FILE.")
        if self.truncate is not None and self.truncate not in text.TRUNCATIONS:
            raise ReviewflowError(f"unknown truncation {self.truncate!r}; choose from {', '.join(text.TRUNCATIONS)}.")
        if self.strategy not in STRATEGIES:
            raise ReviewflowError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}.")
        if self.data_service is not None:
            data_service.parse_address(self.data_service)
            if self.strategy == "multi-worker":
                raise ReviewflowError("--data-service with --strategy multi-worker is not supported yet: each "
                                      "worker would read the whole split. Use one of them.")

    @property
    def spec(self):
        return zoo.spec(self.model)

    def to_json(self) -> dict:
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in dataclasses.asdict(self).items() if key != "overwrite"}


@dataclasses.dataclass(frozen=True)
class FitResult:
    run_dir: Path
    epochs_run: int
    best_val_accuracy: float
    best_val_loss: float
    best_epoch: int
    warning: str | None = None   # the kept epoch learnt nothing (diagnostics.learnt_nothing)
    written: bool = True         # False: a worker other than the chief, which the chief's run speaks for


def data_facts(settings: FitSettings, data: DataDir) -> run_plan.DataFacts:
    """What the plan needs of the data directory; review lengths counted in the model's own units."""
    preprocessor = preprocessors.for_spec(settings.spec)
    return run_plan.DataFacts(num_train_examples=data.num_examples("train"),
                              num_validation_examples=data.num_examples("validation"),
                              lengths=preprocessor.lengths(settings, data), length_unit=preprocessor.length_unit,
                              vocabulary_size=data.manifest.vocabulary.size)


def make_plan(settings: FitSettings, data: DataDir | None = None, replicas: int = 1,
              facts: run_plan.DataFacts | None = None, from_run: frozenset = frozenset()) -> RunPlan:
    """The run's plan (models/run_plan.py) for these settings on this data directory (without one: the model's
    defaults, and the fallback --max-len unless one is given)."""
    facts = facts or (data_facts(settings, data) if data is not None else run_plan.DataFacts())
    vocab = preprocessors.for_spec(settings.spec).vocab_choice(settings, settings.spec.vocab_size,
                                                                facts.vocabulary_size)
    return run_plan.plan_run(settings, settings.spec, facts, vocab, replicas, from_run)


def resume_settings(settings: FitSettings, recorded: dict | None) -> tuple[FitSettings, frozenset]:
    """Resuming: each planned setting the user left unset takes the interrupted run's recorded value (which an
    earlier version may have chosen otherwise); the settings given are compared with the run's by `prepare`."""
    if recorded is None:
        return settings, frozenset()
    taken = {name: recorded[name] for name in PLANNED_SETTINGS
             if getattr(settings, name) is None and recorded.get(name) is not None}
    return dataclasses.replace(settings, **taken), frozenset(taken)


def earlier_defaults(data: DataDir) -> dict:
    """What each setting meant where an interrupted run's config.json does not record it (an earlier version)."""
    defaults = {field.name: field.default if field.default is not dataclasses.MISSING else field.default_factory()
                for field in dataclasses.fields(FitSettings)
                if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING}
    return {**defaults, **EARLIER_DEFAULTS, "vocab_size": data.manifest.vocabulary.size}


def choose_strategy(name: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy when more than one GPU is visible, otherwise no strategy overhead.

    `mirrored` without GPUs mirrors over the logical CPU devices, which is how
    the multi-device path is tested on a machine without accelerators.
    """
    if name == "multi-worker":
        return multi_worker.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = None if gpus else [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()  # the default strategy: plain single-device execution


def make_optimizer(name: str, learning_rate: float, decay_steps: tuple[int, int] | None = None,
                   clipnorm: float | None = None) -> keras.optimizers.Optimizer:
    """The named optimizer; with `decay_steps` (warm-up, total), a linear warm-up then linear decay to 0."""
    rate = float(learning_rate)
    if decay_steps:
        rate = optimizers.WarmupLinearDecay(rate, *decay_steps)
    extra = {"clipnorm": clipnorm} if clipnorm else {}
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=ADAMW_WEIGHT_DECAY, **extra)
    return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam, "lazy_adam": optimizers.LazyAdam,
            "row_adagrad": optimizers.RowAdagrad,
            "sgd": keras.optimizers.SGD, "adagrad": keras.optimizers.Adagrad}[name](learning_rate=rate, **extra)


def make_vectorizer(plan: RunPlan, settings: FitSettings, data: DataDir):
    """Raw strings -> the model's inputs, as its preprocessor reads them (the shard's vocabulary or a preset's)."""
    return preprocessors.for_spec(settings.spec).make_vectorizer(plan, settings, data)


def build_and_compile(plan: RunPlan, settings: FitSettings, vocab_size: int,
                      vectors: PretrainedVectors | None = None, num_classes: int = 2) -> keras.Model:
    """The token-id model (its embeddings started from `vectors`, if given), compiled as the studies compile it.

    Two classes: binary cross-entropy on P(positive), as the studies; N: sparse categorical cross-entropy.
    """
    arguments = preprocessors.for_spec(settings.spec).build_arguments(settings)
    classes = {"num_classes": num_classes} if num_classes != 2 else {}
    model = zoo.build(settings.model, vocab_size, plan.max_len.max_len, **settings.hparams, **arguments, **classes)
    if vectors is not None:
        word_vectors.initialize(model, vectors, settings.freeze_embeddings)
    optimizer = make_optimizer(plan.optimizer.value, plan.learning_rate.value, plan.decay_steps, plan.clipnorm)
    if num_classes == 2:
        loss, accuracy = "binary_crossentropy", keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss, accuracy = "sparse_categorical_crossentropy", keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy], jit_compile=plan.jit_compile.value,
                  steps_per_execution=steps_per_execution(settings.spec, tf.distribute.get_strategy()))
    return model


def steps_per_execution(spec, strategy: tf.distribute.Strategy) -> int:
    """The model's training steps per call into TensorFlow; 1 under a mirrored strategy, where Keras's loop of
    several steps fails (a placeholder of its while loop left unfed: Keras 3.15, TensorFlow 2.21)."""
    mirrored = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    return 1 if isinstance(strategy, mirrored) else spec.steps_per_execution


def end_to_end(vectorizer: keras.layers.TextVectorization, model: keras.Model,
               temperature: float | None = None) -> keras.Model:
    """Raw strings (batch,) -> P(positive) (batch, 1), or (batch, N) class probabilities: vectorizer, the
    batch's padding beyond its longest review cut, model, then, if given, the calibration's temperature."""
    texts = keras.Input(shape=(), dtype="string", name="text")
    probabilities = model(TrimPadding(name="trim_padding")(vectorizer(texts)))
    if temperature is not None:
        probabilities = Temperature(temperature, name="temperature")(probabilities)
    return keras.Model(texts, probabilities, name=f"{model.name}_end_to_end")


def describe_devices(model: keras.Model) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    where = f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    lstms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.LSTM)]
    if not lstms:
        return f"devices: {where}"
    eligible = all(layer.activation is keras.activations.tanh
                   and layer.recurrent_activation is keras.activations.sigmoid
                   and layer.recurrent_dropout == 0 and not layer.unroll and layer.use_bias for layer in lstms)
    kernel = ("cuDNN kernel" if gpus and eligible else
              "generic kernel (no GPU)" if not gpus else "generic kernel (settings not cuDNN-eligible)")
    return f"devices: {where}; LSTM layers run the {kernel}"


def open_data(path: Path) -> DataDir:
    """The data directory as training opens it: every shard hashed against the manifest first, and a
    validation split to train with."""
    # Hashing every shard costs ~1 s per GB: cheap next to training on a damaged file.
    data = DataDir.open(path, hashes=True)
    if data.num_examples("validation") == 0:  # it would train and then fail at the end, with nothing to keep
        raise ReviewflowError(f"{path} has no validation reviews (sharded with --val-fraction 0, or too small a "
                              "fraction of too few lines): training keeps its best epoch, stops early and "
                              "calibrates on them. Shard again with --val-fraction 0.2 (the default) or 0.1.")
    return data


def fit(settings: FitSettings, verbose: int | str = "auto", log=print, data: DataDir | None = None) -> FitResult:
    """Train `settings.model` on `settings.data`; resume if RUN holds an interrupted run.

    `data`: the data directory already opened by `open_data` (a study opens it once for all its runs).
    """
    zoo.check_hyperparameters(settings.model, settings.hparams)  # before the shards are hashed
    chief = writes_run(settings)
    if chief:  # a user's folder or a complete run is refused before the shards are hashed and the model built
        RunDir(settings.out).refuse_unusable(settings.overwrite)
    data = data or open_data(settings.data)
    if not chief:
        # Only the chief writes the run (and its backup); the others write to a
        # scratch directory removed at the end, and take the chief's state on resume.
        scratch = Path(tempfile.mkdtemp(prefix="reviewflow-worker-"))
        try:
            return _fit_run(dataclasses.replace(settings, out=scratch / "run"), data, verbose=0,
                            log=lambda *_: None)  # spoken_for_by_the_chief: the chief's run speaks for the cluster
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _fit_run(settings, data, verbose, log)


def _fit_run(settings: FitSettings, data: DataDir, verbose, log) -> FitResult:
    run = RunDir(settings.out)
    earlier = earlier_defaults(data)
    recorded = None if settings.overwrite else run.interrupted_settings()
    settings, from_run = resume_settings(settings, recorded and {**earlier, **recorded})
    strategy = choose_strategy(settings.strategy)
    plan = make_plan(settings, data, strategy.num_replicas_in_sync, from_run=from_run)
    settings, vectors = word_vectors.with_vectors(settings, data, plan.vocab.vocab_size)
    if settings.strategy == "multi-worker":
        multi_worker.check_enough_shards(data, multi_worker.cluster_task()[2])
        multi_worker.check_same_run(strategy, same_run_record(settings, plan, data))
    if settings.seed is not None:
        keras.utils.set_random_seed(settings.seed)
    previous_policy = keras.mixed_precision.global_policy()
    if settings.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
    try:
        # Built before RUN changes: a builder argument the model refuses (`--param c=-1`) leaves the run an
        # --overwrite would have deleted in place.
        vectorizer = make_vectorizer(plan, settings, data)
        with strategy.scope():
            model = build_and_compile(plan, settings, vectorizer.vocabulary_size(), vectors, data.classes.num_classes)
            # Optimizer slots are created here, in the strategy's scope, before a resume loads them.
            model.optimizer.build(model.trainable_variables)
        # RUN changes from here: a second fit (or tune) into it is refused while this one writes.
        with run.locked(settings.overwrite):
            resuming = run.prepare(run_plan.settings_record(settings, plan), settings.overwrite, earlier)
            return _fit(plan, settings, data, vectors, run, strategy, resuming, verbose, log, vectorizer, model)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)  # the policy is process-wide


def reads_whole_splits(settings: FitSettings) -> bool:
    """False where a multi-worker's or a service worker's pipeline reads only some shards."""
    return settings.strategy != "multi-worker" and settings.data_service is None


def whole_split_cache(settings: FitSettings, cache_dir: Path, split: str) -> Path | None:
    """Where this process caches the split's ids whole; None without the cache, or where it reads some shards."""
    return cache_dir / split if settings.cache and reads_whole_splits(settings) else None


def train_once(plan: RunPlan, settings: FitSettings, data: DataDir, vectorizer, cache_dir: Path):
    """The train split's batches once, in order, for a model's statistics (`adapt`). Where the id cache is on
    and this process reads whole splits, the pass fills the training pipeline's cache (same blocks, same
    file), so the first epoch reads ids instead of vectorizing the corpus a second time. The pipeline is
    made when the first batch is asked for: most models read none (making it costs ~0.7 s of tracing)."""
    yield from dataset.make_dataset(data, "train", plan.global_batch_size, plan.max_len.max_len,
                                    vectorizer=vectorizer, cache_path=whole_split_cache(settings, cache_dir, "train"))


def make_inputs(plan: RunPlan, settings: FitSettings, data: DataDir, vectorizer,
                cache_dir: Path) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation batches, streamed from the shards here or by a tf.data service."""
    remote = settings.data_service is not None
    # A multi-worker's or a service worker's pipeline reads only some shards: its size is not the manifest's.
    known_size = reads_whole_splits(settings)
    cache = settings.cache and not remote  # service workers start afresh every epoch; nothing to cache here

    def make(split: str, shuffle: bool) -> tf.data.Dataset:
        batch_size = plan.validation_batch_size if split == "validation" else plan.global_batch_size
        batches = dataset.make_dataset(
            data, split, batch_size, plan.max_len.max_len, shuffle=shuffle,
            seed=settings.seed if shuffle else None, vectorizer=vectorizer, shuffle_buffer=settings.shuffle_buffer,
            cache_path=cache_dir / split if cache else None, known_size=known_size,
            by_length=settings.length_buckets, compiled=plan.jit_compile.value,
            every=plan.validation_every.value if split == "validation" else 1)
        return data_service.distribute(batches, settings.data_service) if remote else batches

    train, validation = make("train", shuffle=True), make("validation", shuffle=False)
    # Keras's `fit` under a strategy builds the model from a first batch split over the replicas, which must
    # split evenly (multi-worker runs train in a loop of our own). Validation's may be the whole split, an odd
    # number of reviews: cut. A training epoch's is a full one unless a small corpus's partial batch comes
    # first (or two pools' in a row): the first full batch is brought before them, none cut (cut, an epoch's
    # count of batches is unknown, and a strategy ends such an epoch with one more optimizer step, on no
    # reviews: measured, +1 step an epoch).
    if plan.replicas > 1 and settings.strategy != "multi-worker":
        train = batching.even_batch_first(train, plan.replicas)
        validation = batching.first_batch_split_evenly(validation, plan.replicas)
    if settings.steps_per_epoch:
        train = train.repeat()  # capped epochs walk on through the split instead of restarting it
    return train, validation


def _fit(plan: RunPlan, settings: FitSettings, data: DataDir, vectors: PretrainedVectors | None, run: RunDir,
         strategy, resuming: bool, verbose, log, vectorizer, model: keras.Model) -> FitResult:
    config = write_config(run, plan, settings, data, vectorizer.vocabulary_size(), model, vectors)
    if verbose:
        for line in plan.lines():
            log(line)
        log(f"vocabulary: {vectorizer.vocabulary_size()} ids ({plan.vocab.source}: {plan.vocab.reason})")
    if vectors is not None and verbose:
        log(word_vectors.coverage_line(config.embeddings))
    cache_dir = run / CACHE_DIR
    shutil.rmtree(cache_dir, ignore_errors=True)  # a killed run leaves a half-written cache; start it anew
    started = time.perf_counter()
    try:
        result = _train_and_finish(plan, settings, data, run, strategy, resuming, verbose, log, vectorizer, model,
                                   cache_dir)
    finally:
        # It can be large (4 bytes a token of the corpus), and a later run rebuilds it: not left behind by a
        # failure either, least of all one of a full disk.
        shutil.rmtree(cache_dir, ignore_errors=True)
    if verbose:
        log(f"trained {result.epochs_run} epoch(s) in {time.perf_counter() - started:.1f} s; best validation "
            f"accuracy {result.best_val_accuracy:.4f} (epoch {result.best_epoch}); model: {run / MODEL_FILE}")
    return result


def _train_and_finish(plan: RunPlan, settings: FitSettings, data: DataDir, run: RunDir, strategy, resuming: bool,
                      verbose, log, vectorizer, model: keras.Model, cache_dir: Path) -> FitResult:
    trained = resuming and run.was_trained()  # killed while it was finished: its statistics are in the backup too
    if settings.strategy == "multi-worker":
        # The workers train together or not at all: each takes the chief's answer (its scratch run has none).
        trained = multi_worker.chief_says(strategy, trained)
        if trained and not writes_run(settings):  # the chief finishes the run from its backup, alone
            return spoken_for_by_the_chief(strategy, run)
    if not trained and settings.spec.adapt(model, train_once(plan, settings, data, vectorizer, cache_dir)) and verbose:
        log(f"{settings.model}: read the train split once for its statistics (adapt)")
    train, validation = make_inputs(plan, settings, data, vectorizer, cache_dir)
    if verbose:
        model.summary(print_fn=lambda line, **_: log(line))
        log(describe_devices(model) + f"; {plan.replicas} replica(s), global batch {plan.global_batch_size}")
    if resuming:
        log(f"resuming the interrupted run in {run.path} after epoch {run.backed_up_epochs()}"
            + (": its training had ended; finishing it" if trained else ""))
    if trained:
        callbacks_lib.AtomicBackupAndRestore(str(run / BACKUP_DIR)).restore(model)
    else:
        callbacks = make_callbacks(plan, settings, data, run, resuming)
        train_model(plan, settings, data, model, strategy, train, validation, callbacks, verbose)
        if not writes_run(settings):
            # Finishing needs no other worker. A scratch run resumed after the chief's last backed-up epoch
            # trained none and has no rows to finish from (a kill between that backup and mark_trained).
            return spoken_for_by_the_chief(strategy, run)
    with (multi_worker.chief_finishing(strategy) if settings.strategy == "multi-worker" else
          contextlib.nullcontext()):
        if not trained and run.backed_up_epochs():
            run.mark_trained()
        result = finish_run(settings, run, vectorizer, model, plan, data, cache_dir, validation,
                            log if verbose else None)
        run.remove_backup()  # after model.keras: a kill before it resumes the finishing, not the training
    return result


def same_run_record(settings: FitSettings, plan: RunPlan, data: DataDir) -> dict:
    """What every worker of a multi-worker run shares: the settings with the plan's choices, paths aside (each
    machine has its own; the others write to a scratch run), and the data directory's manifest and vocabulary."""
    record = run_plan.settings_record(settings, plan)
    for path in ("data", "out", "embeddings", "preset"):
        record.pop(path, None)
    return {**record, "data_manifest_sha256": data.manifest_sha256, "vocab_sha256": data.vocab_sha256}


def spoken_for_by_the_chief(strategy, run: RunDir) -> FitResult:
    """The result of a multi-worker run's worker other than the chief, once the chief has finished the run and
    speaks for the cluster."""
    multi_worker.wait_for_the_chief(strategy)
    return FitResult(run.path, 0, math.nan, math.nan, 0, written=False)


def writes_run(settings: FitSettings) -> bool:
    """Whether this process writes RUN: every one but the workers other than the chief of a multi-worker run,
    which write to a scratch directory and take the chief's state on resume."""
    return settings.strategy != "multi-worker" or multi_worker.is_chief()


def write_config(run: RunDir, plan: RunPlan, settings: FitSettings, data: DataDir, vocab_size: int,
                 model: keras.Model, vectors: PretrainedVectors | None) -> RunConfig:
    """RUN/config.json: the settings, the plan, what the run was trained on, and with what."""
    config = RunConfig(
        settings=run_plan.settings_record(settings, plan), global_batch_size=plan.global_batch_size,
        replicas=plan.replicas, vocab_size=vocab_size,
        vocab_sha256=data.vocab_sha256, data_manifest_sha256=data.manifest_sha256, parameters=model.count_params(),
        versions=saving.versions(),
        embeddings=word_vectors.describe(vectors, data, settings.freeze_embeddings) if vectors else None,
        max_len=dataclasses.asdict(plan.max_len), classes=class_record(data),
        preset=preprocessors.for_spec(settings.spec).describe(settings, model), plan=plan.to_json())
    run.write_config(config)
    return config


def class_record(data: DataDir) -> dict:
    """config.json's classes: what each output means, and how `predict` names a label (the corpus's form)."""
    classes = data.classes
    fasttext = all(source.format == "fasttext" for source in data.manifest.sources)
    return {"names": classes.names, "positive": classes.positive, "label_prefix": "__label__" if fasttext else ""}


def make_callbacks(plan: RunPlan, settings: FitSettings, data: DataDir, run: RunDir,
                   resuming: bool) -> list[keras.callbacks.Callback]:
    """NaN stop, best checkpoint, early stopping, history rows, backup (resume) and TensorBoard, in that order."""
    # Rows past the backup belong to an epoch that trains again (killed before its backup): not a best to beat.
    backed_up = run.backed_up_epochs()
    history = [row for row in run.history() if row["epoch"] <= backed_up] if resuming else []
    examples_per_epoch = (settings.steps_per_epoch * plan.global_batch_size if settings.steps_per_epoch
                          else data.num_examples("train"))
    best_so_far = min((row["val_loss"] for row in history if "val_loss" in row), default=None)
    (run / BEST_CHECKPOINT).parent.mkdir(exist_ok=True)
    callbacks = [callbacks_lib.StopOnInvalidLoss()]
    if plan.early_stopping:
        # A better epoch's checkpoint becomes best.keras once that epoch is backed up (callbacks.py says why).
        backed_up_epochs = run.backed_up_epochs if writes_run(settings) else None
        callbacks += [
            callbacks_lib.AtomicModelCheckpoint(str(run / BEST_CHECKPOINT), backed_up_epochs, monitor="val_loss",
                                                save_best_only=True, initial_value_threshold=best_so_far),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience, restore_best_weights=True),
        ]
    callbacks.append(callbacks_lib.EpochHistory(run, examples_per_epoch))
    # The backup comes last: its metadata is what a resume starts after, so an epoch counts as done only once
    # its row and best checkpoint (pending until then) are written. A kill before that trains the epoch again
    # (its row replaced); with the backup first, a kill between it and the row lost the epoch's row for good.
    if writes_run(settings):  # (other workers take the chief's state on resume)
        # Kept after training until the run is complete: a kill while finishing resumes the finishing.
        callbacks.append(callbacks_lib.AtomicBackupAndRestore(str(run / BACKUP_DIR), delete_checkpoint=False))
    return callbacks + [keras.callbacks.TensorBoard(str(run / LOGS_DIR))]


def refuse_diverged(model: keras.Model, plan: RunPlan, exc: Exception) -> None:
    """Name a step that failed because training diverged: a NaN or infinite weight can make an op fail inside
    the optimizer (Keras's sparse RMSprop update gathers out of range) before StopOnInvalidLoss sees the loss."""
    if not has_finite_weights(model):
        raise diverged(plan, "and a step then failed inside TensorFlow") from exc


def has_finite_weights(model: keras.Model) -> bool:
    return all(np.isfinite(weight).all() for weight in model.get_weights())


def diverged(plan: RunPlan, how: str) -> ReviewflowError:
    return ReviewflowError(f"training diverged: its weights became NaN or infinite, {how}. Lower --learning-rate "
                           f"(this run's: {plan.learning_rate.value:g}) and run again with --overwrite.")


def train_model(plan: RunPlan, settings: FitSettings, data: DataDir, model: keras.Model, strategy, train,
                validation, callbacks: list, verbose) -> None:
    """`model.fit`, or our own loop under MultiWorkerMirroredStrategy (see multi_worker.py)."""
    if settings.strategy != "multi-worker":
        try:
            model.fit(train, validation_data=validation, epochs=plan.epochs.value,
                      steps_per_epoch=settings.steps_per_epoch, validation_steps=settings.validation_steps,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
        except tf.errors.InvalidArgumentError as exc:
            refuse_diverged(model, plan, exc)
            raise
        return
    global_batch = plan.global_batch_size
    multi_worker.train(
        model, strategy, train, validation, epochs=plan.epochs.value,
        steps_per_epoch=multi_worker.steps_for(data.num_examples("train"), global_batch, settings.steps_per_epoch),
        validation_steps=multi_worker.steps_for(
            dataset.sample_size(data, "validation", plan.validation_every.value), plan.validation_batch_size,
            settings.validation_steps),
        global_batch=global_batch, callbacks=callbacks, verbose=verbose)


def inference_copy(model: keras.Model) -> keras.Model:
    """The trained model without its optimizer: what `model.keras` and `export/` hold.

    A deployed classifier needs no optimizer, and `backup/` already holds the resume state. Left in, the
    optimizer's class would have to be known wherever the file loads, and its moments would triple
    `ngram_bag`'s file (two more tables the size of its embedding).
    """
    copy = type(model).from_config(model.get_config())  # not clone_model: it compiles the copy too
    copy.set_weights(model.get_weights())
    return copy


def calibrate(plan: RunPlan, data: DataDir, vectorizer, model: keras.Model,
              validation: tf.data.Dataset | None = None) -> calibration.Calibration:
    """The temperature for `model` (the trained token-id model), fitted on the validation reviews the epochs
    scored (the plan's sample): `validation`, training's own batches of them, where they read a finished id
    cache (building a pipeline anew costs ~0.25 s); else those reviews vectorized again."""
    batches = validation if validation is not None else dataset.make_dataset(
        data, "validation", plan.validation_batch_size, plan.max_len.max_len, vectorizer=vectorizer,
        every=plan.validation_every.value)
    return calibration.fit_temperature(*calibration.validation_scores(model, batches))


def complete_cache(settings: FitSettings, cache_dir: Path, split: str) -> Path | None:
    """The split's whole-split id cache if training finished writing it (tf.data writes its index last; a capped
    or partial pass leaves none); otherwise None."""
    path = whole_split_cache(settings, cache_dir, split)
    return path if path is not None and Path(f"{path}.index").exists() else None


def finish_run(settings: FitSettings, run: RunDir, vectorizer, model: keras.Model, plan: RunPlan, data: DataDir,
               cache_dir: Path, validation: tf.data.Dataset, log=None) -> FitResult:
    """The best epoch's weights, curves, the calibration, the export and, last, `model.keras`, which marks the
    run complete. `validation`: training's validation batches."""
    rows = run.history()
    if not rows:
        raise ReviewflowError("training stopped before completing an epoch (NaN loss?); nothing was saved.")
    if (run / BEST_CHECKPOINT).exists():  # the best epoch of the whole run, across resumes
        model.set_weights(keras.saving.load_model(run / BEST_CHECKPOINT).get_weights())
    if not has_finite_weights(model):  # StopOnInvalidLoss ended training, and no earlier epoch's weights are kept
        raise diverged(plan, "and training stopped on a NaN loss")
    plots.plot_curves(rows, run / CURVES_PNG, settings.model)
    trained = inference_copy(model)  # a local copy: its predictions need no strategy, on any worker
    temperature = None
    if settings.calibrate:
        # Training's pipeline read again only where it wrote a finished cache of the whole split: so never one a
        # tf.data service streams (make_inputs caches nothing there), nor one capped by --validation-steps.
        cached = complete_cache(settings, cache_dir, "validation") is not None
        fitted = calibrate(plan, data, vectorizer, trained, validation if cached else None)
        run.write_config(dataclasses.replace(run.config(), calibration=fitted.to_json()))
        temperature = fitted.temperature
        if log:
            log(fitted.line())
    complete_model = end_to_end(vectorizer, trained, temperature)
    run.export_serving(complete_model)
    run.save_model(complete_model)  # last: marks the run complete
    best = kept_epoch(settings.model, rows)
    counts = data.split("validation").label_counts.values()
    majority_share = max(counts, default=0) / max(1, sum(counts))
    warning = diagnostics.learnt_nothing(rows, best, majority_share, data.num_examples("train"))
    return FitResult(run.path, len(rows), best["val_accuracy"], best["val_loss"], best["epoch"], warning)
