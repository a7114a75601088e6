import collections
from pathlib import Path

import numpy as np
import tensorflow as tf
from click.testing import CliRunner

import cli
from models import run_plan
from pipeline import stats, synthetic, text, vocab
from pipeline.data_dir import DataDir
from pipeline.fasttext_format import parse_line
from pipeline.formats import FormatSettings
from pipeline.labels import MIN_CLASS_EXAMPLES
from pipeline.manifest import read_manifest
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings


def test_length_shares_agree_with_a_direct_count(tmp_path):
    path = synthetic.write_corpus(tmp_path / "c.ft.txt", 600, seed=4, bad_fraction=0.02)
    parsed = [p for p in map(parse_line, path.read_bytes().split(b"\n")[:-1]) if isinstance(p, tuple)]
    lines_of = collections.Counter(label for label, _ in parsed)
    kept = [(label, t) for label, t in parsed if lines_of[label] >= MIN_CLASS_EXAMPLES]  # shard's class rule
    assert 0 < len(kept) < len(parsed)
    # Direct count: the same standardization, one review at a time.
    lengths = [len(text.tokenize(tf.constant([t]))[0]) for _, t in kept]
    result = stats.corpus_stats(path).splits[path.name]
    assert result.num_examples == len(kept)
    assert sum(result.rejected.values()) == path.read_bytes().count(b"\n") - len(kept)   # each counted
    assert result.label_counts == collections.Counter(label for label, _ in kept)
    for m in (100, 150, 300):
        assert result.share_at_most(m) == sum(n <= m for n in lengths) / len(lengths)
    assert result.percentile(50) == int(np.percentile(lengths, 50, method="inverted_cdf"))
    assert result.percentile(90) == int(np.percentile(lengths, 90, method="inverted_cdf"))
    whole = stats.corpus_stats(path)
    assert 0.5 < whole.coverage <= 1.0 and whole.vocab_size <= text.SHARD_VOCAB_SIZE


def test_a_raw_files_stats_count_what_shard_writes_from_it(tmp_path):
    """A stray label (on fewer than 10 lines: `2Okwaumro`, `43028`) was listed as a class and its lines counted
    as reviews, where shard rejects them (bad_label); stats now previews the shard exactly."""
    train = synthetic.write_corpus(tmp_path / "train.ft.txt", 1500, seed=4, bad_fraction=0.03)
    test = synthetic.write_corpus(tmp_path / "test.ft.txt", 50, seed=5)
    shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "data", num_shards=1, vocab_size=2000))
    data = DataDir.open(tmp_path / "data")
    source = next(source for source in data.manifest.sources if Path(source.path).name == train.name)
    written = [stats.from_manifest(data.manifest.splits[split], data.classes) for split in ("train", "validation")]
    result = stats.corpus_stats(train).splits[train.name]
    assert dict(result.rejected) == source.rejected and source.rejected["bad_label"] > 0
    assert result.num_examples == source.written == sum(split.num_examples for split in written)
    assert result.label_counts == written[0].label_counts + written[1].label_counts
    assert result.lengths == written[0].lengths + written[1].lengths


