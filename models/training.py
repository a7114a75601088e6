"""`fit`: stream a data directory into one of the models; write a run directory.

RUN/model.keras    end-to-end model: raw strings -> P(positive), shape (batch, 1)
RUN/export/        SavedModel with a string `serve` signature for TF Serving
RUN/history.json   per-epoch metrics, time and examples/s (and history.csv, curves.png)
RUN/config.json    every setting of the run
RUN/checkpoints/   best model so far; RUN/backup/ resume state; RUN/logs/ TensorBoard
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf

import models
from models import callbacks as callbacks_lib, multi_worker, plots
from pipeline import atomic, data_service, dataset, manifest as manifest_lib, text
from pipeline.errors import ReviewflowError
from pipeline.shards import file_sha256

MODEL_FILE = "model.keras"
EXPORT_DIR = "export"
CONFIG_FILE = "config.json"
BEST_CHECKPOINT = "checkpoints/best.keras"
BACKUP_DIR = "backup"
CACHE_DIR = "cache"
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
# Keras warns when a dataset of unknown size (a tf.data service's) ends its first epoch; that end is
# how the epoch's size is learnt, not a fault, and capped epochs repeat their dataset.
warnings.filterwarnings("ignore", message="Your input ran out of data")
OPTIMIZERS = ("rmsprop", "adam", "sgd")


@dataclasses.dataclass(frozen=True)
class FitSettings:
    model: str
    data: Path
    out: Path
    epochs: int = 10
    batch_size: int = 64                  # per replica
    max_len: int = text.DEFAULT_MAX_LEN
    optimizer: str | None = None          # None: the study's choice for the model
    learning_rate: float | None = None    # None: the optimizer's study default
    patience: int = 3
    seed: int | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    mixed_precision: bool = False
    jit_compile: bool = False
    strategy: str = "auto"
    shuffle_buffer: int = dataset.SHUFFLE_BUFFER_EXAMPLES
    cache: bool = True                    # token ids cached on disk (RUN/cache) after the first epoch
    data_service: str | None = None       # grpc://HOST:PORT of a tf.data service dispatcher
    hparams: dict = dataclasses.field(default_factory=dict)  # builder arguments, e.g. {"units": 64}
    overwrite: bool = False

    def __post_init__(self):
        if self.model not in models.MODELS:
            raise ReviewflowError(f"unknown model {self.model!r}; choose from {', '.join(models.MODELS)}.")
        if self.strategy not in STRATEGIES:
            raise ReviewflowError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}.")
        if self.data_service is not None:
            data_service.parse_address(self.data_service)
            if self.strategy == "multi-worker":
                raise ReviewflowError("--data-service with --strategy multi-worker is not supported yet: each "
                                      "worker would read the whole split. Use one of them.")

    def resolved(self) -> "FitSettings":
        """The settings with the model's defaults filled in."""
        optimizer = self.optimizer or models.optimizer_for(self.model)
        learning_rate = self.learning_rate or models.DEFAULT_LEARNING_RATE
        return dataclasses.replace(self, optimizer=optimizer, learning_rate=learning_rate)

    def to_json(self) -> dict:
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in dataclasses.asdict(self).items() if key != "overwrite"}


@dataclasses.dataclass(frozen=True)
class FitResult:
    run_dir: Path
    epochs_run: int
    best_val_accuracy: float
    best_val_loss: float


def is_complete(run_dir: Path) -> bool:
    """A run is complete once its end-to-end model is in place (written last)."""
    return (Path(run_dir) / MODEL_FILE).is_file() and (Path(run_dir) / CONFIG_FILE).is_file()


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


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
            "sgd": keras.optimizers.SGD}[name](learning_rate=learning_rate)


def build_and_compile(settings: FitSettings, vocab_size: int) -> keras.Model:
    """The token-id model, compiled as the studies compile it."""
    model = models.MODELS[settings.model](vocab_size=vocab_size, max_len=settings.max_len, **settings.hparams)
    model.compile(optimizer=make_optimizer(settings.optimizer, settings.learning_rate),
                  loss="binary_crossentropy", metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
                  jit_compile=settings.jit_compile)
    return model


def end_to_end(vectorizer: keras.layers.TextVectorization, model: keras.Model) -> keras.Model:
    """Raw strings (batch,) -> P(positive) (batch, 1): the vectorizer and the trained model in one."""
    texts = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(texts, model(vectorizer(texts)), name=f"{model.name}_end_to_end")


def save_model_atomically(model: keras.Model, path: Path) -> None:
    """`model.save` to a temporary `.keras` name, then rename: a reader never sees half a file."""
    temporary = path.with_name(path.stem + ".incomplete.keras")
    model.save(temporary)
    atomic.commit(temporary, path)


