"""Training on several machines: MultiWorkerMirroredStrategy with a step of our own.

Keras 3.15's `model.fit` fails under MultiWorkerMirroredStrategy (`Attempt to
convert a value (PerReplica...)`), so this path runs its own step
(`strategy.run`, GradientTape, the loss averaged over the global batch, the
Keras optimizer) and drives the very Keras callbacks that `fit` uses through
a `CallbackList`: checkpoint of the best model, early stopping, StopOnInvalidLoss (TerminateOnNaN),
per-epoch history, the progress bar. Every worker takes the same decisions,
because every logged value is reduced over all workers.

Resume: only the chief keeps a backup (BackupAndRestore in RUN/backup). When
a run starts again, the chief restores it, and every worker then takes the
chief's weights, optimizer state and epoch (`sync_from_chief`), so that the
workers can never start apart, whenever each of them was killed. Only the
chief finishes a run (curves, calibration, export, model.keras need no other
worker); the others wait for it (`wait_for_the_chief`: a worker that left
would be taken for a crashed one). A run killed after its training, while the
chief finished it, is finished by the chief from its backup, and the other
workers, told so (`chief_says`), train nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import threading

import keras
import tensorflow as tf


_strategy = None


def get_strategy() -> tf.distribute.Strategy:
    """The process's MultiWorkerMirroredStrategy, created on first use.

    TensorFlow requires it before any op runs, so the CLI calls this right
    after importing TensorFlow for `fit --strategy multi-worker`.
    """
    global _strategy
    if _strategy is None:
        if not os.environ.get("TF_CONFIG"):
            from pipeline.errors import ReviewflowError
            raise ReviewflowError("--strategy multi-worker needs TF_CONFIG (the cluster and this worker's task) "
                                  "in the environment of every worker; see the README, Scaling out.")
        with stoppable_by_signals():
            _strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return _strategy


@contextlib.contextmanager
def stoppable_by_signals():
    """Creating the strategy, TensorFlow waits for every worker to connect, deaf to Ctrl-C (it holds the
    interpreter), and installs a SIGTERM handler of its own that only notes a preemption: a worker whose peers
    never came could be stopped by SIGKILL alone, and one told to stop by SIGTERM trained on to the end. So
    Ctrl-C ends the wait at once (nothing is written yet), and SIGTERM then ends the worker as it ends every
    other command (the run resumes from its backup)."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's to set
        yield
        return
    interrupt = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def joined() -> bool:
    """Whether this process created its cluster's strategy (is a worker of a multi-worker run)."""
    return _strategy is not None