def test_stats_of_a_data_directory(data_dir, tmp_path):
    result = CliRunner().invoke(cli.cli, ["stats", str(data_dir), "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(data_dir)
    assert f"train: {manifest.splits['train'].num_examples:,} reviews" in result.output
    assert "at most 950 tokens" in result.output
    # The advice is the choice fit makes from the train split, for each group of models that choose alike.
    for names, choice in run_plan.max_len_advice(manifest.splits["train"].lengths()):
        assert f"fit's --max-len for {', '.join(names)}: {choice.max_len} (" in result.output
    assert (tmp_path / "h.png").stat().st_size > 0


def test_the_manifests_length_table_equals_a_pass_over_the_shards(data_dir):
    recorded = stats.corpus_stats(data_dir)               # from manifest.json: no pass over the data
    counted = stats.corpus_stats(data_dir, read_shards=True)
    manifest = read_manifest(data_dir)
    for split in ("train", "validation", "test"):
        assert manifest.splits[split].length_counts  # shard recorded every split's histogram
        assert recorded.splits[split].lengths == counted.splits[split].lengths
        assert recorded.splits[split].label_counts == counted.splits[split].label_counts
        assert recorded.splits[split].num_examples == counted.splits[split].num_examples
    assert stats.summary_lines(recorded) == stats.summary_lines(counted)


def test_a_file_with_no_readable_review_is_named_not_a_traceback(tmp_path):
    empty, rejected = tmp_path / "empty.ft.txt", tmp_path / "rejected.ft.txt"
    empty.write_bytes(b"")
    rejected.write_bytes(b"__label__1\nno label here\n__label__2   \n")
    for path, said in [(empty, "it is empty"), (rejected, "every record was rejected (empty_text 2, no_label 1)")]:
        result = CliRunner().invoke(cli.cli, ["stats", str(path)])
        assert result.exit_code == 1 and f"{path}: no review to describe: {said}" in result.output, result.output
    partly = tmp_path / "partly.ft.txt"
    partly.write_bytes(b"__label__1 fine words\n__label__2\n")
    result = CliRunner().invoke(cli.cli, ["stats", str(partly)])
    assert result.exit_code == 0 and "not counted (shard would reject them): empty_text 1" in result.output


def test_a_files_reviews_are_counted_in_batches_of_bounded_text(tmp_path, monkeypatch):
    """Batches of 4096 reviews only: 600 lines of 1 MiB took `stats` to 14.4 GB (tokenizing takes ~10x a batch's
    text). They now also end at COUNT_BATCH_BYTES (scaled down here), and count the same."""
    path = tmp_path / "long.ft.txt"
    path.write_text("".join(f"__label__{1 + index % 2} " + "great plot " * 20 + "\n" for index in range(10)))
    whole = stats.corpus_stats(path)
    monkeypatch.setattr(vocab, "COUNT_BATCH_BYTES", 500)   # each review ~220 bytes: batches of 3, then 1
    counter = vocab.TokenCounter()
    sizes = [len(labels) for _, labels in stats._batches_from_file(path, counter, collections.Counter(),
                                                                      FormatSettings(), stats.ClassRule())]
    counter.close()
    assert sizes == [3, 3, 3, 1]
    cut = stats.corpus_stats(path)
    assert stats.summary_lines(cut) == stats.summary_lines(whole)


def test_a_raw_file_with_other_field_names_is_read_with_the_options_its_error_names(tmp_path, data_dir):
    """`stats FILE` said "Name it with --text-field", an option it did not have; it takes shard's three now."""
    path = tmp_path / "odd.csv"
    path.write_text("blurb,verdict\n" + "".join(f'"good stuff {i}",pos\n"bad stuff {i} at all",neg\n'
                                                for i in range(15)))
    unnamed = CliRunner().invoke(cli.cli, ["stats", str(path)])
    assert unnamed.exit_code == 1 and "--text-field" in unnamed.output
    named = CliRunner().invoke(cli.cli, ["stats", str(path), "--text-field", "blurb", "--label-field", "verdict"])
    assert named.exit_code == 0, named.output
    assert "odd.csv: 30 reviews, neg 15 (50.0%), pos 15 (50.0%)" in named.output
    as_tsv = CliRunner().invoke(cli.cli, ["stats", str(path), "--format", "tsv"])  # read as one column
    assert as_tsv.exit_code == 1 and "['blurb,verdict']" in as_tsv.output
    on_a_directory = CliRunner().invoke(cli.cli, ["stats", str(data_dir), "--format", "csv"])
    assert on_a_directory.exit_code == 2 and "for a raw file" in on_a_directory.output
    # shard's class rule too: --classes keeps those (others are bad_label), --min-class-examples lowers the bar.
    kept = CliRunner().invoke(cli.cli, ["stats", str(path), "--text-field", "blurb", "--label-field", "verdict",
                                        "--classes", "pos,other"])
    assert kept.exit_code == 0 and "odd.csv: 15 reviews, pos 15 (100.0%)" in kept.output, kept.output
    few = tmp_path / "few.csv"
    few.write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(3)))
    assert "every record was rejected (bad_label 6)" in CliRunner().invoke(cli.cli, ["stats", str(few)]).output
    lowered = CliRunner().invoke(cli.cli, ["stats", str(few), "--min-class-examples", "3"])
    assert lowered.exit_code == 0 and "few.csv: 6 reviews, neg 3 (50.0%), pos 3 (50.0%)" in lowered.output
    one_class = CliRunner().invoke(cli.cli, ["stats", str(few), "--classes", "pos"])
    assert one_class.exit_code == 1 and "give two or more" in one_class.output
