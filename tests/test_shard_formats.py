"""`shard` on the corpora people hold: N classes in fastText files, CSV, TSV, JSON lines and Parquet sources.

Every record is written or rejected with its reason, and each command reads what `shard` wrote in a new
process where it matters; binary fastText behaviour is tests/test_shard_corpus.py's.
"""

import bz2
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import cli
from pipeline.data_dir import DataDir
from pipeline.dataset import make_text_dataset
from pipeline.manifest import read_manifest

WORDS = {"1": "awful broken waste", "2": "poor weak dull", "3": "fine okay plain", "4": "good nice solid",
         "5": "superb wonderful love"}


def star_lines(count: int, offset: int = 0) -> list[str]:
    return [f"__label__{1 + (i % 5)} review {i + offset} {WORDS[str(1 + i % 5)]}" for i in range(count)]


def shard(*args: str):
    result = CliRunner().invoke(cli.cli, ["shard", *map(str, args)])
    return result


def accounted(manifest) -> None:
    for source in manifest.sources:
        assert source.lines_read == source.written + sum(source.rejected.values()), source


def rejects_of(out):
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


def test_star_ratings_become_five_classes_and_strays_are_rejected(tmp_path):
    train, test = tmp_path / "train.ft.txt.bz2", tmp_path / "test.ft.txt"
    train.write_bytes(bz2.compress(("\n".join(star_lines(200) + ["__label__2x glued junk", "__label__9 stray"])
                                    + "\n").encode()))
    test.write_text("\n".join(star_lines(50, 1000) + ["__label__7 unseen in training"]) + "\n")
    out = tmp_path / "data"
    result = shard("--train", train, "--test", test, "--out", out, "--num-shards", "2")
    assert result.exit_code == 0, result.output
    assert "classes: 5: 1, 2, 3, 4, 5" in result.output
    manifest = read_manifest(out)
    accounted(manifest)
    assert manifest.classes.names == ["1", "2", "3", "4", "5"] and manifest.classes.positive is None
    assert manifest.sources[0].rejected == {"bad_label": 2} and manifest.sources[1].rejected == {"unknown_label": 1}
    assert {r["raw"] for r in rejects_of(out)} == {"__label__2x glued junk", "__label__9 stray",
                                                    "__label__7 unseen in training"}
    assert manifest.splits["test"].label_counts == {str(i): 10 for i in range(5)}
    counts = {}
    for texts, labels in make_text_dataset(DataDir.open(out), "test", 16):
        assert labels.dtype.name == "int32" and labels.shape.rank == 1  # class ids for a softmax
        for text, label in zip(texts.numpy(), labels.numpy()):
            assert WORDS[str(label + 1)] in text.decode()  # record ids became class ids in the right order
            counts[int(label)] = counts.get(int(label), 0) + 1
    assert counts == {i: 10 for i in range(5)}


def test_named_binary_labels_put_the_positive_class_second(tmp_path):
    lines = [f"__label__{'pos' if i % 2 else 'neg'} review {i} {'great' if i % 2 else 'bad'}" for i in range(60)]
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("\n".join(lines) + "\n")
    test.write_text("\n".join(lines[:10]) + "\n")
    out = tmp_path / "data"
    assert shard("--train", train, "--test", test, "--out", out).exit_code == 0
    classes = read_manifest(out).classes
    assert classes.names == ["neg", "pos"] and classes.positive == "pos"
    for texts, labels in make_text_dataset(DataDir.open(out), "test", 10):
        assert labels.shape.as_list() == [10, 1]  # two classes: P(positive)'s float target, as always
        assert [b"great" in t for t in texts.numpy()] == [bool(x) for x in labels.numpy().reshape(-1)]
    out2 = tmp_path / "flipped"
    assert shard("--train", train, "--test", test, "--out", out2, "--positive-class", "neg").exit_code == 0
    assert read_manifest(out2).classes.names == ["pos", "neg"]
    bad = shard("--train", train, "--test", test, "--out", tmp_path / "x", "--positive-class", "meh")
    assert bad.exit_code == 1 and "--positive-class 'meh' is not one of" in bad.output


