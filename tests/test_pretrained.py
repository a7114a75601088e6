"""`fit --model pretrained --preset DIR`: a tiny random BERT, saved as a KerasHub preset and written as a
Hugging Face checkpoint here (CI has no internet and no real checkpoint), fine-tuned from the shards.
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import cli
from models.run_dir import RunDir
from models.training import FitSettings, fit
from models.zoo import pretrained
from pipeline.errors import ReviewflowError
from conftest import cli_in_a_new_process, easy_data, kill_after_first_epoch, printed_json, start_python

ROOT = Path(__file__).resolve().parents[1]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_BERT = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=64)
QUICK = ["--max-len", "32", "--seed", "1"]


@pytest.fixture(scope="module")
def short_data(tmp_path_factory):
    return easy_data(tmp_path_factory.mktemp("pretrained"), 500, 10, test_lines=100, agreement=0.95, vocab_size=400)


def vocabulary(data_dir: Path) -> list[str]:
    """A WordPiece vocabulary made from the test corpus: BERT's special tokens, then its words."""
    return SPECIAL + (data_dir / "vocab.txt").read_text(encoding="utf-8").split()


@pytest.fixture(scope="module")
def keras_hub_preset(short_data, tmp_path_factory):
    """A tiny random BERT saved with `save_to_preset`, as a user's KerasHub preset directory."""
    path = tmp_path_factory.mktemp("presets") / "tiny_bert"
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary(short_data)), **TINY_BERT)
    backbone.save_to_preset(str(path))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary(short_data), lowercase=True).save_to_preset(str(path))
    return path


def hf_weights(backbone) -> dict[str, np.ndarray]:
    """The backbone's weights under Hugging Face BERT's names and layouts (KerasHub's converter, inverted)."""
    def dense(kernel, width):  # KerasHub (in, ...) -> Hugging Face (out, in)
        return np.reshape(kernel, (width, -1)).T

    width = backbone.hidden_dim
    weights = {"embeddings.word_embeddings.weight": backbone.get_layer("token_embedding").embeddings,
               "embeddings.position_embeddings.weight": backbone.get_layer("position_embedding").position_embeddings,
               "embeddings.token_type_embeddings.weight": backbone.get_layer("segment_embedding").embeddings,
               "embeddings.LayerNorm.weight": backbone.get_layer("embeddings_layer_norm").gamma,
               "embeddings.LayerNorm.bias": backbone.get_layer("embeddings_layer_norm").beta,
               "pooler.dense.weight": backbone.get_layer("pooled_dense").kernel.numpy().T,
               "pooler.dense.bias": backbone.get_layer("pooled_dense").bias}
    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"transformer_layer_{i}")
        attention, prefix = block._self_attention_layer, f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            layer = getattr(attention, f"{name}_dense")
            weights[f"{prefix}attention.self.{name}.weight"] = dense(layer.kernel.numpy(), width)
            weights[f"{prefix}attention.self.{name}.bias"] = np.reshape(layer.bias.numpy(), -1)
        weights[f"{prefix}attention.output.dense.weight"] = dense(attention.output_dense.kernel.numpy(), width)
        weights[f"{prefix}attention.output.dense.bias"] = attention.output_dense.bias
        for hf, norm in (("attention.output.LayerNorm", block._self_attention_layer_norm),
                         ("output.LayerNorm", block._feedforward_layer_norm)):
            weights[f"{prefix}{hf}.weight"], weights[f"{prefix}{hf}.bias"] = norm.gamma, norm.beta
        weights[f"{prefix}intermediate.dense.weight"] = block._feedforward_intermediate_dense.kernel.numpy().T
        weights[f"{prefix}intermediate.dense.bias"] = block._feedforward_intermediate_dense.bias
        weights[f"{prefix}output.dense.weight"] = block._feedforward_output_dense.kernel.numpy().T
        weights[f"{prefix}output.dense.bias"] = block._feedforward_output_dense.bias
    return {name: np.ascontiguousarray(np.asarray(value), dtype="float32") for name, value in weights.items()}


