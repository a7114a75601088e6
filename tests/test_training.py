"""fit end to end on tiny real data directories: learning, saving, exporting, resuming."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import cli
from models.evaluation import evaluate
from models.run_dir import RunDir
from models.run_dir import kept_epoch
from models.training import FitResult, FitSettings, fit
from pipeline import synthetic
from pipeline.data_dir import DataDir
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings
from conftest import TOKEN_ID_MODELS, built_once, easy_data, free_port, listening, wait_until

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"hybrid": dict(filters=16, dense_units=16, lstm_units=16),
         "hybrid_split": dict(filters=16, dense_units=16, lstm_units=16), "rnn": dict(units=32)}


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    return built_once(tmp_path_factory, "long-data", lambda root: easy_data(root, 3000, 80)) / "data"


@pytest.fixture(scope="module")
def short_data(tmp_path_factory):
    return built_once(tmp_path_factory, "short-data", lambda root: easy_data(root, 3000, 12)) / "data"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, long_data):
    """An ffn run, fitted once for every worker; its FitResult as `fit` returned it, read back from the run."""
    def train(root):
        fit(FitSettings(model="ffn", data=long_data, out=root / "ffn", epochs=10, batch_size=32, seed=1,
                        learning_rate=3e-3), verbose=0)

    out = built_once(tmp_path_factory, "trained-ffn", train) / "ffn"
    rows = RunDir(out).history()
    best = kept_epoch("ffn", rows)
    return out, FitResult(out, len(rows), best["val_accuracy"], best["val_loss"], best["epoch"])


def test_short_fit_on_easy_data_learns(trained_run):
    _, result = trained_run
    assert result.best_val_accuracy > 0.9


def test_run_directory_holds_every_artifact(trained_run):
    out, result = trained_run
    for name in ("model.keras", "config.json", "history.json", "history.csv", "curves.png", "export/saved_model.pb",
                 "checkpoints/best.keras"):
        assert (out / name).exists(), name
    history = json.loads((out / "history.json").read_text())
    assert len(history) == result.epochs_run
    columns = {"loss", "accuracy", "val_loss", "val_accuracy", "seconds", "examples_per_second"}
    assert columns <= set(history[0])
    assert (out / "history.csv").read_text().count("\n") == len(history) + 1
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["model"] == "ffn" and config["settings"]["optimizer"] == "rmsprop"
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    assert not list(out.rglob("*.incomplete*"))


def test_saved_model_takes_raw_strings_and_reloads_identically(trained_run):
    out, _ = trained_run
    texts = tf.constant(["Great: excellent, I love it", "Awful: terrible waste, it broke", "", "café über naïve"])
    first = RunDir(out).load_model().predict(texts, verbose=0)
    second = keras.saving.load_model(out / "model.keras").predict(texts, verbose=0)
    assert first.shape == (4, 1)
    np.testing.assert_allclose(first, second)
    assert first[0, 0] > 0.5 > first[1, 0]
    exported = tf.saved_model.load(str(out / "export"))  # keep a reference: its variables live with it
    served = exported.serve(texts).numpy()
    np.testing.assert_allclose(served, first, atol=1e-6)


def test_complete_run_is_not_overwritten_by_accident(trained_run, long_data):
    out, _ = trained_run
    from pipeline.errors import ReviewflowError
    with pytest.raises(ReviewflowError, match="--overwrite"):
        fit(FitSettings(model="ffn", data=long_data, out=out, epochs=1), verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", TOKEN_ID_MODELS)
def test_every_model_learns_short_texts(name, short_data, tmp_path):
    # Reviews of ~12 words end-padded to 128: the study's unmasked cnn_lstm stayed at the majority class here.
    # Three epochs: every model is past 0.82 by then (lstm 0.86, transformer 0.83), at half the suite's time.
    result = fit(FitSettings(model=name, data=short_data, out=tmp_path / name, epochs=3, seed=1, batch_size=32,
                             learning_rate=3e-3, hparams=SMALL.get(name, {})), verbose=0)
    assert result.best_val_accuracy > 0.75
    reloaded = RunDir(tmp_path / name).load_model()  # safe mode: only registered classes
    probabilities = reloaded.predict(tf.constant(["great excellent", "awful terrible", ""]), verbose=0)
    assert probabilities.shape == (3, 1) and probabilities[0, 0] > probabilities[1, 0]
    assert (tmp_path / name / "export" / "saved_model.pb").exists()


@pytest.mark.parametrize("name, hparams, jit_compile", [
    ("lstm", {"units": 8}, True), ("transformer", {"num_layers": 1}, True), ("ngram_bag", {"buckets": 4096}, True),
    ("ngram_bag", {"buckets": 4096}, False)])  # row-wise Adagrad's compiled scatter inside a step XLA compiles, or not
def test_mixed_precision_and_xla_run_on_cpu(long_data, tmp_path, name, hparams, jit_compile):
    result = fit(FitSettings(model=name, data=long_data, out=tmp_path / "run", epochs=1, steps_per_epoch=5,
                             validation_steps=2, mixed_precision=True, jit_compile=jit_compile, hparams=hparams,
                             max_len=16), verbose=0)  # XLA compiles every bucket width anew: 8, 12 and 16 here
    assert result.epochs_run == 1
    assert RunDir(tmp_path / "run").config().plan["jit_compile"] == {
        "value": jit_compile, "source": "option", "reason": "--jit-compile" if jit_compile else "--no-jit-compile"}
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for the rest of the process
    probabilities = RunDir(tmp_path / "run").load_model().predict(tf.constant(["great", ""]), verbose=0)
    assert probabilities.dtype == np.float32 and np.all(np.isfinite(probabilities))


def test_mirrored_over_two_logical_cpus_matches_one_device(short_data, tmp_path):
    # Logical devices must be set before TensorFlow starts, hence a fresh process. The same global
    # batch (2 x 16 vs 32) on the same data: the same steps and examples per epoch, similar accuracy.
    # An odd number of validation reviews, one batch: Keras's model build under a strategy averaged its two
    # unequal halves and failed (pipeline/batching.py: first_batch_split_evenly).
    splits = json.loads((short_data / "manifest.json").read_text())["splits"]
    assert splits["validation"]["num_examples"] % 2 == 1 and splits["validation"]["num_examples"] < 1024
    script = f"""