def cluster_task() -> tuple[str, int, int]:
    """(task type, index, number of workers) from TF_CONFIG."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    cluster = config.get("cluster", {})
    task = config.get("task", {})
    return task.get("type", "worker"), int(task.get("index", 0)), sum(len(v) for v in cluster.values())


def is_chief() -> bool:
    """The chief writes the run; worker 0 is chief when the cluster names none."""
    task_type, index, _ = cluster_task()
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in config.get("cluster", {}))


def check_enough_shards(data, num_workers: int) -> None:
    """Each worker reads whole files (AutoShardPolicy.FILE): every split read needs one per worker at least."""
    from pipeline.errors import ReviewflowError

    short = {name: len(split.shards) for name, split in data.manifest.splits.items()
             if name in ("train", "validation") and len(split.shards) < num_workers}
    if short:
        raise ReviewflowError(
            f"{data.path}: {', '.join(f'{name} has {count} shard(s)' for name, count in short.items())} for "
            f"{num_workers} workers, and each worker reads whole shards. Re-shard with "
            f"--num-shards {num_workers} or more (`reviewflow shard ... --overwrite`).")


def _file_sharded(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    return dataset.with_options(options)


def train(model: keras.Model, strategy, train_data, validation_data, *, epochs: int, steps_per_epoch: int,
          validation_steps: int, global_batch: int, callbacks: list, verbose) -> None:
    """Run up to `epochs` epochs of `steps_per_epoch` global batches, validating after each."""
    # Both splits repeat: each worker reads its own files, and every worker must
    # run the same number of steps, or the collective ops would wait forever.
    train_batches = iter(strategy.experimental_distribute_dataset(_file_sharded(train_data.repeat())))
    validation_batches = iter(strategy.experimental_distribute_dataset(_file_sharded(validation_data.repeat())))
    train_step, validation_step = make_steps(model, strategy, global_batch)
    callback_list = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=bool(verbose),
                                                 model=model, verbose=1 if verbose == "auto" else verbose,
                                                 epochs=epochs, steps=steps_per_epoch)
    model.stop_training = False
    callback_list.on_train_begin()  # the chief's BackupAndRestore restores weights and the epoch here
    first_epoch = sync_from_chief(strategy, model, getattr(model, "_initial_epoch", 0) or 0)
    for epoch in range(first_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        logs = train_epoch(model, train_step, train_batches, steps_per_epoch, callback_list)
        logs.update(validate(validation_step, validation_batches, validation_steps, callback_list))
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()


def make_steps(model: keras.Model, strategy, global_batch: int):
    """(train step, validation step): each runs one global batch and returns summed (loss, correct, count)."""
    two_classes = model.output_shape[-1] == 1  # P(positive); else a softmax over N classes, labels class ids
    if two_classes:
        loss_fn = keras.losses.BinaryCrossentropy(reduction=None)
    else:
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)

    def sums(probabilities, labels, per_example_loss):
        if two_classes:
            correct = tf.cast(tf.equal(tf.cast(probabilities > 0.5, tf.float32), labels), tf.float32)
        else:
            correct = tf.cast(tf.equal(tf.argmax(probabilities, axis=-1, output_type=tf.int32), labels), tf.float32)
        return tf.reduce_sum(per_example_loss), tf.reduce_sum(correct), tf.cast(tf.size(labels), tf.float32)

    def train_replica(ids, labels):
        with tf.GradientTape() as tape:
            probabilities = tf.cast(model(ids, training=True), tf.float32)
            per_example = loss_fn(labels, probabilities)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return sums(probabilities, labels, per_example)

    def validation_replica(ids, labels):
        probabilities = tf.cast(model(ids, training=False), tf.float32)
        return sums(probabilities, labels, loss_fn(labels, probabilities))

    def summed_over_workers(replica_fn):
        @tf.function
        def step(iterator):
            return [strategy.reduce("SUM", value, axis=None) for value in strategy.run(replica_fn, next(iterator))]
        return step

    return summed_over_workers(train_replica), summed_over_workers(validation_replica)


def train_epoch(model, train_step, batches, steps: int, callback_list) -> dict:
    """One epoch of training steps; the epoch's mean loss and accuracy."""
    totals = [0.0, 0.0, 0.0]
    for step in range(steps):
        callback_list.on_train_batch_begin(step)
        totals = [t + float(v) for t, v in zip(totals, train_step(batches))]
        callback_list.on_train_batch_end(step, {"loss": totals[0] / totals[2], "accuracy": totals[1] / totals[2]})
        if model.stop_training:  # StopOnInvalidLoss
            break
    return {"loss": totals[0] / totals[2], "accuracy": totals[1] / totals[2]}


def validate(validation_step, batches, steps: int, callback_list) -> dict:
    """The validation loss and accuracy over `steps` global batches."""
    callback_list.on_test_begin()
    totals = [0.0, 0.0, 0.0]
    for _ in range(steps):
        totals = [t + float(v) for t, v in zip(totals, validation_step(batches))]
    callback_list.on_test_end()
    return {"val_loss": totals[0] / totals[2], "val_accuracy": totals[1] / totals[2]}


def summed_over_workers(strategy, values: list, weight: float) -> list[tf.Tensor]:
    """Each of `values` (variables, tensors or numbers) times this worker's `weight`, summed over every worker.
    A collective: every worker calls it at the same point of its run."""
    share = weight / len(strategy.extended.worker_devices)  # each local replica (one per device) gives its share
    # A Python number as float64 from the start: tf.cast would make it a float32 first (a 48-bit hash, rounded).
    values = [tf.constant(value, tf.float64) if isinstance(value, (int, float)) else value for value in values]

    @tf.function
    def summed():
        def contribute():
            return [tf.cast(value, tf.float64) * share for value in values]
        return [strategy.reduce("SUM", value, axis=None) for value in strategy.run(contribute)]

    return summed()


