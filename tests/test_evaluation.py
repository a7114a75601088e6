"""evaluate, predict, compare, study and embed on a real trained run."""

import bz2
import csv
import json
import math
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from sklearn import metrics as sk_metrics

import cli
from models import comparison, embedding_inspection as embedding, evaluation
from models.evaluation import evaluate, predict, text_scorer, texts_of_file
from models.run_dir import RunConfig, RunDir
from models.training import FitSettings, fit
from pipeline import dataset
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from pipeline.manifest import read_manifest
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("eval") / "ffn"
    fit(FitSettings(model="ffn", data=data_dir, out=out, epochs=3, seed=1, learning_rate=3e-3), verbose=0)
    return out


def test_metrics_agree_with_sklearn_on_predict_output(run_dir, data_dir, corpus_files):
    metrics = evaluate(run_dir, DataDir.open(data_dir))
    # The test split is exactly the test file (it has no bad lines): score the file with predict.
    test_file = corpus_files[1]
    labels = [0 if line.startswith(b"__label__1") else 1 for line in
              __import__("bz2").open(test_file).read().splitlines()]
    scores = np.array([p.p_positive for p in predict(run_dir, texts_of_file(test_file), batch_size=64)])
    predicted = (scores >= 0.5).astype(int)
    assert metrics["num_examples"] == len(labels) == read_manifest(data_dir).splits["test"].num_examples
    assert metrics["accuracy"] == pytest.approx(sk_metrics.accuracy_score(labels, predicted))
    assert metrics["f1"] == pytest.approx(sk_metrics.f1_score(labels, predicted))
    assert metrics["roc_auc"] == pytest.approx(sk_metrics.roc_auc_score(labels, scores), abs=1e-4)
    assert metrics["confusion_matrix"] == sk_metrics.confusion_matrix(labels, predicted).tolist()
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["split"] == "test" and len(saved["data_manifest_sha256"]) == 64
    assert (run_dir / "roc.png").stat().st_size > 0 and (run_dir / "confusion.png").stat().st_size > 0
    # The extra measurements agree with scikit-learn on the same (predict) scores.
    from sklearn.calibration import calibration_curve

    assert saved["calibration"]["brier"] == pytest.approx(sk_metrics.brier_score_loss(labels, scores), abs=1e-5)
    fraction_positive, _ = calibration_curve(labels, scores, n_bins=15)
    np.testing.assert_allclose([p["fraction_positive"] for p in saved["calibration"]["reliability"]],
                               fraction_positive, atol=1e-6)
    assert sum(bucket["count"] for bucket in saved["by_length"]) == len(labels)
    assert 0 < saved["f1_threshold"]["value"] < 1 and saved["f1_threshold"]["chosen_on"] == "validation"
    errors = [json.loads(line) for line in (run_dir / "errors.jsonl").read_text().splitlines()]
    (_, fp), (fn, _) = metrics["confusion_matrix"]
    assert len(errors) == min(fp, 20) + min(fn, 20) and all(e["text"] for e in errors)
    for kind, label in (("false_positive", 0), ("false_negative", 1)):
        confidences = [e["confidence"] for e in errors if e["kind"] == kind]
        assert confidences == sorted(confidences, reverse=True)
        assert all(e["label"] == label for e in errors if e["kind"] == kind)


