"""Temperature scaling: fitted on validation, proven on held-out data, kept in model.keras, no class changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from models import calibration
from models.zoo.layers import Temperature
from pipeline import synthetic
from pipeline.data_dir import DataDir
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings
from conftest import cli_in_a_new_process


def over_confident(num_examples: int, num_classes: int, seed: int, sharpness: float = 3.0):
    """Labels drawn from known probabilities, and the scores of a model whose logits are `sharpness` too large."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, (num_examples, num_classes))
    if num_classes == 2:
        true_logit = true_logits[:, 0]
        labels = (rng.random(num_examples) < 1 / (1 + np.exp(-true_logit))).astype(int)
        return calibration.scaled(sharpness * true_logit, 1.0), labels
    true = calibration.scaled(true_logits, 1.0)
    labels = np.array([rng.choice(num_classes, p=row) for row in true])
    return calibration.scaled(sharpness * true_logits, 1.0), labels


@pytest.mark.parametrize("num_classes", [2, 4])
def test_temperature_fitted_on_one_half_calibrates_the_other(num_classes):
    scores, labels = over_confident(20_000, num_classes, seed=num_classes)
    fitted = calibration.fit_temperature(scores[:10_000], labels[:10_000])
    assert fitted.temperature == pytest.approx(3.0, rel=0.1)
    held_out, held_labels = scores[10_000:], labels[10_000:]
    after = calibration.scaled(calibration.logits_of(held_out), fitted.temperature)
    assert calibration.ece(held_out, held_labels) > 0.08
    assert calibration.ece(after, held_labels) < 0.03
    assert calibration.log_loss(calibration.logits_of(held_out), held_labels, fitted.temperature) < \
        calibration.log_loss(calibration.logits_of(held_out), held_labels, 1.0)
    # No prediction changes class.
    if num_classes == 2:
        assert np.array_equal(after >= 0.5, held_out >= 0.5)
    else:
        assert np.array_equal(after.argmax(axis=1), held_out.argmax(axis=1))


def test_calibrated_scores_keep_t_at_one_and_tiny_splits_are_left_alone():
    rng = np.random.default_rng(0)
    scores = rng.random(5000)
    labels = (rng.random(5000) < scores).astype(int)  # calibrated by construction
    assert calibration.fit_temperature(scores, labels).temperature == pytest.approx(1.0, abs=0.08)
    few = calibration.fit_temperature(scores[:50], labels[:50])
    assert few.temperature == 1.0 and "fewer than" in few.reason


@pytest.mark.parametrize("num_classes", [2, 3])
def test_temperature_layer_is_the_fitted_function(num_classes):
    scores, _ = over_confident(500, num_classes, seed=7)
    probabilities = scores.reshape(-1, 1) if num_classes == 2 else scores
    layer = Temperature(2.5)
    out = np.asarray(layer(probabilities.astype("float32")))
    expected = calibration.scaled(calibration.logits_of(scores), 2.5)
    np.testing.assert_allclose(out.reshape(expected.shape), expected, atol=2e-5)
    restored = Temperature.from_config(layer.get_config())
    assert restored.temperature == 2.5


def test_validation_scores_read_batches_of_every_width_in_order():
    """Batches padded by length have many widths; one graph scores them all, and each score keeps its label."""
    import keras
    import tensorflow as tf

    ids = keras.Input((None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4, mask_zero=True)(ids))
    model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(pooled))
    rows = [[1 + (i * 7 + j) % 49 for j in range(1 + i % 9)] for i in range(40)]
    batches = tf.data.Dataset.from_generator(lambda: ((row, i % 2) for i, row in enumerate(rows)), output_signature=(
        tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int64))).padded_batch(6)   # widths 6..9
    scores, labels = calibration.validation_scores(model, batches)
    alone = [float(model.predict_on_batch(np.array([row]))[0, 0]) for row in rows]
    np.testing.assert_allclose(scores, alone, atol=1e-6)
    assert labels.tolist() == [i % 2 for i in range(40)]


@pytest.fixture(scope="module")
def noisy_data(tmp_path_factory):
    """Reviews with 15% of labels flipped: a model trained long without a penalty learns to be too sure."""
    root = tmp_path_factory.mktemp("noisy")
    train = synthetic.write_corpus(root / "train.ft.txt", 3000, 1, 30, label_noise=0.15)
    test = synthetic.write_corpus(root / "test.ft.txt", 1500, 2, 30, label_noise=0.15)
    shard_corpus(ShardSettings(train=train, test=test, out=root / "data", num_shards=2, vocab_size=2000))
    return root / "data"


def test_fit_calibrates_an_over_confident_model_and_evaluate_in_a_new_process_agrees(noisy_data, tmp_path):
    runs, outputs = {}, {}
    for flag in ("--calibrate", "--no-calibrate"):
        runs[flag] = tmp_path / flag.strip("-")
        result = CliRunner().invoke(cli.cli, [
            "fit", "--model", "linear", "--data", str(noisy_data), "--out", str(runs[flag]), "--epochs", "10",
            "--param", "c=100000", "--seed", "1", flag])
        assert result.exit_code == 0, result.output
        outputs[flag] = result.output
    assert "calibration: temperature" in outputs["--calibrate"]
    assert "calibration" not in outputs["--no-calibrate"]
    config = json.loads((runs["--calibrate"] / "config.json").read_text())
    recorded = config["calibration"]
    assert recorded["temperature"] > 1.2 and recorded["ece_after"] < recorded["ece_before"]
    # Fitted on every validation review once: training's own validation batches, read again from its id cache.
    assert recorded["num_examples"] == DataDir.open(noisy_data).num_examples("validation")
    assert json.loads((runs["--no-calibrate"] / "config.json").read_text()).get("calibration") is None

    # evaluate and the models it loads: a new process, as users run them
    cli_in_a_new_process(*[["evaluate", run, "--data", noisy_data] for run in runs.values()])
    metrics = {flag: json.loads((run / "metrics.json").read_text()) for flag, run in runs.items()}
    calibrated, raw = metrics["--calibrate"], metrics["--no-calibrate"]
    assert calibrated["calibration"]["ece"] < raw["calibration"]["ece"]
    assert calibrated["calibration"]["ece"] <= 0.05
    assert calibrated["log_loss"] < raw["log_loss"]
    assert calibrated["confusion_matrix"] == raw["confusion_matrix"]  # same weights, no class changed
    assert calibrated["temperature"] == pytest.approx(recorded["temperature"]) and raw["temperature"] is None
    # The F1-best threshold fit chose on the calibrated validation scores, taken as it is; the raw run's, scored.
    assert calibrated["f1_threshold"]["value"] == recorded["f1_threshold"]
    assert raw["f1_threshold"]["validation_reviews"] == recorded["num_examples"]