@pytest.fixture(scope="module")
def huggingface_checkpoint(short_data, keras_hub_preset, tmp_path_factory):
    """The same tiny BERT as a Hugging Face directory: config.json, model.safetensors, tokenizer.json only."""
    from safetensors.numpy import save_file

    path = tmp_path_factory.mktemp("presets") / "tiny_bert_hf"
    path.mkdir()
    backbone = keras_hub.models.Backbone.from_preset(str(keras_hub_preset))
    words = vocabulary(short_data)
    (path / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": len(words),
        "hidden_size": TINY_BERT["hidden_dim"], "num_hidden_layers": TINY_BERT["num_layers"],
        "num_attention_heads": TINY_BERT["num_heads"], "intermediate_size": TINY_BERT["intermediate_dim"],
        "max_position_embeddings": TINY_BERT["max_sequence_length"], "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0}))
    save_file(hf_weights(backbone), str(path / "model.safetensors"))
    (path / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "normalizer": {"type": "BertNormalizer", "lowercase": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "vocab": {word: i for i, word in enumerate(words)}}}))
    return path


def cli_run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_a_keras_hub_preset_fine_tunes_learns_and_its_run_works_in_new_processes(short_data, keras_hub_preset,
                                                                                 tmp_path):
    run = tmp_path / "bert"
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "pretrained", "--preset", str(keras_hub_preset),
                                          "--data", str(short_data), "--out", str(run), "--epochs", "6",
                                          "--learning-rate", "3e-3", *QUICK])
    assert result.exit_code == 0, result.output
    config = RunDir(run).config()
    assert config.settings["optimizer"] == "adamw" and config.settings["warmup_share"] == 0.1
    assert config.settings["batch_size"] <= 32 and config.settings["truncate"] == "head_tail"
    assert config.preset["format"] == "keras_hub" and config.preset["architecture"] == "BertBackbone"
    assert len(config.preset["weights_sha256"]) == 64 and config.preset["max_sequence_length"] == 64
    assert max(row["val_accuracy"] for row in RunDir(run).history()) > 0.75  # it learns short texts

    # Every command that reads the run in a new process, and the SavedModel in one with only TensorFlow.
    review = next(line.split(" ", 1)[1] for line in (short_data.parent / "test.ft.txt").read_text().splitlines())
    serving = start_python("import json, tensorflow as tf, tensorflow_text\n"
                           f"export = tf.saved_model.load({str(run / 'export')!r})\n"
                           "print(json.dumps(export.serve(tf.constant(['great excellent love', 'awful terrible "
                           "waste'])).numpy().reshape(-1).tolist()))")
    _, predicted, embedded, compared, _ = cli_in_a_new_process(
        ["evaluate", run, "--data", short_data],
        ["predict", run, "great excellent love", "awful terrible waste", review, "--format", "jsonl", "--explain"],
        ["embed", run, "great movie"], ["compare", run], ["report", run, "--out", tmp_path / "report"])
    assert json.loads((run / "metrics.json").read_text())["accuracy"] > 0.7
    lines = predicted.stdout.splitlines()
    good, bad = (json.loads(line)["p_positive"] for line in lines[:2])
    assert good > bad
    explained = json.loads(lines[2])["explanation"]
    assert explained["method"] == "integrated_gradients"
    assert explained["completeness_error"] <= 0.05 * max(1.0, abs(explained["logit"] - explained["reference"]))
    assert [token["text"] for token in explained["tokens"]] == [review[token["start"]:token["end"]]
                                                                for token in explained["tokens"]]
    assert "[token_embedding] 16 dimensions" in embedded.stdout and "'great'" in embedded.stdout  # word pieces
    assert "pretrained" in compared.stdout
    assert (tmp_path / "report" / "report.html").is_file()
    np.testing.assert_allclose(printed_json(serving), [good, bad], atol=1e-5)


def test_a_hugging_face_checkpoint_with_only_tokenizer_json_loads_as_the_same_encoder(
        short_data, keras_hub_preset, huggingface_checkpoint, tmp_path):
    assert not (huggingface_checkpoint / "vocab.txt").exists()
    assert pretrained.check_preset(huggingface_checkpoint) == "huggingface"
    texts = tf.constant(["great movie", "an awful waste of time", ""])
    encoded = {}
    for preset in (keras_hub_preset, huggingface_checkpoint):
        inputs = pretrained.preset_vectorizer(preset, 16)(texts)
        encoded[preset.name] = (inputs, pretrained.load_backbone(preset)(inputs)["sequence_output"].numpy())
    (keras_inputs, keras_out), (hf_inputs, hf_out) = encoded.values()
    for name in keras_inputs:  # the vocabulary read from tokenizer.json tokenizes as the preset's does
        np.testing.assert_array_equal(keras_inputs[name].numpy(), hf_inputs[name].numpy())
    np.testing.assert_allclose(hf_out, keras_out, atol=1e-5)  # and the weights are the same encoder's
    run = tmp_path / "hf"
    fit(FitSettings(model="pretrained", preset=huggingface_checkpoint, data=short_data, out=run, epochs=1,
                    steps_per_epoch=3, validation_steps=1, max_len=32), verbose=0)
    assert RunDir(run).config().preset["format"] == "huggingface"
    assert len(cli_run("predict", run, "great", "awful").stdout.splitlines()) == 2


