import bz2
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.corpus_formats import FormatSettings, RecordReader, detect_format, label_name
from pipeline.errors import SourceError
from pipeline.rejects import Reject


def read(path, **settings):
    reader = RecordReader(path, FormatSettings(**settings))
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
    assert [record.parsed for record in RecordReader(path, need_label=False)] == [(None, b"first"),
                                                                                    (None, b"second")]


def test_label_values():
    assert label_name(4) == "4" and label_name(4.0) == "4" and label_name(" pos ") == "pos"
    assert label_name(None) == Reject.BAD_LABEL and label_name("") == Reject.BAD_LABEL
