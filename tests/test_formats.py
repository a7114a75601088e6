import bz2
import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.formats import FORMATS, READERS, FormatSettings, detect_format, format_of, label_name, open_records
from pipeline.errors import SourceError
from pipeline.rejects import Reject


def read(path, **settings):
    reader = open_records(path, FormatSettings(**settings))
    records = list(reader)
    assert reader.records_read == len(records)
    return [record.parsed for record in records]


def test_format_comes_from_the_name():
    assert detect_format("a/train.csv.bz2") == "csv"
    assert detect_format("x.TSV") == "tsv"
    assert detect_format("x.jsonl.gz") == "jsonl"
    assert detect_format("x.parquet") == "parquet"
    assert detect_format("train.ft.txt.bz2") == "fasttext"


def test_csv_with_hostile_rows(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        b"id,review,sentiment\n"
        b"1,\"Great, really great\",positive\n"      # a quoted comma
        b"2,\"two\nlines\",negative\n"                # a quoted newline
        b"3,awful,\n"                                 # an empty label
        b"4,  ,positive\n"                            # an empty text
        b"5,bad \xff bytes,negative\n"                # invalid UTF-8
        b"6,too,many,fields\n"                        # an unquoted comma
        b"7,\"bad\"quote,positive\n"                  # a stray quote
        b"8,fine,positive\n")
    parsed = read(path)
    assert parsed == [("positive", b"Great, really great"), ("negative", b"two\nlines"), Reject.BAD_LABEL,
                      Reject.EMPTY_TEXT, Reject.INVALID_UTF8, Reject.BAD_ROW, Reject.BAD_QUOTE,
                      ("positive", b"fine")]


def test_tsv_and_bz2(tmp_path):
    path = tmp_path / "reviews.tsv.bz2"
    path.write_bytes(bz2.compress(b"text\tlabel\nnice one\t5\nshort\n\tnope\t1\n"))
    assert read(path) == [("5", b"nice one"), Reject.BAD_ROW, Reject.BAD_ROW]


def test_jsonl_with_hostile_lines(tmp_path):
    path = tmp_path / "reviews.jsonl"
    lines = [json.dumps({"text": "good", "label": 2}), "{not json", json.dumps(["a", "list"]),
             json.dumps({"text": "no label"}), json.dumps({"text": 5, "label": 1}),
             json.dumps({"text": "x" * 100, "label": 1}), "", json.dumps({"text": "ok", "label": 4.0})]
    path.write_text("\n".join(lines) + "\n")
    assert read(path, max_record_bytes=64) == [
        ("2", b"good"), Reject.BAD_ROW, Reject.BAD_ROW, Reject.MISSING_FIELD, Reject.BAD_ROW,
        Reject.RECORD_TOO_LONG, Reject.BAD_ROW, ("4", b"ok")]


def test_parquet_by_batches_with_nulls(tmp_path):
    path = tmp_path / "reviews.parquet"
    table = pa.table({"content": ["good", None, "bad", ""], "stars": [5, 1, None, 3]})
    pq.write_table(table, path, row_group_size=2)
    assert read(path) == [("5", b"good"), Reject.MISSING_FIELD, Reject.MISSING_FIELD, Reject.EMPTY_TEXT]