def test_csv_tsv_jsonl_and_parquet_sources_account_for_every_record(tmp_path):
    good = [(f"review {i} {'great' if i % 2 else 'bad'}", "positive" if i % 2 else "negative") for i in range(40)]
    csv_path = tmp_path / "train.csv"
    csv_path.write_bytes(("review,sentiment\n" + "".join(f'"{t}",{l}\n' for t, l in good)).encode()
                         + b"only one field\n" + b",negative\n" + b"bad \xff,positive\n"
                         + b'x,"unterminated,negative\n')  # last: an open quote swallows what follows
    tsv_path = tmp_path / "test.tsv"
    tsv_path.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in good[:10]) + "neutral one\tneutral\n")
    out = tmp_path / "csv_data"
    result = shard("--train", csv_path, "--test", tsv_path, "--out", out)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    accounted(manifest)
    train_source, test_source = manifest.sources
    assert (train_source.format, train_source.fields) == ("csv", ["review", "sentiment"])
    assert train_source.written == 40 and train_source.lines_read == 40 + sum(train_source.rejected.values())
    assert train_source.rejected == {"bad_row": 1, "empty_text": 1, "invalid_utf8": 1, "bad_quote": 1}
    assert test_source.rejected == {"unknown_label": 1} and manifest.classes.names == ["negative", "positive"]

    jsonl_path = tmp_path / "train.jsonl.gz"
    import gzip
    jsonl_path.write_bytes(gzip.compress(("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in good)
                                          + '{"text": "no label"}\n{broken\n').encode()))
    parquet_path = tmp_path / "test.parquet"
    pq.write_table(pa.table({"content": [t for t, _ in good[:10]] + [None],
                             "label": [l for _, l in good[:10]] + ["positive"]}), parquet_path, row_group_size=4)
    out = tmp_path / "json_data"
    result = shard("--train", jsonl_path, "--test", parquet_path, "--out", out)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    accounted(manifest)
    assert manifest.sources[0].rejected == {"bad_row": 1, "missing_field": 1}
    assert manifest.sources[1].rejected == {"missing_field": 1} and manifest.sources[1].format == "parquet"
    assert manifest.splits["test"].num_examples == 10


def test_a_file_without_the_fields_or_with_no_valid_record_is_a_clear_error(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("body,verdict\nnice,yes\nbad,no\n")
    test = tmp_path / "test.csv"
    test.write_text("body,verdict\nok,no\n")
    result = shard("--train", csv_path, "--test", test, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "train.csv" in result.output and "--label-field" in result.output
    assert not (tmp_path / "out" / "manifest.json").exists()
    result = shard("--train", csv_path, "--test", test, "--out", tmp_path / "out", "--text-field", "body",
                   "--label-field", "verdict", "--min-class-examples", "1")
    assert result.exit_code == 0, result.output
    beam = shard("--train", csv_path, "--test", test, "--out", tmp_path / "beam", "--runner", "beam")
    assert beam.exit_code == 1 and "--runner local" in beam.output


@pytest.mark.parametrize("classes, expected", [("1,3,5", ["1", "3", "5"])])
def test_classes_option_keeps_only_those(tmp_path, classes, expected):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("\n".join(star_lines(50)) + "\n")
    test.write_text("\n".join(star_lines(10)) + "\n")
    out = tmp_path / "data"
    assert shard("--train", train, "--test", test, "--out", out, "--classes", classes).exit_code == 0
    manifest = read_manifest(out)
    accounted(manifest)
    assert manifest.classes.names == expected
    assert manifest.sources[0].rejected == {"bad_label": 20} and manifest.sources[1].rejected == {"unknown_label": 4}


def test_a_truncated_compressed_csv_is_a_clear_error_not_a_traceback(tmp_path):
    rows = "".join(f'"review {i} {"great" if i % 2 else "bad"} ' + "word " * 30 + f'",{i % 2}\n' for i in range(3000))
    whole = bz2.compress(("text,label\n" + rows).encode())
    train = tmp_path / "train.csv.bz2"
    train.write_bytes(whole[:len(whole) // 2])  # a download cut off half-way
    test = tmp_path / "test.csv"
    test.write_text("text,label\nfine,1\nbad,0\n")
    result = shard("--train", train, "--test", test, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "train.csv.bz2: compressed data is truncated or corrupt after" in result.output  # its header or a line
    assert not (tmp_path / "out" / "manifest.json").exists()