def test_the_f1_threshold_is_chosen_on_the_validation_sample_the_epochs_scored(run_dir, data_dir):
    from models import evaluation
    from pipeline import dataset

    data = DataDir.open(data_dir)
    score, num_validation = evaluation.text_scorer(RunDir(run_dir).load_model()), data.num_examples("validation")
    scored = evaluation.score_split(score, data, "test", 64)
    whole = evaluation.f1_threshold(score, data, "test", 64, scored)   # a small split: all of it
    every = -(-num_validation // 10)
    sampled = evaluation.f1_threshold(score, data, "test", 64, scored, validation_sample=10)
    assert whole["validation_reviews"] == num_validation
    assert sampled["validation_reviews"] == dataset.sample_size(data, "validation", every) < num_validation
    # fit chose a threshold on the same reviews' calibrated scores (its token-id model, then the temperature):
    # evaluate takes it as it is, where scoring them again through model.keras gives the same one.
    fitted = RunDir(run_dir).config().calibration
    assert fitted["num_examples"] == num_validation and whole["value"] == pytest.approx(fitted["f1_threshold"],
                                                                                        abs=1e-5)
    evaluated = evaluate(run_dir, data)["f1_threshold"]
    assert evaluated["value"] == fitted["f1_threshold"]
    assert evaluated["validation_reviews"] == num_validation   # fit's default sample
    assert evaluated["metrics"] == whole["metrics"]
    # Not where fit calibrated on other reviews than the sample asked for: those are scored.
    assert evaluation.f1_threshold(score, data, "test", 64, scored, validation_sample=10,
                                   fitted=fitted) == sampled


def test_evaluate_takes_another_vocabulary_and_refuses_other_classes(run_dir, data_dir, corpus_files, tmp_path):
    """model.keras scores the shards' raw texts with its own vocabulary: a corpus sharded on its own (another
    vocabulary) is evaluated as the one trained on; a data directory of other classes is refused."""
    train, test = corpus_files
    other = tmp_path / "other"
    shard_corpus(ShardSettings(train=train, test=test, out=other, num_shards=2, vocab_size=500))
    assert DataDir.open(other).vocab_sha256 != DataDir.open(data_dir).vocab_sha256
    keys = ("accuracy", "f1", "roc_auc", "log_loss")
    on_its_own = evaluate(run_dir, DataDir.open(other))
    on_trained = evaluate(run_dir, DataDir.open(data_dir))
    assert {key: on_its_own[key] for key in keys} == pytest.approx({key: on_trained[key] for key in keys})
    assert on_its_own["confusion_matrix"] == on_trained["confusion_matrix"]
    assert json.loads((run_dir / "metrics.json").read_text())["data_dir"] == str(data_dir)
    flipped = tmp_path / "flipped"   # the same two classes, the other one positive: its class ids are swapped
    shard_corpus(ShardSettings(train=train, test=test, out=flipped, positive_class="1"))
    with pytest.raises(ReviewflowError, match=r"not the ones .* trained on \(\['1', '2'\]\) \(the same two with "
                                              r"another positive class: shard it with --positive-class 2\)"):
        evaluate(run_dir, DataDir.open(flipped))


def test_evaluate_a_labeled_file_as_its_shards_are_evaluated(run_dir, data_dir, corpus_files, tmp_path):
    """`evaluate --file`: a labeled file scored as `shard` would read it, no shards made; the test file (it has no
    bad line) gives the metrics its test split gives. Unreadable records and labels outside the run's classes are
    counted, never scored."""
    keys = ("accuracy", "f1", "roc_auc", "log_loss")
    from_file = evaluation.evaluate_file(run_dir, corpus_files[1])
    from_shards = evaluate(run_dir, DataDir.open(data_dir))
    assert {key: from_file[key] for key in keys} == pytest.approx({key: from_shards[key] for key in keys})
    assert from_file["confusion_matrix"] == from_shards["confusion_matrix"]
    assert from_file["f1_threshold"]["value"] == from_shards["f1_threshold"]["value"]   # fit's, on validation
    assert from_file["split"] == "file" and from_file["rejected"] == {}
    reviews = [line.decode() for line in bz2.open(corpus_files[1]).read().splitlines()[:40]]
    mixed = tmp_path / "mixed.ft.txt"
    mixed.write_text("\n".join(reviews[:20] + ["no label here", "__label__7 a stray class", "__label__2 "]
                                + reviews[20:]) + "\n")
    result = CliRunner().invoke(cli.cli, ["evaluate", str(run_dir), "--file", str(mixed)])
    assert result.exit_code == 0, result.output
    assert "(40 examples of mixed.ft.txt)" in result.stdout
    assert ("warning: 3 record(s) of " + str(mixed) + " were not evaluated (empty_text 1, no_label 1, "
            "unknown_label 1)") in result.stderr
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["num_examples"] == 40 and written["rejected"] == {"empty_text": 1, "no_label": 1,
                                                                     "unknown_label": 1}
    # Read back by the next command in a new process, as a user runs them: the report says what was scored.
    done = subprocess.run([sys.executable, "cli.py", "report", str(run_dir), "--out", str(tmp_path / "report"),
                           "--explain", "0"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "On 40 examples of mixed.ft.txt: accuracy " in (tmp_path / "report" / "report.html").read_text()
    as_csv = tmp_path / "held_out.csv"   # any corpus format; its label field named as shard names it
    with open(as_csv, "w", newline="") as out:
        csv.writer(out).writerows([("stars", "body"), *((line[9], line[11:]) for line in reviews)])
    result = CliRunner().invoke(cli.cli, ["evaluate", str(run_dir), "--file", str(as_csv), "--label-field", "stars"])
    assert result.exit_code == 0 and "(40 examples of held_out.csv)" in result.stdout, result.output
    as_folders = tmp_path / "held_out"   # a folder per class (aclImdb/test), the same 40 reviews
    for number, line in enumerate(reviews):
        (as_folders / line[9]).mkdir(parents=True, exist_ok=True)
        (as_folders / line[9] / f"{number}.txt").write_text(line[11:])
    result = CliRunner().invoke(cli.cli, ["evaluate", str(run_dir), "--file", str(as_folders)])
    assert result.exit_code == 0 and "(40 examples of held_out)" in result.stdout, result.output
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] == pytest.approx(written["accuracy"])
    for args, said in [([], "give --data DIR"), (["--data", str(data_dir), "--file", str(mixed)], "give --data DIR"),
                       (["--file", str(mixed), "--split", "test"], "--split: for --data"),
                       (["--data", str(data_dir), "--label-field", "x"], "--label-field: for --file")]:
        refused = CliRunner().invoke(cli.cli, ["evaluate", str(run_dir), *args])
        assert refused.exit_code == 2 and said in refused.output, refused.output
    evaluate(run_dir, DataDir.open(data_dir))   # the module's run keeps its test split's metrics for later tests


def test_predict_keeps_order_and_count_with_blank_and_non_ascii_lines(run_dir, tmp_path):
    lines = ["Great: excellent, love it", "", "__label__1 Awful: terrible waste", "café naïve über", "  ",
             "日本語のレビュー", "Great: excellent, love it"]
    path = tmp_path / "reviews.txt.gz"
    import gzip
    path.write_bytes(gzip.compress(("\r\n".join(lines) + "\n").encode()))
    result = CliRunner().invoke(cli.cli, ["predict", str(run_dir), "--file", str(path), "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert len(out) == len(lines)
    assert all(line.split("\t")[0] in ("__label__1", "__label__2") for line in out)
    # Same review, same answer, wherever it sits (the last float digit may differ with the batch's shape).
    first, last = out[0].split("\t"), out[-1].split("\t")
    assert first[0] == last[0] and float(first[1]) == pytest.approx(float(last[1]), abs=2e-6)
    assert out[0].startswith("__label__2") and out[2].startswith("__label__1")
    model = RunDir(run_dir).load_model()
    expected = model.predict(tf.constant([lines[3]]), verbose=0)[0, 0]
    assert float(out[3].split("\t")[1]) == pytest.approx(expected, abs=1e-6)


def test_predict_names_each_file_of_a_directory_of_reviews(run_dir, tmp_path):
    """`predict --file DIR`: a review per file, in class folders or beside them (predict needs no class), each
    output line led by the file's path; a file that cannot be read is its rejected line, in its place."""
    reviews = tmp_path / "reviews"
    (reviews / "pos").mkdir(parents=True)
    (reviews / "pos" / "a.txt").write_text("Great: excellent, love it")
    (reviews / "pos" / "b.txt").write_bytes(b"\xff\xfe not text")
    (reviews / "loose.txt").write_text("Awful: terrible waste")
    as_tsv = CliRunner().invoke(cli.cli, ["predict", str(run_dir), "--file", str(reviews)])
    as_jsonl = CliRunner().invoke(cli.cli, ["predict", str(run_dir), "--file", str(reviews), "--format", "jsonl"])
    assert as_tsv.exit_code == 0 and as_jsonl.exit_code == 0, as_tsv.output + as_jsonl.output
    lines = [line.split("\t") for line in as_tsv.stdout.splitlines()]
    assert [line[0] for line in lines] == ["loose.txt", "pos/a.txt", "pos/b.txt"]
    assert lines[1][1] == "__label__2" and lines[0][1] == "__label__1" and lines[2][1:] == ["rejected:invalid_utf8",
                                                                                             "nan"]
    model = RunDir(run_dir).load_model()
    expected = model.predict(tf.constant(["Great: excellent, love it"]), verbose=0)[0, 0]
    assert float(lines[1][2]) == pytest.approx(expected, abs=1e-6)
    objects = [json.loads(line) for line in as_jsonl.stdout.splitlines()]
    assert [obj["file"] for obj in objects] == ["loose.txt", "pos/a.txt", "pos/b.txt"]
    assert objects[2] == {"file": "pos/b.txt", "rejected": "invalid_utf8"}
    assert "1 record(s) of" in as_tsv.stderr and "invalid_utf8 1" in as_tsv.stderr


def test_predict_reads_stdin_as_it_reads_a_file_of_lines(run_dir, tmp_path):
    # A stray Latin-1 byte (replaced and warned of: it was a traceback, then silent), a fastText label (left
    # out: it was scored as words) and a line over 1 MiB whose cut falls inside a character (scored on its
    # first MiB, the rest dropped: it was held whole; the cut character is not a bad byte) typed or piped in.
    hostile = b"awful " * 100_000 + "é".encode() * 300_000
    reviews = (b"Great: excellent\r\ncaf\xe9 awful \xff\xfe\n\n__label__2 caf\xc3\xa9 great\n" + hostile
               + b"\nexcellent\n")
    path = tmp_path / "reviews.txt"
    path.write_bytes(reviews)
    from_file = CliRunner().invoke(cli.cli, ["predict", str(run_dir), "--file", str(path)])
    from_stdin = CliRunner().invoke(cli.cli, ["predict", str(run_dir)], input=reviews)
    assert from_stdin.exit_code == 0, from_stdin.output
    assert len(from_stdin.stdout.splitlines()) == 6 and from_stdin.stdout == from_file.stdout
    for result, source in ((from_file, str(path)), (from_stdin, "standard input")):
        assert f"warning: 1 line(s) of {source} are not UTF-8 (the first: line 2)" in result.stderr
    unlabeled = CliRunner().invoke(cli.cli, ["predict", str(run_dir)], input=b"caf\xc3\xa9 great\n")
    assert unlabeled.stdout == from_stdin.stdout.splitlines(keepends=True)[3] and not unlabeled.stderr


def test_predict_warns_of_a_binary_file_it_scores(run_dir, tmp_path):
    """A binary file given by mistake (a model, an archive) is scored line by line, but never in silence."""
    path = tmp_path / "model.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size=20_000, dtype=np.uint8).tobytes())
    done = subprocess.run([sys.executable, "cli.py", "predict", str(run_dir), "--file", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.count("\n")
    assert lines > 10 and f"warning: {lines:,} line(s) of {path} are not UTF-8 (the first: line 1)" in done.stderr


def test_arguments_in_another_encoding_are_scored_and_warned_of_as_a_files_lines_are(run_dir):
    """A terminal in Latin-1 passes bytes that are not UTF-8 as arguments: they were a traceback in predict,
    predict --explain and embed; now they are read as a file's bad lines are (U+FFFD, and a warning)."""
    latin1, utf8 = b"caf\xe9 awful", "café awful".encode()
    predicted = subprocess.run([sys.executable, "cli.py", "predict", str(run_dir), utf8, latin1, "--format", "jsonl",
                                "--explain"], cwd=ROOT, capture_output=True)
    assert predicted.returncode == 0, predicted.stderr.decode()[-2000:]
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(lines) == 2 and [word["text"] for word in lines[1]["explanation"]["tokens"]][-1] == "awful"
    assert (b"warning: 1 of the reviews given as arguments are not UTF-8 (the first: review 2)"
            in predicted.stderr)
    embedded = subprocess.run([sys.executable, "cli.py", "embed", str(run_dir), latin1], cwd=ROOT,
                              capture_output=True)
    assert embedded.returncode == 0 and b"warning: SENTENCE is not UTF-8" in embedded.stderr, embedded.stderr
    assert b"'awful' id" in embedded.stdout


def test_predict_scores_texts_by_length_and_answers_each_in_its_place(run_dir):
    """predict sorts a pool of texts by length before cutting it into batches (a batch's padding ends at its
    longest review); every answer still belongs to its own text, in input order."""
    rng = np.random.default_rng(0)
    words = ["great", "awful", "love", "waste", "fine", "plot", "excellent", "terrible"]
    texts = [" ".join(rng.choice(words, size=int(size))) for size in rng.integers(1, 60, size=37)]
    got = [prediction.p_positive for prediction in predict(run_dir, iter(texts), batch_size=4)]
    model = RunDir(run_dir).load_model()
    alone = [float(model.predict_on_batch(tf.constant([text]))[0, 0]) for text in texts]
    assert len(set(np.round(alone, 4))) > 10   # the texts get scores of their own: a misplaced one would show
    assert got == pytest.approx(alone, abs=2e-6)
    score = text_scorer(model)   # one graph for every batch size, the model's probabilities
    for size in (1, 5, 37):
        np.testing.assert_allclose(score(tf.constant(texts[:size]))[:, 0], alone[:size], atol=2e-6)


def test_long_reviews_are_scored_in_pools_and_batches_of_bounded_text(run_dir, monkeypatch):
    """A file of long lines was one pool of 4 x 1024 reviews scored 1024 at a time: predicting 1,500 lines cut
    at 1 MiB took 14 GB. Pools and batches now also close at a bound of text (scaled down here)."""
    monkeypatch.setattr(evaluation, "POOL_CHARS", 1000)
    monkeypatch.setattr(evaluation, "BATCH_CHARS", 300)
    lengths = [100, 250, 50, 400, 10, 10, 10]
    assert [list(range(7))[part] for part in evaluation._batches(lengths, 4)] == [[0], [1, 2], [3], [4, 5, 6]]
    assert [list(range(9))[part] for part in evaluation._batches([1] * 9, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert [len(pool) for pool in evaluation._pools(["x" * 400] * 5, size=100)] == [3, 2]
    rng = np.random.default_rng(1)
    words = ["great", "awful", "love", "waste", "fine", "plot", "excellent", "terrible"]
    texts = [" ".join(rng.choice(words, size=int(size))) for size in rng.integers(1, 90, size=23)]
    got = [prediction.p_positive for prediction in predict(run_dir, iter(texts), batch_size=8)]
    model = RunDir(run_dir).load_model()
    assert got == pytest.approx([float(model.predict_on_batch(tf.constant([text]))[0, 0]) for text in texts],
                                abs=2e-6)


def test_evaluate_scores_a_split_of_long_reviews_in_batches_of_bounded_text(run_dir, data_dir, monkeypatch):
    """`evaluate` scored a split in pools of 4 x 4096 reviews, whatever their length: 1,500 documents of 114 kB
    were one pool and took 3.2 GB. Its batches now hold ~BATCH_CHARS of the manifest's bytes a record (scaled
    down here), and score the same."""
    data = DataDir.open(data_dir)
    model = RunDir(run_dir).load_model()
    scorer = text_scorer(model)
    before = evaluation.score_split(scorer, data, "test", 4096)
    monkeypatch.setattr(evaluation, "BATCH_CHARS", math.ceil(dataset.record_bytes(data, "test") * 50))
    sizes = []

    def score(texts):
        sizes.append(int(tf.size(texts)))
        return scorer(texts)
    after = evaluation.score_split(score, data, "test", 4096)
    assert max(sizes) == 50 and sum(sizes) == data.num_examples("test")
    order, order_after = np.lexsort((before.scores, before.labels)), np.lexsort((after.scores, after.labels))
    assert before.labels[order].tolist() == after.labels[order_after].tolist()
    assert before.scores[order] == pytest.approx(after.scores[order_after], abs=1e-6)


def test_predict_file_gives_a_hostile_record_its_own_rejected_line(run_dir, tmp_path):
    path = tmp_path / "reviews.jsonl"
    deep = "[" * 50_000 + "]" * 50_000
    # A record without the text field, or with null there, is no review (it was scored as an empty one).
    path.write_text("\n".join([json.dumps({"text": "great excellent"}), '{"text": ' + deep + "}", "not json",
                               json.dumps({"text": "x" * (2 << 20)}), json.dumps({"text": "terrible awful"}),
                               json.dumps({"title": "no text"}), json.dumps({"text": None}),
                               json.dumps({"text": ""})]) + "\n")
    done = subprocess.run([sys.executable, "cli.py", "predict", str(run_dir), "--file", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = [line.split("\t") for line in done.stdout.splitlines()]
    assert [row[0] for row in out] == ["__label__2", "rejected:too_deep", "rejected:bad_row",
                                       "rejected:record_too_long", "__label__1", "rejected:missing_field",
                                       "rejected:missing_field", out[7][0]]
    assert out[7][0].startswith("__label__")   # an empty text is a review, scored as an empty line is
    assert out[1][1] == "nan" and "5 record(s)" in done.stderr and "too_deep 1" in done.stderr
    assert "missing_field 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_predict_answers_stdin_in_jsonl_and_a_live_stream_when_it_pauses(run_dir):
    # Standard input still open (someone typing, `tail -f`): each review's line comes while the next has yet to
    # be written, not when thousands more fill a pool. The deadline only bounds a command that waits on.
    import queue

    process = subprocess.Popen([sys.executable, "cli.py", "predict", str(run_dir), "--format", "jsonl"], cwd=ROOT,
                               text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: queue.Queue = queue.Queue()  # read on a thread: a line already in the pipe's buffer escapes select()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()

    def answers(reviews: str, count: int) -> list[dict]:
        process.stdin.write(reviews)
        process.stdin.flush()
        try:
            return [json.loads(lines.get(timeout=120)) for _ in range(count)]
        except queue.Empty:
            raise AssertionError("no answer while the stream stayed open") from None

    try:
        first = answers("great excellent\n", 1)
        rest = answers("\nterrible awful\n", 2)   # a blank line gets its prediction too
        assert [row["label"] for row in first + rest][::2] == ["__label__2", "__label__1"]
        assert 0 <= rest[0]["p_positive"] <= 1
        process.stdin.close()
        assert process.wait(timeout=60) == 0
        reader.join(timeout=60)
        assert lines.empty()   # nothing more than one line per review
    finally:
        process.kill()
        process.wait()


def test_live_input_marks_each_pause_once_and_hands_over_a_reading_error():
    from pipeline import live

    def slow_then_failing():
        yield "a"
        yield "b"
        threading.Event().wait(1.5)   # the stream pauses: far longer than the wait below, on any machine
        yield "c"
        raise OSError("stdin went away")

    items = []
    with pytest.raises(OSError, match="stdin went away"):
        for item in live.with_pauses(slow_then_failing(), pause_after_s=0.5):
            items.append(item)
    assert items == ["a", "b", live.PAUSE, "c"]


def test_compare_orders_by_test_accuracy(tmp_path):
    for name, accuracy in [("a", 0.7), ("b", 0.9), ("c", None), ("d", 0.8)]:
        run = tmp_path / name
        run.mkdir()
        RunDir(run).write_config(RunConfig(settings={"model": name}, global_batch_size=8, replicas=1, vocab_size=9,
                                           vocab_sha256="0", data_manifest_sha256="0", parameters=10, versions={}))
        (run / "history.json").write_text(json.dumps([{"epoch": 1, "val_accuracy": 0.5, "train_seconds": 2.0,
                                                       "examples_per_second": 100.0}]))
        if accuracy is not None:
            (run / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "f1": 0.5, "roc_auc": 0.5}))
    (tmp_path / "typo").mkdir()  # a folder that never held a run: named so, not taken for an interrupted one
    shutil.copytree(tmp_path / "a", tmp_path / "damaged")
    (tmp_path / "damaged" / "history.json").write_text('[{"epoch": 1, "val_')   # cut short: named, the rest compared
    rows = comparison.compare([tmp_path / n for n in ("a", "b", "c", "d", "typo", "damaged")])
    assert [row["model"] for row in rows] == ["b", "d", "a", "c", "typo", "a"]
    assert [row["error"] for row in rows[3:5]] == ["incomplete run", "not a run (no config.json)"]
    assert rows[5]["error"].startswith(f"{tmp_path / 'damaged' / 'history.json'} is damaged, not JSON")
    result = CliRunner().invoke(cli.cli, ["compare", *(str(tmp_path / n) for n in "abcd"),
                                          "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[0] == "b"
    assert (tmp_path / "cmp" / "comparison.md").read_text().count("\n") == 6
    assert (tmp_path / "cmp" / "comparison.png").exists()
    # Two runs of one model are told apart by their directories (they were two rows reading "a"); one run
    # given twice is one row.
    shutil.copytree(tmp_path / "a", tmp_path / "a-lr-0.01")
    result = CliRunner().invoke(cli.cli, ["compare", str(tmp_path / "a"), str(tmp_path / "a-lr-0.01"),
                                          str(tmp_path / "b"), f"{tmp_path}/./b"])
    lines = result.output.splitlines()
    assert result.exit_code == 0 and len(lines) == 4, result.output
    assert lines[0].split()[:2] == ["run", "model"] and [line.split()[:2] for line in lines[2:]] == [
        ["a", "a"], ["a-lr-0.01", "a"]]


def test_compare_names_runs_scored_on_other_reviews_and_study_scores_them_again(run_dir, data_dir, corpus_files,
                                                                              tmp_path):
    runs = tmp_path / "runs"
    for name in ("ffn", "ffn-b"):
        shutil.copytree(run_dir, runs / name)
        (runs / name / "metrics.json").unlink(missing_ok=True)
    # Complete but not evaluated: blank test columns, and a note that says why and what to run.
    result = CliRunner().invoke(cli.cli, ["compare", str(runs / "ffn"), str(runs / "ffn-b")])
    assert result.exit_code == 0 and "note: not evaluated yet, so no test_* columns: ffn, ffn-b. Score each with " \
        "`evaluate RUN --data DIR`" in result.stderr, result.output
    evaluate(runs / "ffn", DataDir.open(data_dir))
    held = tmp_path / "held.ft.txt"   # 30 of the test reviews: another set than the test split
    held.write_bytes(b"".join(bz2.open(corpus_files[1]).readlines()[:30]))
    assert CliRunner().invoke(cli.cli, ["evaluate", str(runs / "ffn-b"), "--file", str(held)]).exit_code == 0
    result = CliRunner().invoke(cli.cli, ["compare", str(runs / "ffn"), str(runs / "ffn-b"), "--out",
                                          str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()[:3]
    scored_on = header.split().index("scored_on")
    assert sorted(row.split()[scored_on] for row in rows) == ["held.ft.txt", "test"]
    said = (f"warning: these runs were last evaluated on different reviews (ffn on the test split of {data_dir}; "
            f"ffn-b on the file {held})")
    assert said in result.stderr and said in (tmp_path / "cmp" / "comparison.md").read_text()
    assert "not evaluated" not in result.stderr
    result = CliRunner().invoke(cli.cli, ["report", str(runs / "ffn"), str(runs / "ffn-b"), "--out",
                                          str(tmp_path / "report"), "--explain", "0"])
    assert result.exit_code == 0 and said in (tmp_path / "report" / "report.html").read_text(), result.output
    # A study finds ffn-b trained, and scores it on the test split again instead of skipping it.
    shutil.rmtree(runs / "ffn")
    shutil.move(runs / "ffn-b", runs / "ffn")
    result = CliRunner().invoke(cli.cli, ["study", "--data", str(data_dir), "--out", str(runs), "--models", "ffn",
                                          "--no-report"])
    assert result.exit_code == 0 and "complete in" in result.output and "evaluating it on the test split" in \
        result.output, result.output
    assert json.loads((runs / "ffn" / "metrics.json").read_text())["split"] == "test"
    assert "warning" not in result.stderr and "scored_on" not in result.stdout


def test_study_fits_evaluates_compares_and_survives_a_failing_model(data_dir, tmp_path):
    args = ["study", "--data", str(data_dir), "--out", str(tmp_path / "runs"), "--models", "ffn,lstm",
            "--epochs", "1", "--steps-per-epoch", "3", "--validation-steps", "2", "--param", "units=4"]
    result = CliRunner().invoke(cli.cli, args)
    # ffn takes no `units`: it fails and is reported (exit code 1); lstm trains all the same.
    assert result.exit_code == 1 and "1 of 2 models failed (ffn)" in result.output, result.output
    rows = list(csv.DictReader(open(tmp_path / "runs" / "comparison.csv")))
    assert [row["model"] for row in rows] == ["lstm", "ffn"]
    assert "the ffn model takes no such argument" in rows[1]["error"] and rows[0]["test_accuracy"]
    again = CliRunner().invoke(cli.cli, args)
    assert "lstm: complete" in again.output


def test_embed_shows_the_stored_vectors(run_dir, tmp_path):
    embedded = embedding.embed_sentence(run_dir, "Great, CAFÉ unseenword!")
    assert embedded.tokens == ["great", "café", "unseenword"] and embedded.ids[2] == 1
    assert embedded.known == [True, True, False]
    stored = next(l for l in RunDir(run_dir).load_model().layers if hasattr(l, "layers")).get_layer("embedding")
    np.testing.assert_array_equal(embedded.vectors["embedding"], stored.embeddings.numpy()[embedded.ids])
    result = CliRunner().invoke(cli.cli, ["embed", str(run_dir), "great unseenword", "--projector",
                                          str(tmp_path / "p")])
    assert result.exit_code == 0 and "'great' id" in result.output
    assert "'unseenword' id     1 (not in the vocabulary: the unknown token's row)" in result.output
    nothing = CliRunner().invoke(cli.cli, ["embed", str(run_dir), " !?, "])   # it printed a header and no row
    assert nothing.exit_code == 1 and "' !?, ' has no tokens once standardized" in nothing.output
    metadata = (tmp_path / "p" / "metadata.tsv").read_text().splitlines()
    assert len(metadata) == len((tmp_path / "p" / "vectors.tsv").read_text().splitlines())
    assert metadata[:2] == ["[PAD]", "[UNK]"]


@pytest.mark.parametrize("name", ["transformer", "ngram_bag"])
def test_embed_works_with_the_new_models(data_dir, tmp_path, name):
    run = tmp_path / name
    fit(FitSettings(model=name, data=data_dir, out=run, epochs=1, steps_per_epoch=3, validation_steps=1,
                    max_len=32, hparams={"buckets": 512} if name == "ngram_bag" else {}), verbose=0)
    embedded = embedding.embed_sentence(run, "great product")
    assert list(embedded.vectors) == ["embedding"]  # the token embedding, not the positions or the n-gram buckets
    assert embedded.vectors["embedding"].shape[0] == len(embedded.tokens) == 2
    written = embedding.write_projector(run, tmp_path / "projector")
    rows = (tmp_path / "projector" / "vectors.tsv").read_text().splitlines()
    assert len(rows) == len((tmp_path / "projector" / "metadata.tsv").read_text().splitlines())
    assert len(written) == 2


def test_a_pretrained_encoder_is_scored_in_small_batches_unless_told():
    from models import evaluation

    assert evaluation.inference_batch_size("pretrained", None, evaluation.DEFAULT_EVAL_BATCH) == 128
    assert evaluation.inference_batch_size("cnn", None, evaluation.DEFAULT_EVAL_BATCH) == 4096
    assert evaluation.inference_batch_size("linear", None, evaluation.DEFAULT_PREDICT_BATCH) == 1024
    assert evaluation.inference_batch_size("transformer", None, evaluation.DEFAULT_EVAL_BATCH) == 256
    assert evaluation.inference_batch_size("pretrained", 999, evaluation.DEFAULT_EVAL_BATCH) == 999


def test_evaluate_is_refused_while_another_process_writes_the_run(run_dir, data_dir):
    from pipeline import dir_lock

    def written() -> dict:
        return {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir() if path.name != ".lock"}

    before = written()
    with dir_lock.locked(run_dir):   # as a `fit --overwrite` (or another evaluate) in another process holds it
        done = subprocess.run([sys.executable, "cli.py", "evaluate", str(run_dir), "--data", str(data_dir)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "another reviewflow process is writing here" in done.stderr, done.stderr
    assert written() == before   # no metrics.json, errors.jsonl or plot of its own
