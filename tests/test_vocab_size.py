"""fit without --vocab-size: each model takes its share of the shard's vocabulary (the most frequent words)."""

import pytest
from click.testing import CliRunner

import cli
from models import vocab_size, zoo
from models.run_dir import RunDir
from models.training import FitSettings, make_plan
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from conftest import easy_data


def test_choice_takes_the_models_share_within_the_shards_vocabulary():
    assert vocab_size.choose(None, None, 32768).vocab_size == 32768        # a bag model: all of it
    assert vocab_size.choose(None, 8192, 32768).vocab_size == 8192         # a sequence model: its default
    assert vocab_size.choose(None, 8192, 500).vocab_size == 500            # never more than the shard has
    given = vocab_size.choose(100, None, 500)
    assert (given.vocab_size, given.source) == (100, "option")
    with pytest.raises(ReviewflowError, match="--vocab-size 600: the data directory's vocabulary has 500 ids"):
        vocab_size.choose(600, 8192, 500)


def test_bag_models_take_the_whole_vocabulary_and_the_others_the_default():
    assert zoo.spec("linear").vocab_size is None and zoo.spec("ngram_bag").vocab_size is None
    assert zoo.spec("cnn").vocab_size == zoo.spec("lstm").vocab_size == zoo.EMBEDDING_VOCAB_SIZE
    assert make_plan(FitSettings(model="cnn", data=".", out=".")).vocab.vocab_size == zoo.EMBEDDING_VOCAB_SIZE
    assert make_plan(FitSettings(model="linear", data=".", out=".")).vocab.vocab_size is None  # known with data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return easy_data(tmp_path_factory.mktemp("data"), 200, 12, test_lines=20, num_shards=1, vocab_size=300)


def fit_cli(data, out, *options):
    result = CliRunner().invoke(cli.cli, ["fit", "--data", str(data), "--out", str(out), "--epochs", "1",
                                          "--steps-per-epoch", "2", "--validation-steps", "1", *options])
    return result


def test_fit_takes_the_most_frequent_ids_records_them_and_the_model_knows_only_those(data, tmp_path):
    import keras

    result = fit_cli(data, tmp_path / "small", "--model", "cnn", "--vocab-size", "40")
    assert result.exit_code == 0, result.output
    assert "vocabulary: 40 ids (option: --vocab-size)" in result.output
    run = RunDir(tmp_path / "small")
    assert run.config().vocab_size == 40 and run.config().settings["vocab_size"] == 40
    model = keras.models.load_model(run / "model.keras")
    vectorizer = next(layer for layer in model.layers if isinstance(layer, keras.layers.TextVectorization))
    assert vectorizer.get_vocabulary()[2:] == DataDir.open(data).vocabulary()[:38]  # the 38 most frequent words
    assert model.get_layer("cnn").get_layer("embedding").input_dim == 40

    result = fit_cli(data, tmp_path / "whole", "--model", "linear")
    assert result.exit_code == 0, result.output
    whole = DataDir.open(data).manifest.vocabulary.size
    assert RunDir(tmp_path / "whole").config().vocab_size == whole
    assert f"vocabulary: {whole} ids (model: all of the shard's vocabulary)" in result.output


def test_a_vocab_size_above_the_shards_is_one_clear_error(data, tmp_path):
    result = fit_cli(data, tmp_path / "r", "--model", "ffn", "--vocab-size", "100000")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--vocab-size 100000: the data directory's vocabulary has" in result.output
    assert not (tmp_path / "r" / "model.keras").exists()