def export_serving(model: keras.Model, export_dir: Path) -> None:
    """A SavedModel with a `serve` signature: string tensor (batch,) -> probabilities (batch, 1)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=model.call,
                         input_signature=[tf.TensorSpec(shape=(None,), dtype=tf.string, name="text")])
    temporary = export_dir.with_name(export_dir.name + atomic.INCOMPLETE_SUFFIX)
    shutil.rmtree(temporary, ignore_errors=True)
    archive.write_out(str(temporary), verbose=False)
    old = export_dir.with_name(export_dir.name + ".old")
    if export_dir.exists():
        export_dir.rename(old)
    temporary.rename(export_dir)
    shutil.rmtree(old, ignore_errors=True)


def describe_devices(model: keras.Model) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    where = f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    lstms = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.LSTM)]
    if not lstms:
        return f"devices: {where}"
    eligible = all(layer.activation is keras.activations.tanh
                   and layer.recurrent_activation is keras.activations.sigmoid
                   and layer.recurrent_dropout == 0 and not layer.unroll and layer.use_bias for layer in lstms)
    kernel = ("cuDNN kernel" if gpus and eligible else
              "generic kernel (no GPU)" if not gpus else "generic kernel (settings not cuDNN-eligible)")
    return f"devices: {where}; LSTM layers run the {kernel}"


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.layers.Bidirectional):
            yield layer.forward_layer
            yield layer.backward_layer
        elif isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def prepare_run_dir(settings: FitSettings) -> bool:
    """Create RUN; True when resuming an interrupted run with the same settings."""
    run_dir = Path(settings.out)
    config_path = run_dir / CONFIG_FILE
    if settings.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    if is_complete(run_dir):
        raise ReviewflowError(f"{run_dir} already holds a complete run ({MODEL_FILE}). "
                              "Pass --overwrite to train again, or choose another --out.")
    run_dir.mkdir(parents=True, exist_ok=True)
    if config_path.exists():
        previous = json.loads(config_path.read_text())["settings"]
        if previous != settings.to_json():
            changed = sorted(k for k in settings.to_json() if previous.get(k) != settings.to_json()[k])
            raise ReviewflowError(f"{run_dir} holds an interrupted run with other settings ({', '.join(changed)}). "
                                  "Re-run with the same options to resume, or pass --overwrite.")
        return (run_dir / BACKUP_DIR).exists()
    return False


def fit(settings: FitSettings, verbose: int | str = "auto", log=print) -> FitResult:
    """Train `settings.model` on `settings.data`; resume if RUN holds an interrupted run."""
    settings = settings.resolved()
    if settings.strategy == "multi-worker" and not multi_worker.is_chief():
        # Only the chief writes the run (and its backup); the others write to a
        # scratch directory removed at the end, and take the chief's state on resume.
        scratch = Path(tempfile.mkdtemp(prefix="reviewflow-worker-"))
        try:
            return _fit_run(dataclasses.replace(settings, out=scratch / "run"), verbose=0, log=lambda *_: None)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _fit_run(settings, verbose, log)


def _fit_run(settings: FitSettings, verbose, log) -> FitResult:
    run_dir = Path(settings.out)
    data_manifest = manifest_lib.read_manifest(settings.data)
    if settings.strategy == "multi-worker":
        multi_worker.check_enough_shards(data_manifest, multi_worker.cluster_task()[2], settings.data)
    # Hashing every shard costs ~1 s per GB: cheap next to training on a damaged file.
    manifest_lib.check_files_present(settings.data, data_manifest, hashes=True)
    resuming = prepare_run_dir(settings)
    if settings.seed is not None:
        keras.utils.set_random_seed(settings.seed)
    previous_policy = keras.mixed_precision.global_policy()
    if settings.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
    try:
        return _fit(settings, run_dir, data_manifest, resuming, verbose, log)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)  # the policy is process-wide


def make_inputs(settings: FitSettings, vectorizer, global_batch: int,
                cache_dir: Path) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation batches, streamed from the shards here or by a tf.data service."""
    remote = settings.data_service is not None
    # A multi-worker's or a service worker's pipeline reads only some shards: its size is not the manifest's.
    known_size = settings.strategy != "multi-worker" and not remote
    cache = settings.cache and not remote  # service workers start afresh every epoch; nothing to cache here

    def make(split: str, shuffle: bool) -> tf.data.Dataset:
        batches = dataset.make_dataset(
            settings.data, split, global_batch, settings.max_len, shuffle=shuffle,
            seed=settings.seed if shuffle else None, vectorizer=vectorizer, shuffle_buffer=settings.shuffle_buffer,
            cache_path=cache_dir / split if cache else None, known_size=known_size)
        return data_service.distribute(batches, settings.data_service) if remote else batches

    train = make("train", shuffle=True)
    if settings.steps_per_epoch:
        train = train.repeat()  # capped epochs walk on through the split instead of restarting it
    return train, make("validation", shuffle=False)