def chief_values(strategy, values: list) -> list[tf.Tensor]:
    """Each of `values` as the chief holds it, on every worker: the sum where only the chief gives its own."""
    return summed_over_workers(strategy, values, 1.0 if is_chief() else 0.0)


def workers_saying(strategy, flag: bool) -> int:
    """How many workers say `flag` (a collective, as `summed_over_workers`)."""
    return int(round(float(summed_over_workers(strategy, [1.0], float(flag))[0])))


def check_same_run(strategy, record: dict) -> None:
    """Every worker started with the chief's options on the chief's shards (`record`: what must match). A worker
    started otherwise met the chief's collectives with its own (`--epochs 2` beside the chief's 3: "Collective
    instance 316 expected type 0 and data_type 1 but got type 0 and data_type 2"), or trained another model. A
    collective: every worker calls it before it builds its model (whose variables the chief broadcasts)."""
    from pipeline.errors import ReviewflowError

    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).digest()
    fingerprint = int.from_bytes(digest[:6], "big")  # 48 bits: exact in the float64 the collective sums
    try:
        chiefs = int(round(float(chief_values(strategy, [float(fingerprint)])[0])))
    except tf.errors.OpError:  # the first collective: a chief that refused its --out or its data has gone
        raise ReviewflowError("the chief stopped before the workers compared their options; its output says why "
                              "(a complete run in its --out without --overwrite, its data refused, ...).") from None
    differing = workers_saying(strategy, chiefs != fingerprint)
    if differing:
        own = "differ" if chiefs != fingerprint else "match"
        this_one = "this is the chief" if is_chief() else f"this worker's {own}"
        raise ReviewflowError(
            f"{differing} worker(s) of the cluster were started with other `fit` options or other shards than the "
            f"chief ({this_one}; paths aside, every option and the plan's choices are compared, and the data "
            "directory's manifest and vocabulary). Start every worker with the same options on a copy of the "
            "same data directory.")


def chief_says(strategy, flag: bool) -> bool:
    """The chief's `flag` on every worker (a collective, as `chief_values`)."""
    return bool(round(float(chief_values(strategy, [float(flag)])[0])))


@contextlib.contextmanager
def chief_finishing(strategy):
    """The chief finishes the run inside this; then the other workers, waiting in `wait_for_the_chief`, learn
    whether it did (said in `finally`: a chief that fails says so too, rather than leaving them waiting)."""
    finished = False
    try:
        yield
        finished = True
    finally:
        try:
            chief_says(strategy, finished)
        except tf.errors.OpError:  # no other worker is left to tell: the run (or the chief's own error) stands
            pass


def wait_for_the_chief(strategy) -> None:
    """A worker other than the chief, its training ended: wait while the chief finishes the run. A worker that
    left at once would be taken for a crashed one (~10 s later the chief's coordination service logs "The
    tasks have crashed" and aborts its collectives)."""
    from pipeline.errors import ReviewflowError

    try:
        finished = chief_says(strategy, False)
    except tf.errors.OpError:  # the chief's process ended (TensorFlow: "Socket closed", or its heartbeats stopped)
        raise ReviewflowError("the chief stopped before it had finished the run; start every worker again with the "
                              "same options: the chief finishes the run from its backup.") from None
    if not finished:
        raise ReviewflowError("the chief could not finish the run; its output says why.")


def sync_from_chief(strategy, model: keras.Model, epoch: int) -> int:
    """Give every worker the chief's variables (model and optimizer) and epoch; returns the epoch."""
    variables = list(model.variables) + list(model.optimizer.variables)
    values = chief_values(strategy, [*variables, float(epoch)])
    for variable, value in zip(variables, values):
        variable.assign(tf.cast(value, variable.dtype))
    return int(round(float(values[-1])))


def steps_for(num_examples: int, global_batch: int, cap: int | None) -> int:
    return cap or max(1, math.ceil(num_examples / global_batch))