def test_a_folder_corpus_is_a_review_per_file_its_class_the_top_folder(tmp_path):
    """aclImdb's layout: every file is one record, written or rejected with its reason; a reject names its file."""
    import os

    root = tmp_path / "train"
    for relative, content in [("pos/1_9.txt", b"great <br />fun"), ("pos/deeper/2_8.txt", b"fine"),
                              ("neg/3_1.txt", b"awful"), ("neg/4_2.txt", b"\xff\xfe"), ("neg/5_1.txt", b"  \n"),
                              ("neg/6_1.txt", b"x" * 65), ("urls_pos.txt", b"http://a")]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    os.mkfifo(root / "neg" / "7_pipe")   # opened, it would block the run forever
    (root / "neg" / "8_loop").symlink_to(root)   # followed, it would never end
    reader = open_records(root, FormatSettings(max_record_bytes=64))
    records = list(reader)
    assert reader.records_read == 9 and reader.fields == ("file", "folder")
    by_file = {record.raw: record.parsed for record in records}
    assert by_file == {b"neg/3_1.txt": ("neg", b"awful"), b"neg/4_2.txt": Reject.INVALID_UTF8,
                       b"neg/5_1.txt": Reject.EMPTY_TEXT, b"neg/6_1.txt": Reject.RECORD_TOO_LONG,
                       b"neg/7_pipe": Reject.BAD_ROW, b"neg/8_loop": Reject.BAD_ROW,
                       b"pos/1_9.txt": ("pos", b"great <br />fun"),
                       b"pos/deeper/2_8.txt": ("pos", b"fine"), b"urls_pos.txt": Reject.NO_LABEL}
    assert [record.raw for record in records] == sorted(by_file)   # one order on every run
    for_predict = {record.raw: record.parsed for record in open_records(root, need_label=False)}
    assert for_predict[b"urls_pos.txt"] == (None, b"http://a") and for_predict[b"neg/3_1.txt"] == (None, b"awful")
    with pytest.raises(SourceError, match="--format folders reads a directory"):
        read(root / "urls_pos.txt", format="folders")
    with pytest.raises(SourceError, match="a directory, which only --format folders reads"):
        read(root, format="csv")


def test_fields_are_named_or_found(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("body,verdict\nnice,yes\n")
    with pytest.raises(SourceError, match="--label-field"):
        read(path)
    assert read(path, label_field="verdict") == [("yes", b"nice")]
    with pytest.raises(SourceError, match="no text field 'review'"):
        read(path, text_field="review", label_field="verdict")


def test_prediction_needs_no_label(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("text\nfirst\nsecond\n")
    assert [record.parsed for record in open_records(path, need_label=False)] == [(None, b"first"),
                                                                                    (None, b"second")]


def test_label_values():
    assert label_name(4) == "4" and label_name(4.0) == "4" and label_name(" pos ") == "pos"
    assert label_name(None) == Reject.BAD_LABEL and label_name("") == Reject.BAD_LABEL


def write_fasttext(path, rows):
    path.write_text("".join(f"__label__{label} {text}\n" for label, text in rows))


def write_delimited(delimiter):
    def write(path, rows):
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, delimiter=delimiter)
            writer.writerow(["text", "label"])
            writer.writerows((text, label) for label, text in rows)
    return write


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n" for label, text in rows))


def write_parquet(path, rows):
    pq.write_table(pa.table({"text": [text for _, text in rows], "label": [label for label, _ in rows]}), path)


def write_folders(path, rows):
    for number, (label, text) in enumerate(rows):
        (path / label).mkdir(parents=True, exist_ok=True)
        (path / label / f"{number}.txt").write_text(text)


# One writer per registered format: a format added to the registry without one here fails the test below.
WRITERS = {"fasttext": (".ft.txt", write_fasttext), "csv": (".csv", write_delimited(",")),
           "tsv": (".tsv", write_delimited("\t")), "jsonl": (".jsonl", write_jsonl),
           "parquet": (".parquet", write_parquet), "folders": ("", write_folders)}


def test_every_registered_format_has_a_test_writer_and_is_known_by_its_name(tmp_path):
    assert set(WRITERS) == set(FORMATS)
    for name, (suffix, write) in WRITERS.items():
        path = tmp_path / f"reviews{suffix}"
        write(path, [("2", "fine")])
        assert format_of(path, FormatSettings()) == name and READERS[name].help


@pytest.mark.parametrize("name", FORMATS)
def test_shard_and_predict_read_each_format_through_the_same_reader(name, tmp_path):
    suffix, write = WRITERS[name]
    # In the order a folder corpus is read: by class folder, then file name.
    rows = [("1", "broke at once, a waste"), ("2", "great value"), ("2", "café über naïve")]
    path = tmp_path / f"reviews{suffix}"
    write(path, rows)
    for_shard = [record.parsed for record in open_records(path)]
    for_predict = [record.parsed for record in open_records(path, need_label=False)]
    assert for_shard == [(label, text.encode()) for label, text in rows]
    assert for_predict == [(None, text.encode()) for _, text in rows]