import json, keras, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from models.training import FitSettings, fit
for strategy, batch in [("mirrored", 16), ("one-device", 32)]:
    out = {str(tmp_path)!r} + "/" + strategy
    result = fit(FitSettings(model="ffn", data={str(short_data)!r}, out=out, epochs=2, patience=10,
                             batch_size=batch, learning_rate=3e-3, strategy=strategy, seed=1), verbose=2)
    best = keras.saving.load_model(out + "/checkpoints/best.keras")  # saved with its optimizer
    history = json.load(open(out + "/history.json"))
    best_epoch = min(history, key=lambda row: row["val_loss"])["epoch"]
    print("RESULT", strategy, result.epochs_run, int(best.optimizer.iterations) // best_epoch,
          result.best_val_accuracy)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 replica(s), global batch 32" in done.stdout and "1 replica(s), global batch 32" in done.stdout
    results = {fields[1]: (int(fields[2]), int(fields[3]), float(fields[4]))
               for fields in (line.split() for line in done.stdout.splitlines() if line.startswith("RESULT"))}
    steps = -(-splits["train"]["num_examples"] // 32)
    assert results["mirrored"][:2] == results["one-device"][:2] == (2, steps)
    # Similar accuracy, not the same: the two runs see the reviews in another order (every review once an epoch
    # either way: tf.distribute's copy of the input pipeline shuffles with other seeds, so even the first batch
    # differs), and part ways over ~150 RMSprop steps: 0.8660 against 0.8860 here at the lower validation loss
    # of 2 epochs (0.8707 against 0.9218 on CI once, over 4 epochs of longer reviews). A broken mirrored run shows
    # in the exact steps above, or learns far less. Two epochs, not four: the same checks, half the test's time.
    mirrored, one_device = results["mirrored"][2], results["one-device"][2]
    assert mirrored > 0.8 and abs(mirrored - one_device) < 0.08
    # ngram_bag's row-wise Adagrad (a compiled scatter of rows) and its 8 steps per call, which mirrored runs
    # leave out. A process of its own: a second model's mirrored fit after the first's fails in TensorFlow 2.21.
    # A batch larger than the (odd) train split: one batch that does not split evenly, which the plan makes two.
    assert splits["train"]["num_examples"] % 2 == 1 and splits["train"]["num_examples"] < 2 * 2048
    bag = script.split("from models.training")[0] + f"""
from models.training import FitSettings, fit
print("BAG", fit(FitSettings(model="ngram_bag", data={str(short_data)!r}, out={str(tmp_path / "bag")!r},
                             epochs=1, steps_per_epoch=10, validation_steps=2, strategy="mirrored", seed=1,
                             batch_size=2048), verbose=0).epochs_run)
"""
    done = subprocess.run([sys.executable, "-c", bag], cwd=ROOT, capture_output=True, text=True)
    assert "BAG 1" in done.stdout, done.stderr[-3000:]
    assert json.loads((tmp_path / "bag" / "config.json").read_text())["plan"]["batch"]["value"] == \
        (splits["train"]["num_examples"] - 1) // 2
    model = keras.saving.load_model(tmp_path / "mirrored" / "model.keras")
    assert model.predict(tf.constant(["great"]), verbose=0).shape == (1, 1)


def test_a_strategy_s_keras_fit_gets_first_batches_that_split_evenly():
    """Keras 3.15's fit builds the model from a first batch averaged over the replicas (one training batch, and
    at each validation one validation batch): an uneven one stops it. What `fit` does about it (training's
    first even batch brought first, validation's first batch cut; pipeline/batching.py), on real Keras under
    MirroredStrategy in a fresh process (logical devices are set before TensorFlow starts)."""
    script = """
import numpy as np, tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pipeline import batching
def batches(sizes):
    rows = [(np.full((size, 4), 1 + i, "int32"), np.arange(size) % 2) for i, size in enumerate(sizes)]
    return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=(
        tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.int64))).apply(
        tf.data.experimental.assert_cardinality(len(sizes)))
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    ids = keras.Input((None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 4)(ids))
    model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(pooled))
    model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
for name, train, validation in [
        ("evened", batching.even_batch_first(batches([7, 5, 8, 8]), 2),
         batching.first_batch_split_evenly(batches([5]), 2)),
        ("uneven training", batches([7, 5, 8, 8]), batches([4])), ("uneven validation", batches([8, 8]), batches([5]))]:
    try:
        model.fit(train, validation_data=validation, epochs=1, verbose=0)
        print("FIT", name, "ok", model.optimizer.iterations.numpy())
    except tf.errors.InvalidArgumentError as error:
        print("FIT", name, "failed", "AddN" in str(error))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    said = [line for line in done.stdout.splitlines() if line.startswith("FIT")]
    assert said[0] == "FIT evened ok 4", said   # four steps: every batch trained once
    # Keras as it is: if it builds from an uneven batch one day, batching's two transforms may go.
    assert said[1:] == ["FIT uneven training failed True", "FIT uneven validation failed True"], said


def start_workers(long_data, out, epochs, other_epochs=None):
    """`fit --strategy multi-worker` in two worker processes on localhost (the second with `other_epochs`)."""
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    processes = []
    for index, worker_epochs in enumerate([epochs, other_epochs or epochs]):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "cli.py", "fit", "--model", "ffn", "--data", str(long_data), "--out", str(out),
             "--strategy", "multi-worker", "--epochs", str(worker_epochs), "--steps-per-epoch", "40",
             "--batch-size", "16", "--learning-rate", "0.003", "--seed", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def run_workers(long_data, out, epochs, other_epochs=None):
    """Both workers to the end: (return codes, outputs)."""
    processes = start_workers(long_data, out, epochs, other_epochs)
    outputs = [process.communicate(timeout=400)[0] for process in processes]
    return [p.returncode for p in processes], outputs


def test_multi_worker_run_killed_after_an_epoch_resumes(long_data, tmp_path):
    import time
    out = tmp_path / "run"
    processes = start_workers(long_data, out, epochs=3)
    history = out / "history.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and all(p.poll() is None for p in processes):
        if RunDir(out).backed_up_epochs():  # the chief's backup of an epoch, written after its row
            break
        time.sleep(0.02)
    for process in processes:  # the whole cluster is stopped mid-run, as a scheduler stops it: SIGTERM
        process.terminate()
    # TensorFlow's own SIGTERM handler only noted a preemption, and both workers trained on to the end.
    assert [process.wait(timeout=120) for process in processes] == [-signal.SIGTERM] * 2
    first = json.loads(history.read_text())
    assert 1 <= len(first) < 3 and not (out / "model.keras").exists()
    codes, outputs = run_workers(long_data, out, epochs=3)
    assert codes == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "resuming the interrupted run" in outputs[0]
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3] and history[:len(first)] == first
    # The cluster's run, resumed, is an ordinary run: the chief reports and writes it, the other stays quiet.
    assert "2 replica(s), global batch 32" in outputs[0]
    assert "best validation accuracy" in outputs[0] and "Epoch" not in outputs[1]
    assert max(row["val_accuracy"] for row in history) > 0.7
    kept = min(history, key=lambda row: row["val_loss"])   # the last line names the epoch kept, of all run
    assert f"best validation accuracy: {kept['val_accuracy']:.4f} (epoch {kept['epoch']} of 3)" in outputs[0]
    probabilities = keras.saving.load_model(out / "model.keras").predict(
        tf.constant(["Great: excellent, love it", "Awful: terrible waste"]), verbose=0)
    assert probabilities[0, 0] > probabilities[1, 0]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".lock", ".reviewflow", "checkpoints", "config.json", "curves.png", "export", "history.csv", "history.json",
         "logs", "model.keras"])
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    # Started again without --overwrite: the chief refuses the complete run, and the other worker says the chief
    # stopped (it said TensorFlow's "Socket closed ... Restart your program to reset").
    codes, outputs = run_workers(long_data, out, epochs=3)
    assert codes == [1, 1] and "already holds a complete run" in outputs[0], outputs[0][-2000:]
    assert "the chief stopped before the workers compared their options" in outputs[1], outputs[1][-2000:]


def test_multi_worker_run_killed_while_finishing_is_finished_without_training_again(long_data, tmp_path):
    """Killed after its epochs, while the chief writes the export or model.keras: the chief finishes the run from
    its backup and the other worker, told so, trains nothing. Keras removed the backup as training ended, so
    every epoch trained again. Only the chief says the run's last line; the other worker, which waited for the
    chief to finish the run, says that it did not. Killed a moment earlier, after the last
    epoch's backup but before the backup said training had ended: the workers resume after the last epoch and
    train none (the other worker, whose scratch run then held no epoch, failed: "training stopped before
    completing an epoch")."""
    import shutil
    import time
    from models.run_dir import BACKUP_DIR, EXPORT_DIR, MODEL_FILE, TRAINED_MARKER
    from pipeline import atomic

    out = tmp_path / "run"
    processes = start_workers(long_data, out, epochs=2)
    finishing = [atomic.incomplete_path(out / EXPORT_DIR), atomic.incomplete_keeping_suffix(out / MODEL_FILE)]
    chief, other = processes
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and chief.poll() is None and not any(path.exists() for path in finishing):
        time.sleep(0.001)
    chief.kill()
    chief.wait()
    # The other worker waited for the chief to finish the run, and says that it did not.
    output = other.communicate(timeout=120)[0]
    assert other.returncode != 0 and "the chief stopped before it had finished the run" in output, output[-2000:]
    before = RunDir(out).history()
    assert len(before) == 2 and not (out / MODEL_FILE).exists() and (out / BACKUP_DIR / TRAINED_MARKER).is_file()
    unmarked = tmp_path / "unmarked"
    shutil.copytree(out, unmarked, symlinks=True)
    (unmarked / BACKUP_DIR / TRAINED_MARKER).unlink()

    codes, outputs = run_workers(long_data, out, epochs=2)
    assert codes == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "its training had ended; finishing it" in outputs[0] and "Epoch" not in outputs[0] + outputs[1]
    assert RunDir(out).history() == before   # the same rows, their times too: no epoch trained again
    assert (out / MODEL_FILE).is_file() and not (out / BACKUP_DIR).exists()
    assert "best validation accuracy" in outputs[0] and "best validation accuracy" not in outputs[1]

    shutil.rmtree(out)
    unmarked.rename(out)  # the same path: a resume must be asked for with the same settings
    codes, outputs = run_workers(long_data, out, epochs=2)
    assert codes == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "after epoch 2" in outputs[0] and "Epoch" not in outputs[0] + outputs[1]
    assert RunDir(out).history() == before
    assert (out / MODEL_FILE).is_file() and not (out / BACKUP_DIR).exists()
    assert "best validation accuracy" in outputs[0] and "best validation accuracy" not in outputs[1]


def test_a_worker_waiting_for_the_others_stops_on_ctrl_c(long_data, tmp_path):
    """A worker started alone (its peer's address mistyped) waited for it for ever, deaf to Ctrl-C (TensorFlow
    holds the interpreter while it waits) and to SIGTERM: only SIGKILL ended it."""
    port = free_port()
    peers = {"cluster": {"worker": [f"localhost:{port}", f"localhost:{free_port()}"]},
             "task": {"type": "worker", "index": 0}}
    process = subprocess.Popen(
        [sys.executable, "cli.py", "fit", "--model", "ffn", "--data", str(long_data), "--out", str(tmp_path / "run"),
         "--strategy", "multi-worker"],
        cwd=ROOT, env={**os.environ, "TF_CONFIG": json.dumps(peers)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        # Its server listens once the strategy is being created; then it waits for the other worker.
        wait_until(lambda: process.poll() is not None or listening(port), limit_s=180)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == -signal.SIGINT
    finally:
        process.kill()
        process.wait()
    assert not (tmp_path / "run").exists()


def test_multi_worker_refuses_workers_started_with_other_options(long_data, tmp_path):
    """One worker with --epochs 2 beside the chief's 3 met the chief's collectives with its own, and both failed
    inside TensorFlow ("Collective instance 316 expected type 0 and data_type 1 but got ... data_type 2"). Now
    both say so before a model is built or RUN is written."""
    out = tmp_path / "run"
    codes, outputs = run_workers(long_data, out, epochs=3, other_epochs=2)
    assert codes == [1, 1], outputs[0][-2000:] + outputs[1][-2000:]
    said = "1 worker(s) of the cluster were started with other `fit` options or other shards than the chief"
    assert said in outputs[0] and "this is the chief" in outputs[0], outputs[0][-2000:]
    assert said in outputs[1] and "this worker's differ" in outputs[1], outputs[1][-2000:]
    assert not out.exists()


def test_multi_worker_refuses_too_few_shards(data_dir):
    from models.multi_worker import check_enough_shards
    from pipeline.errors import ReviewflowError

    data = DataDir.open(data_dir)  # 3 shards per split
    check_enough_shards(data, 3)
    with pytest.raises(ReviewflowError, match="--num-shards 4"):
        check_enough_shards(data, 4)


@pytest.fixture(scope="module")
def hard_data(tmp_path_factory):
    """The hard synthetic language: negation, and contrast where the clause after "but" decides."""
    root = tmp_path_factory.mktemp("hard")
    train = synthetic.write_corpus(root / "train.ft.txt", 5000, 1, 12, style="hard")
    test = synthetic.write_corpus(root / "test.ft.txt", 300, 2, 12, style="hard")
    shard_corpus(ShardSettings(train=train, test=test, out=root / "data", num_shards=2))
    return root / "data"


def best_accuracy(data, tmp_path, name, **settings):
    settings = {"epochs": 6, "seed": 1, "max_len": 32, **settings}
    return fit(FitSettings(model=name, data=data, out=tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}",
                           **settings), verbose=0).best_val_accuracy


@pytest.mark.slow
def test_on_the_hard_language_word_order_wins(hard_data, tmp_path):
    # Half of these reviews are "X ... but Y": the same bag of words either way round.
    ffn = best_accuracy(hard_data, tmp_path, "ffn", learning_rate=3e-3)
    lstm = best_accuracy(hard_data, tmp_path, "lstm", learning_rate=1e-2, epochs=7)
    assert lstm > ffn + 0.1, (lstm, ffn)


@pytest.mark.slow
def test_on_the_hard_language_bigrams_read_negation(hard_data, tmp_path):
    unigrams = best_accuracy(hard_data, tmp_path, "ngram_bag", hparams={"ngrams": 1})
    bigrams = best_accuracy(hard_data, tmp_path, "ngram_bag", hparams={"ngrams": 2})
    assert bigrams > unigrams + 0.04, (bigrams, unigrams)


def write_vectors(path: Path, words: list[str], dim: int, header: bool = True) -> Path:
    rng = np.random.default_rng(0)
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [word.upper() + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=dim)) for word in words]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_embeddings_start_the_model_frozen_and_record_their_coverage(short_data, tmp_path):
    from click.testing import CliRunner

    import cli
    from pipeline.vectors import read_vectors

    data = DataDir.open(short_data)
    vocabulary = data.vocabulary()
    vectors_file = write_vectors(tmp_path / "v.vec", vocabulary[: len(vocabulary) // 2], 12)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "ffn", "--data", str(short_data), "--out", str(out),
                                          "--epochs", "1", "--embeddings", str(vectors_file), "--freeze-embeddings"])
    assert result.exit_code == 0, result.output
    assert "embeddings: " in result.output and "of the vocabulary" in result.output
    config = RunDir(out).config()
    assert config.settings["hparams"]["embedding_dim"] == 12      # taken from the vectors
    recorded = config.embeddings
    assert recorded["vocab_ids_covered"] == len(vocabulary) // 2 and recorded["frozen"] is True
    counts = data.token_counts()
    assert recorded["share_of_training_tokens"] == pytest.approx(
        sum(counts[: len(vocabulary) // 2]) / data.manifest.vocabulary.tokens_seen, abs=1e-6)
    vectors = read_vectors(vectors_file, vocabulary)
    trained = next(layer for layer in RunDir(out).load_model().layers if hasattr(layer, "layers"))
    np.testing.assert_allclose(trained.get_layer("embedding").embeddings.numpy()[vectors.covered],
                               vectors.matrix[vectors.covered], atol=1e-6)  # frozen: exactly the vectors


def test_embeddings_of_another_size_or_for_a_model_without_one_are_refused(short_data, tmp_path):
    from pipeline.errors import ReviewflowError

    vectors_file = write_vectors(tmp_path / "glove.txt", ["great", "awful"], 6, header=False)
    with pytest.raises(ReviewflowError, match="6-dimensional vectors but --param embedding_dim=8"):
        fit(FitSettings(model="cnn", data=short_data, out=tmp_path / "a", embeddings=vectors_file,
                        hparams={"embedding_dim": 8}), verbose=0)
    with pytest.raises(ReviewflowError, match="linear model has no word embedding"):
        fit(FitSettings(model="linear", data=short_data, out=tmp_path / "b", embeddings=vectors_file), verbose=0)
    # ngram_bag's one table holds its n-grams after the words: frozen, they would never leave their random start.
    with pytest.raises(ReviewflowError, match="--param ngrams=1"):
        fit(FitSettings(model="ngram_bag", data=short_data, out=tmp_path / "d", embeddings=vectors_file,
                        freeze_embeddings=True), verbose=0)
    with pytest.raises(ReviewflowError, match="--freeze-embeddings needs --embeddings"):
        FitSettings(model="cnn", data=short_data, out=tmp_path / "c", freeze_embeddings=True)
    assert not (tmp_path / "a" / "model.keras").exists()


def test_a_small_corpus_gets_batches_small_enough_to_learn(tmp_path):
    from models import run_plan, zoo

    def default_batch_size(model, num_train_examples):
        return run_plan.batch_choice(None, zoo.spec(model).batch_size, num_train_examples).value

    assert default_batch_size("cnn", 16_000) == 64 and default_batch_size("ngram_bag", 16_000) == 256
    assert default_batch_size("cnn", 480) == 15 and default_batch_size("linear", 100) == 8
    easy_data(tmp_path, 400, 12, test_lines=1000, num_shards=1, vocab_size=8192)
    data = DataDir.open(tmp_path / "data")
    results = {name: fit(FitSettings(model=name, data=tmp_path / "data", out=tmp_path / name, seed=1), verbose=0)
               for name in ("linear", "ngram_bag")}
    assert RunDir(tmp_path / "linear").config().settings["batch_size"] == 9  # ~320 train reviews / 32 steps
    # Trained to convergence, not stopped at the first epoch by a noisy validation loss.
    assert results["linear"].epochs_run == zoo.spec("linear").epochs == 3
    for name in results:
        # Scored on 1,000 held-out reviews: the ~90 of the validation split are too few to judge by.
        assert evaluate(tmp_path / name, data, errors=0)["accuracy"] > 0.7, name  # the majority class is ~0.5
        assert results[name].warning is None, results[name].warning  # they learnt: fit says nothing more


def test_a_run_that_learnt_nothing_says_so(tmp_path):
    """Every review reads the same once tokenized ("fine product", then a run of "!" that keeps the lines apart):
    any model answers one class for all, no better than the most common class's share (60%)."""
    for name, lines in (("train.ft.txt", 600), ("test.ft.txt", 100)):
        (tmp_path / name).write_text("".join(f"__label__{2 if index % 5 < 3 else 1} fine product {'!' * index}\n"
                                             for index in range(1, lines + 1)))
    shard_corpus(ShardSettings(train=tmp_path / "train.ft.txt", test=tmp_path / "test.ft.txt", out=tmp_path / "data",
                               num_shards=1))
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "linear", "--data", str(tmp_path / "data"), "--out",
                                          str(tmp_path / "run"), "--seed", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "best validation accuracy" in result.stdout and (tmp_path / "run" / "model.keras").is_file()
    assert "warning: the kept epoch (3) is no better than always answering the most common class" in result.stderr
    assert "Check that the labels follow the text" in result.stderr


def test_a_run_whose_loss_turns_nan_says_it_diverged(data_dir, tmp_path):
    """linear at an absurd rate: its loss turns NaN, StopOnInvalidLoss ends training, and no earlier epoch's weights
    are kept (no early stopping). Calibration then met NaN scores: a scikit-learn traceback, "Input contains NaN"."""
    out = tmp_path / "run"
    args = ["fit", "--model", "linear", "--data", str(data_dir), "--out", str(out), "--learning-rate", "1e30",
            "--epochs", "2", "--seed", "1", "--quiet"]
    for _ in range(2):  # the same command again: the same answer (finishing from the backup), not a traceback
        result = CliRunner().invoke(cli.cli, args)
        assert result.exit_code == 1 and not isinstance(result.exception, ValueError), result.output
        assert "training diverged: its weights became NaN or infinite, and training stopped on a NaN loss" in (
            result.stderr) and "run again with --overwrite" in result.stderr
        assert "Invalid loss" not in result.stdout  # Keras's "Batch 7: Invalid loss, terminating training"
        assert not (out / "model.keras").exists()


def test_a_run_that_diverges_says_so(data_dir, tmp_path):
    # At an absurd rate RMSprop's weights turn NaN and Keras's sparse update then fails ("indices[884] = 3552 is
    # not in [0, 3073)") before StopOnInvalidLoss sees a loss: that was the whole message.
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "cnn", "--data", str(data_dir), "--out", str(out),
                                          "--learning-rate", "1e9", "--epochs", "1", "--seed", "1", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "training diverged: its weights became NaN or infinite" in result.output
    assert "Lower --learning-rate (this run's: 1e+09)" in result.output and not (out / "model.keras").exists()
    # The id cache (4 bytes a token of the corpus) is not left behind by a failed run: it was, until a rerun.
    assert (out / "config.json").is_file() and not (out / "cache").exists()
