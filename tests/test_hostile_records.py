"""One hostile record is one reject with its reason, in every format; what is kept of it is bounded."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import synthetic
from pipeline.formats import parquet as parquet_format
from pipeline.formats import FormatSettings, open_records
from pipeline.errors import ReviewflowError
from pipeline.labels import MAX_LABEL_BYTES, ClassTable
from pipeline.manifest import read_manifest
from pipeline.rejects import RAW_BYTES_KEPT, Reject
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings, class_warnings
from pipeline.vocab import TokenCounter

GOOD = [("1", "awful product broke"), ("2", "great product love it")] * 10


def reasons(path, max_bytes=1 << 20, **settings):
    reader = open_records(path, FormatSettings(max_record_bytes=max_bytes, **settings))
    return [record.parsed if isinstance(record.parsed, Reject) else "ok" for record in reader]


def test_json_nested_thousands_deep_is_one_reject(tmp_path):
    path = tmp_path / "reviews.jsonl"
    deep = "[" * 50_000 + "]" * 50_000
    lines = [json.dumps({"label": "1", "text": "fine review"}), '{"label": "2", "text": ' + deep + "}",
             deep, json.dumps({"label": "2", "text": "after it"})]
    path.write_text("\n".join(lines) + "\n")
    assert reasons(path) == ["ok", Reject.TOO_DEEP, Reject.TOO_DEEP, "ok"]


def test_a_csv_row_too_wide_is_one_reject_and_the_next_rows_read(tmp_path):
    path = tmp_path / "reviews.csv"
    wide = ",".join(["x" * 1000] * 400)  # 400 fields of 1 kB: each under the field limit, the row over it
    quoted = '2,"a review over\ntwo lines"'
    path.write_text("label,text\n1,fine review\n" + wide + "\n" + quoted + "\n1,last one\n")
    assert reasons(path, max_bytes=64 << 10) == ["ok", Reject.RECORD_TOO_LONG, "ok", "ok"]
    records = list(open_records(path, FormatSettings(max_record_bytes=64 << 10)))
    too_long = records[1].raw
    assert too_long.num_bytes == len(wide) + 1 and len(too_long.prefix) <= 64 << 10
    assert [record.number for record in records] == [2, 3, 5, 6]  # where each record ends


def test_a_long_multi_line_quoted_record_is_cut_at_the_limit_and_reading_goes_on(tmp_path):
    path = tmp_path / "reviews.csv"
    many_lines = '1,"' + "line of a long review\n" * 5000 + '"'
    path.write_text("label,text\n" + many_lines + "\n2,good one\n1,bad one\n")
    got = reasons(path, max_bytes=16 << 10)
    # Cut inside its quotes, the record's later lines cannot be told from rows: each is a reject of its own
    # (as after a quote never closed), none is written as a review, and the reader goes on to the end.
    assert got[0] == Reject.RECORD_TOO_LONG and "ok" not in got[1:-2]
    assert set(got[1:]) <= {Reject.BAD_ROW, Reject.BAD_QUOTE, Reject.RECORD_TOO_LONG, "ok"}


def test_parquet_rows_over_the_limit_are_rejected_from_arrows_lengths(tmp_path):
    path = tmp_path / "reviews.parquet"
    texts = ["short good review", "y" * 300_000, "short bad review", None]
    pq.write_table(pa.table({"text": texts, "label": ["2", "1", "1", "2"]}), path, compression="zstd")
    assert path.stat().st_size < 20_000  # compresses to little: the size check cannot be the file's
    records = list(open_records(path, FormatSettings(max_record_bytes=64 << 10)))
    assert [r.parsed if isinstance(r.parsed, Reject) else "ok" for r in records] == \
        ["ok", Reject.RECORD_TOO_LONG, "ok", Reject.MISSING_FIELD]
    assert records[1].raw.num_bytes == 300_001 and len(records[1].raw.prefix) == RAW_BYTES_KEPT


def test_rejects_keep_a_bounded_copy_and_the_first_n_only(tmp_path):
    train = tmp_path / "train.ft.txt"
    lines = synthetic.generate_lines(400, seed=1)
    hostile = [b"no label here " + b"w" * 100_000] + [b"junk line %d" % i for i in range(20)]
    train.write_bytes(b"".join(lines) + b"\n".join(hostile) + b"\n")
    test = synthetic.write_corpus(tmp_path / "test.ft.txt", 50, seed=2)
    out = tmp_path / "data"
    manifest = shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=1, vocab_size=300,
                                          max_rejects_kept=5))
    kept = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(kept) == 5 and manifest.rejects_kept == 5 and manifest.num_rejected == 21
    assert manifest.sources[0].rejected == {"no_label": 21}  # every one counted
    first = kept[0]
    assert first["truncated"] and first["num_bytes"] == len(hostile[0]) and len(first["raw"]) == RAW_BYTES_KEPT
    assert read_manifest(out).rejects_kept == 5


def test_the_label_budget_counts_names_and_entries_and_refuses_long_labels():
    table = ClassTable(min_examples=10, budget_bytes=64 << 10)
    assert table.admit("x" * (MAX_LABEL_BYTES + 1), "item", 10) is None
    admitted = [table.admit(f"label-{i}", "item", 10) for i in range(10_000)]  # every one distinct, held
    assert table.pending_bytes <= 64 << 10 and len(table.pending) < 300
    assert admitted.count(None) > 9_000 and len(table.counts) == len(table.pending)


def test_token_counts_stay_within_their_bound_and_keep_the_frequent_ones_exact():
    counter = TokenCounter(max_distinct=1000)
    frequent = [b"good great " * 5 + b"awful"] * 50
    for batch in range(20):
        unique = [b" ".join(b"u%dx%d" % (batch, i) for i in range(j * 40, j * 40 + 40)) for j in range(10)]
        counter.add(frequent + unique)
    counter.close()
    assert len(counter.counts) <= 1000 and counter.count_error >= 1
    top = dict(counter.most_common(3))
    assert top["good"] == top["great"] == 20 * 50 * 5 and top["awful"] == 20 * 50
    assert counter.num_tokens == 20 * (50 * 11 + 400) and counter.num_distinct >= 1000


def test_unpruned_counts_are_exact():
    counter = TokenCounter(max_distinct=1000)
    counter.add([b"a b b c c c"])
    counter.close()
    assert counter.count_error == 0 and counter.most_common(10) == [("c", 3), ("b", 2), ("a", 1)]


def polarity_lines(extra: list[bytes], num_lines: int = 2000) -> bytes:
    return b"".join(synthetic.generate_lines(num_lines, seed=3)) + b"".join(extra)


def test_a_class_with_no_training_example_is_refused(tmp_path):
    train = tmp_path / "train.ft.txt"
    train.write_bytes(polarity_lines([b"__label__x the same corrupt line\n"] * 60))  # one text: one split
    test = synthetic.write_corpus(tmp_path / "test.ft.txt", 50, seed=2)
    for seed in range(20):  # a seed whose split puts that one text in validation
        settings = ShardSettings(train=train, test=test, out=tmp_path / f"data-{seed}", num_shards=1, seed=seed,
                                 vocab_size=300)
        try:
            manifest = shard_corpus(settings)
        except ReviewflowError as error:
            assert "'x' have no example in the train split" in str(error) and "--classes 1,2" in str(error)
            assert not (tmp_path / f"data-{seed}" / "manifest.json").exists()
            break
        assert manifest.splits["train"].label_counts["2"]  # that seed put it in train: a class, and trained
    else:
        pytest.fail("no seed put the repeated line in validation")


def test_a_rare_class_is_kept_with_a_warning_naming_the_fix(tmp_path):
    train = tmp_path / "train.ft.txt"
    # 15 stray lines, ~12 of them in train: a class (10 or more), but under 1% of ~1,600 a class
    train.write_bytes(polarity_lines([b"__label__3 stray review number %d\n" % i for i in range(15)], 4000))
    test = synthetic.write_corpus(tmp_path / "test.ft.txt", 50, seed=2)
    manifest = shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "data", num_shards=1,
                                          vocab_size=300))
    assert manifest.class_info().names == ["1", "2", "3"]
    warnings = class_warnings(manifest)
    assert len(warnings) == 1 and "class '3'" in warnings[0] and "--classes 1,2" in warnings[0]


def test_a_classes_name_absent_from_training_is_an_error(tmp_path):
    train = tmp_path / "train.ft.txt"
    train.write_bytes(polarity_lines([]))
    test = synthetic.write_corpus(tmp_path / "test.ft.txt", 50, seed=2)
    with pytest.raises(ReviewflowError, match="--classes names '3', which the training file never has"):
        shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "data", classes=("1", "2", "3")))
    assert not (tmp_path / "data" / "manifest.json").exists()


def test_parquet_batches_hold_a_bounded_share_of_decompressed_rows(tmp_path):
    path = tmp_path / "big-rows.parquet"
    distinct = [("z" * 100_000) + str(i) for i in range(200)]  # compress to little, decompress to 20 MB
    pq.write_table(pa.table({"text": distinct, "label": ["1"] * 200}), path, compression="zstd")
    group = pq.ParquetFile(path).metadata.row_group(0)
    assert parquet_format.parquet_batch_rows(group) <= parquet_format.PARQUET_BATCH_BYTES // 100_000
    same = tmp_path / "one-text.parquet"  # 200 copies of one text: dictionary-encoded, read as stored
    pq.write_table(pa.table({"text": ["z" * 100_000] * 200, "label": ["1"] * 200}), same, compression="zstd")
    records = list(open_records(same, FormatSettings()))
    assert len(records) == 200 and all(isinstance(record.parsed, tuple) for record in records)


def test_a_parquet_decompression_bomb_is_rejected_unread(tmp_path):
    path = tmp_path / "bomb.parquet"
    clean = pa.table({"text": ["a fine review", "an awful one"] * 50, "label": ["2", "1"] * 50})
    bomb = pa.table({"text": ["a" * (4 << 20) + str(i) for i in range(20)], "label": ["1"] * 20})  # 80 MB
    with pq.ParquetWriter(path, clean.schema, compression="zstd") as writer:
        writer.write_table(clean)
        writer.write_table(bomb)
    assert path.stat().st_size < 100_000
    got = reasons(path)
    assert got == ["ok"] * 100 + [Reject.TOO_COMPRESSED] * 20