def _fit(settings: FitSettings, run_dir: Path, data_manifest, resuming: bool, verbose, log) -> FitResult:
    vocabulary = dataset.load_vocabulary(settings.data)
    vectorizer = text.make_vectorizer(vocabulary, settings.max_len)
    strategy = choose_strategy(settings.strategy)
    global_batch = settings.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_and_compile(settings, vocab_size=vectorizer.vocabulary_size())
        # Optimizer slots are created here, in the strategy's scope, before a resume loads them.
        model.optimizer.build(model.trainable_variables)
    atomic.write_json(run_dir / CONFIG_FILE, {
        "settings": settings.to_json(),
        "global_batch_size": global_batch,
        "replicas": strategy.num_replicas_in_sync,
        "vocab_size": vectorizer.vocabulary_size(),
        "vocab_sha256": data_manifest.vocabulary.sha256,
        "data_manifest_sha256": manifest_sha256(settings.data),
        "parameters": model.count_params(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    })
    cache_dir = run_dir / CACHE_DIR
    shutil.rmtree(cache_dir, ignore_errors=True)  # a killed run leaves a half-written cache; start it anew
    multi = settings.strategy == "multi-worker"
    train, validation = make_inputs(settings, vectorizer, global_batch, cache_dir)
    history = callbacks_lib.read_history(run_dir) if resuming else []
    examples_per_epoch = (settings.steps_per_epoch * global_batch if settings.steps_per_epoch
                          else data_manifest.splits["train"].num_examples)
    best_so_far = min((row["val_loss"] for row in history if "val_loss" in row), default=None)
    (run_dir / BEST_CHECKPOINT).parent.mkdir(exist_ok=True)
    # The backup comes first: once an epoch's history row exists, its backup does too.
    callbacks = [callbacks_lib.AtomicBackupAndRestore(str(run_dir / BACKUP_DIR))] if (
        not multi or multi_worker.is_chief()) else []  # other workers take the chief's state on resume
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(run_dir / BEST_CHECKPOINT), monitor="val_loss", save_best_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience, restore_best_weights=True),
        callbacks_lib.EpochHistory(run_dir, examples_per_epoch),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
    ]
    if verbose:
        model.summary(print_fn=lambda line, **_: log(line))
        log(describe_devices(model) + f"; {strategy.num_replicas_in_sync} replica(s), global batch {global_batch}")
    if resuming:
        log(f"resuming the interrupted run in {run_dir} after epoch {len(history)}")
    started = time.perf_counter()
    if multi:
        splits = data_manifest.splits
        multi_worker.train(model, strategy, train, validation, epochs=settings.epochs,
                           steps_per_epoch=multi_worker.steps_for(splits["train"].num_examples, global_batch,
                                                                  settings.steps_per_epoch),
                           validation_steps=multi_worker.steps_for(splits["validation"].num_examples, global_batch,
                                                                   settings.validation_steps),
                           global_batch=global_batch, callbacks=callbacks, verbose=verbose)
    else:
        model.fit(train, validation_data=validation, epochs=settings.epochs,
                  steps_per_epoch=settings.steps_per_epoch, validation_steps=settings.validation_steps,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
    if not callbacks_lib.read_history(run_dir):
        raise ReviewflowError("training stopped before completing an epoch (NaN loss?); nothing was saved.")
    shutil.rmtree(cache_dir, ignore_errors=True)  # it can be large; a later run rebuilds it
    if (run_dir / BEST_CHECKPOINT).exists():  # the best epoch of the whole run, across resumes
        model.set_weights(keras.saving.load_model(run_dir / BEST_CHECKPOINT).get_weights())
    rows = callbacks_lib.read_history(run_dir)
    plots.plot_curves(rows, run_dir / "curves.png", settings.model)
    complete_model = end_to_end(vectorizer, model)
    export_serving(complete_model, run_dir / EXPORT_DIR)
    save_model_atomically(complete_model, run_dir / MODEL_FILE)  # last: marks the run complete
    best = min(rows, key=lambda row: row["val_loss"])
    if verbose:
        log(f"trained {len(rows)} epochs in {time.perf_counter() - started:.1f} s; best validation accuracy "
            f"{best['val_accuracy']:.4f} (epoch {best['epoch']}); model: {run_dir / MODEL_FILE}")
    return FitResult(run_dir, len(rows), best["val_accuracy"], best["val_loss"])


def manifest_sha256(data_dir: Path) -> str:
    """Identifies the exact data directory a run was trained or evaluated on."""
    return file_sha256(Path(data_dir) / manifest_lib.MANIFEST_FILE)


def load_end_to_end(run_dir: Path) -> keras.Model:
    """The run's end-to-end model, loaded with Keras safe mode on."""
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise ReviewflowError(f"{run_dir}: no {MODEL_FILE}; the run is missing or incomplete. Run `fit` first.")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as exc:  # includes safe mode refusing code in the file
        raise ReviewflowError(f"{path}: refused to load ({str(exc).splitlines()[0][:300]}). The file is damaged "
                              "or was changed; re-run `fit`, or restore it from a trusted copy.") from exc