def test_bad_presets_and_options_are_one_clear_error(short_data, keras_hub_preset, huggingface_checkpoint,
                                                     tmp_path):
    def error(*args):
        result = CliRunner().invoke(cli.cli, ["fit", "--model", "pretrained", "--data", str(short_data),
                                              "--out", str(tmp_path / "run"), "--epochs", "1", *map(str, args)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        return result.output

    assert "needs --preset DIR" in error()
    assert "no such directory" in error("--preset", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "no config.json" in error("--preset", tmp_path / "empty")
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text((huggingface_checkpoint / "config.json").read_text())
    message = error("--preset", half)
    assert str(half) in message and "model.safetensors" in message and "vocab.txt or tokenizer.json" in message
    (half / "config.json").write_text('{"hidden_size": 16}')
    assert "neither a KerasHub class" in error("--preset", half)
    assert "above the checkpoint's limit of 64" in error("--preset", keras_hub_preset, "--max-len", "128")
    assert "leave out --embeddings" in error("--preset", keras_hub_preset, "--embeddings",
                                             huggingface_checkpoint / "config.json")
    with pytest.raises(ReviewflowError, match="not WordPiece"):
        bad = tmp_path / "tokenizer.json"
        bad.write_text(json.dumps({"model": {"type": "BPE", "vocab": {}}}))
        pretrained.wordpiece_from_tokenizer_json(bad)
    bad.write_text('{"model": {"type": "WordPiece", "vocab": {"[PAD]": 0,')   # cut short
    with pytest.raises(ReviewflowError, match="not JSON .*tokenizer.json is damaged"):
        pretrained.wordpiece_from_tokenizer_json(bad)
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.mark.slow
def test_a_killed_fine_tuning_resumes_after_its_last_epoch(short_data, keras_hub_preset, tmp_path):
    run = tmp_path / "bert"
    command = [sys.executable, "cli.py", "fit", "--model", "pretrained", "--preset", str(keras_hub_preset),
               "--data", str(short_data), "--out", str(run), "--epochs", "3", "--quiet", *QUICK]
    first = kill_after_first_epoch(command, run, ROOT)
    assert len(first) in (1, 2) and not RunDir(run).is_complete()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = RunDir(run).history()
    assert len(rows) == 3 and rows[: len(first)] == first  # the finished epochs were not trained again


def test_tune_searches_the_warm_up_of_a_fine_tuned_encoder_only():
    import keras_tuner as kt

    from models import tuning

    base = FitSettings(model="pretrained", data=".", out=".", preset=Path("."))
    space = tuning.training_space(kt.HyperParameters(), base, 10_000)
    assert {"learning_rate", "batch_size", "optimizer", "warmup_share"} == set(space)
    assert space["optimizer"] == "adamw" and 3e-6 <= space["learning_rate"] <= 3e-4
    assert "warmup_share" not in tuning.training_space(kt.HyperParameters(), FitSettings(
        model="cnn", data=".", out="."), 10_000)


def test_the_learning_rate_warms_up_then_decays_to_zero():
    from models.zoo.optimizers import WarmupLinearDecay

    schedule = WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=110)
    rates = [float(schedule(step)) for step in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(rates, [0, 5e-4, 1e-3, 5e-4, 0, 0], atol=1e-9)
    assert WarmupLinearDecay.from_config(schedule.get_config()).total_steps == 110


def test_mixed_precision_and_xla_fine_tune_on_cpu(short_data, keras_hub_preset, tmp_path):
    fit(FitSettings(model="pretrained", preset=keras_hub_preset, data=short_data, out=tmp_path / "run", epochs=1,
                    steps_per_epoch=3, validation_steps=1, max_len=32, mixed_precision=True, jit_compile=True),
        verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for the rest of the process
    probabilities = RunDir(tmp_path / "run").load_model().predict(tf.constant(["great", ""]), verbose=0)
    assert probabilities.dtype == np.float32 and np.all(np.isfinite(probabilities))


def test_a_long_review_keeps_its_head_and_tail_word_pieces_and_the_run_keeps_the_cut(
        short_data, keras_hub_preset, tmp_path):
    words = vocabulary(short_data)[len(SPECIAL):]
    texts = tf.constant([" ".join(words[:40]), " ".join(words[:5])])  # a long review and a short one
    head, cut = (pretrained.preset_vectorizer(keras_hub_preset, 16, truncate) for truncate in ("head", "head_tail"))
    tokenizer = head.tokenizer
    pieces = list(tokenizer(texts[:1])[0])
    budget = 16 - 2  # [CLS] and [SEP]
    expected = ([tokenizer.token_to_id("[CLS]")] + pieces[:budget // 4] + pieces[-(budget - budget // 4):]
                + [tokenizer.token_to_id("[SEP]")])
    kept, packed = cut(texts), head(texts)
    assert kept["token_ids"].numpy()[0].tolist() == expected and len(pieces) > budget
    for name in packed:  # a review that fits is packed as the preset's own preprocessor packs it
        np.testing.assert_array_equal(kept[name].numpy()[1], packed[name].numpy()[1])
    assert kept["padding_mask"].numpy()[0].all()

    run = tmp_path / "run"
    fit(FitSettings(model="pretrained", preset=keras_hub_preset, data=short_data, out=run, epochs=1,
                    steps_per_epoch=2, validation_steps=1, max_len=16, truncate="head_tail"), verbose=0)
    assert RunDir(run).config().settings["truncate"] == "head_tail"
    loaded = RunDir(run).load_model().get_layer("vectorizer")
    assert loaded.truncate == "head_tail"
    np.testing.assert_array_equal(loaded(texts)["token_ids"].numpy(), kept["token_ids"].numpy())


def test_n_classes_end_in_a_softmax_over_the_encoder(keras_hub_preset):
    from models import zoo

    model = zoo.build("pretrained", 0, 16, preset=str(keras_hub_preset), num_classes=3)
    inputs = pretrained.preset_vectorizer(keras_hub_preset, 16)(tf.constant(["great", "awful", ""]))
    probabilities = model.predict(inputs, verbose=0)
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_the_chosen_length_is_counted_in_the_checkpoints_word_pieces(short_data, keras_hub_preset):
    from models import training
    from pipeline.data_dir import DataDir
    from pipeline.dataset import make_text_dataset

    data = DataDir.open(short_data)
    settings = FitSettings(model="pretrained", data=short_data, out=".", preset=keras_hub_preset)
    facts = training.data_facts(settings, data)
    tokenizer = pretrained.load_tokenizer(keras_hub_preset)
    texts = [text for batch, _ in make_text_dataset(data, "train", 512) for text in batch.numpy()]
    expected: dict[int, int] = {}
    for text in texts:  # [CLS] + pieces + [SEP], counted here one review at a time
        length = len(tokenizer(text.decode())) + pretrained.PACKED_SPECIAL_TOKENS
        expected[length] = expected.get(length, 0) + 1
    assert facts.lengths == expected and facts.length_unit == "word pieces"
    assert facts.lengths != data.split("train").lengths()   # words are not word pieces
    plan = training.make_plan(settings, data, facts=facts)
    assert plan.max_len.source == "data" and "word pieces" in plan.max_len.reason
    assert plan.vocab.source == "preset" and plan.optimizer.value == "adamw"


def test_word_pieces_are_merged_back_into_the_words_of_the_review():
    from models.explain import PieceWords

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=SPECIAL + ["great", "movie", "##s", "love"], lowercase=True)
    vectorizer = pretrained.PresetPreprocessor(
        keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=12), 12)
    review = "Great movies, love!"
    inputs = vectorizer(tf.constant([review]))
    words = PieceWords(vectorizer).weigh(review, inputs, np.arange(12.0))  # position i weighs i ([CLS] is 0)
    assert [(word.text, word.start, word.end) for word in words] == [
        ("Great", 0, 5), ("movies", 6, 12), (",", 12, 13), ("love", 14, 18), ("!", 18, 19)]
    assert [word.weight for word in words] == [1.0, 2.0 + 3.0, 4.0, 5.0, 6.0]  # "movie" + "##s"
    baseline = PieceWords(vectorizer).baseline_ids(inputs["token_ids"]).numpy()[0]
    ids = inputs["token_ids"].numpy()[0]
    assert baseline[0] == ids[0] and baseline[7] == ids[7]  # [CLS] and [SEP] stay; the words become padding
    assert set(baseline[1:7].tolist()) == {tokenizer.pad_token_id}
