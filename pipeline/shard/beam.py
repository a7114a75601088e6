"""`shard --runner beam`: the same sharding as an Apache Beam pipeline.

Beam's in-process FnApiRunner runs it here (LOCAL_RUNNER); Dataflow, Flink or
Spark run it on a cluster (pass their pipeline options). Parsing, the split, rejects, the vocabulary and
the accounting are the local command's own functions, so the output has the
same layout, counts and vocabulary. Which shard holds which example is Beam's
choice, so shard bytes and hashes differ from a local run's.

The pipeline writes shards and `rejects.jsonl` (Beam writes to temporary files
and renames them when done) and a small report of counts; this process then
checks the accounting, writes `vocab.txt` and, last, `manifest.json`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Iterable, Iterator

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import manifest as manifest_lib, sources, text
from pipeline.shard import output_dir
from pipeline.shard import plan as shard_plan
from pipeline.shard import writer as shard_writer
from pipeline.errors import ReviewflowError
from pipeline.fasttext_format import parse_line
from pipeline.labels import LEGACY_RECORD_IDS
from pipeline.rejects import REJECTS_FILE, Reject, reject_line
from pipeline.shard.plan import ShardSettings
from pipeline.vocab import COUNT_BATCH_BYTES, count_tokens as count_batch_tokens, write_vocabulary_file

REPORT_FILE = "beam-report.jsonl"     # counts from the pipeline, read and removed by this process
# The runner where the user names none. Beam's DirectRunner first tries Prism, a job server it downloads at run
# time (there may be no network), and leaves an empty /tmp/beam-temp* directory behind for every run where
# that fails; then it falls back to this same in-process runner (~0.5 s later).
LOCAL_RUNNER = "FnApiRunner"


def shard_with_beam(settings: ShardSettings, out: Path) -> manifest_lib.Manifest:
    """Run the shard job as a Beam pipeline into the (locked, emptied) `out`; then write the manifest."""
    started = time.perf_counter()
    num_shards = shard_plan.plan_split_shards(settings)
    try:
        _run_pipeline(settings, out, num_shards)
        report = _read_report(out / REPORT_FILE)
        manifest = _assemble_manifest(settings, out, report, started)
    except BaseException:
        output_dir.remove_dataset_files(out)  # nothing may look complete
        raise
    (out / REPORT_FILE).unlink()
    manifest_lib.write_manifest(out, manifest)  # last: its presence marks the directory complete
    return manifest


def _run_pipeline(settings: ShardSettings, out: Path, num_shards: dict[str, int]) -> None:
    options = PipelineOptions(pipeline_arguments(settings.beam_options))
    try:
        with beam.Pipeline(options=options) as pipeline:
            build_pipeline(pipeline, settings, out, num_shards)
    except ReviewflowError:
        raise
    except Exception as exc:  # Beam wraps a worker's error; its message still names the file and place
        raise ReviewflowError(f"the Beam pipeline failed: {_first_line(exc)} Nothing was marked complete; "
                              "fix the cause and run again.") from exc


def pipeline_arguments(beam_options: tuple[str, ...]) -> list[str]:
    """Beam's arguments: the user's `--beam-option`s (never sys.argv, which are our options), LOCAL_RUNNER unless
    they name a runner."""
    names_runner = any(option.startswith("--runner=") for option in beam_options)
    return list(beam_options) if names_runner else [f"--runner={LOCAL_RUNNER}", *beam_options]


def _first_line(exc: BaseException) -> str:
    """The original error's message, out of Beam's wrapping."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if ": " in line and "Traceback" not in line), lines[0] if lines else
                type(exc).__name__)


def build_pipeline(pipeline, settings: ShardSettings, out: Path, num_shards: dict[str, int]) -> None:
    """Sources -> numbered lines -> examples by split (and rejects) -> shards, rejects, counts, vocabulary."""
    read = (pipeline
            | "Sources" >> beam.Create([(name, str(path)) for name, path in settings.sources().items()])
            | "Read" >> beam.FlatMap(read_source, settings.max_line_bytes).with_outputs("sources", main="lines"))
    # A compressed file is read by one worker; spread its lines before the per-line work.
    routed = (read.lines
              | "Spread" >> beam.Reshuffle()
              | "Parse" >> beam.FlatMap(route_line, settings)
              .with_outputs("rejects", main="examples"))
    examples, rejects = routed.examples, routed.rejects
    _ = (rejects
         | "RejectLines" >> beam.Map(lambda reject: reject["line"])
         | "WriteRejects" >> beam.io.WriteToText(
             str(out / Path(REJECTS_FILE).stem), file_name_suffix=Path(REJECTS_FILE).suffix, num_shards=1,
             shard_name_template="", append_trailing_newlines=False))
    by_split = examples | "BySplit" >> beam.Partition(lambda example, _: shard_plan.SPLITS.index(example[1]),
                                                        len(shard_plan.SPLITS))
    report = [read.sources | "SourceItems" >> beam.Map(lambda info: {"kind": "source", **info}),
              *_count_items(examples, rejects)]
    for split, split_examples in zip(shard_plan.SPLITS, by_split):
        report.append(_write_split(split, split_examples, out, num_shards[split], settings.compression))
        report.append(_length_items(split, split_examples))
    report.append(_vocabulary_item(by_split[shard_plan.SPLITS.index("train")],
                                   settings.vocab_size - text.NUM_SPECIAL_TOKENS))
    _ = (report
         | "Report" >> beam.Flatten()
         | "ReportLines" >> beam.Map(json.dumps)
         | "WriteReport" >> beam.io.WriteToText(str(out / REPORT_FILE), num_shards=1, shard_name_template=""))


def read_source(source: tuple[str, str], max_line_bytes: int) -> Iterator:
    """(source name, path) -> (name, path, line number, line) per line; then its description, tagged `sources`."""
    name, path = source
    reader = sources.LineReader(Path(path), max_line_bytes)
    for line in reader:
        yield name, path, reader.lines_read, line
    yield beam.pvalue.TaggedOutput("sources", {
        "source": name, "path": path, "bytes": Path(path).stat().st_size,
        "sha256": shard_writer.file_sha256(Path(path)), "lines_read": reader.lines_read})


def route_line(numbered_line: tuple, settings: ShardSettings) -> Iterator:
    """A numbered line -> (source name, split, label, text), or its rejects.jsonl line, tagged `rejects`."""
    name, path, line_number, line = numbered_line
    parsed = parse_line(line)
    if not isinstance(parsed, tuple):
        yield beam.pvalue.TaggedOutput("rejects", {"source": name, "reason": parsed.value,
                                                   "line": reject_line(path, line_number, parsed, line)})
        return
    label, text_bytes = parsed
    record_id = LEGACY_RECORD_IDS.get(label)  # Beam reads Amazon polarity's two classes (shard_plan.BEAM_FORMATS)
    if record_id is None:
        yield beam.pvalue.TaggedOutput("rejects", {"source": name, "reason": Reject.BAD_LABEL.value,
                                                   "line": reject_line(path, line_number, Reject.BAD_LABEL, line)})
        return
    yield name, shard_plan.split_of(name, label, text_bytes, settings), record_id, text_bytes


def _count_items(examples, rejects) -> list:
    """Report items: examples written per source, rejects per source and reason, examples per split and label."""
    def counted(name, pcoll, key, item):
        return (pcoll
                | f"Key{name}" >> beam.Map(lambda element: (key(element), 1))
                | f"Count{name}" >> beam.CombinePerKey(sum)
                | f"{name}Items" >> beam.Map(lambda pair: item(*pair)))

    return [
        counted("Written", examples, lambda e: e[0],
                lambda source, n: {"kind": "written", "source": source, "count": n}),
        counted("Rejected", rejects, lambda r: (r["source"], r["reason"]),
                lambda key, n: {"kind": "rejected", "source": key[0], "reason": key[1], "count": n}),
        counted("Labels", examples, lambda e: (e[1], e[2]),
                lambda key, n: {"kind": "labels", "split": key[0], "label": key[1], "count": n}),
    ]


class EncodeExample(beam.DoFn):
    """(source, split, label, text) -> a serialized `tf.train.Example`, the local command's encoding."""

    def setup(self):
        self.encoder = shard_writer.ExampleEncoder()

    def process(self, example):
        _, _, label, text_bytes = example
        yield self.encoder.encode(text_bytes, label)


def _write_split(split: str, examples, out: Path, num_shards: int, compression: str):
    """Write a split's shards with the local command's names; report each shard (count, bytes, sha256)."""
    gzip = compression == "gzip"
    written = (examples
               | f"Encode{split}" >> beam.ParDo(EncodeExample())
               | f"Write{split}" >> beam.io.WriteToTFRecord(
                   str(out / split), file_name_suffix=".tfrecord.gz" if gzip else ".tfrecord",
                   num_shards=num_shards, shard_name_template="-SSSSS-of-NNNNN",
                   compression_type=CompressionTypes.GZIP if gzip else CompressionTypes.UNCOMPRESSED))
    return written | f"Describe{split}" >> beam.Map(describe_shard, split, shard_writer.tf_compression(compression))


def describe_shard(path: str, split: str, compression: str) -> dict:
    """A written shard's report item: records counted by reading it back, bytes and sha256."""
    num_examples = int(tf.data.TFRecordDataset(path, compression).reduce(0, lambda count, _: count + 1))
    return {"kind": "shard", "split": split, **dataclasses.asdict(shard_writer.shard_info(Path(path), num_examples))}


def text_batches() -> beam.BatchElements:
    """Texts in batches of at most COUNT_BATCH_BYTES (a batch's size is the sum of its texts' lengths; one text
    alone may be longer), as the local runner's. (Beam may hand on an empty batch, where the first text alone
    is over the size it is aiming at.)"""
    return beam.BatchElements(min_batch_size=1, max_batch_size=COUNT_BATCH_BYTES, element_size_fn=len)


def count_tokens(texts: list[bytes]) -> Iterable[tuple[bytes, int]]:
    """(token, count) within a batch of texts, counted as the local runner counts them."""
    unique, counts = count_batch_tokens(tf.constant(texts, tf.string))
    return zip(unique.numpy().tolist(), counts.numpy().tolist())


def token_lengths(texts: list[bytes]) -> Iterable[int]:
    """Tokens per text of a batch, counted as the local runner counts them."""
    return text.token_lengths(tf.constant(texts, tf.string)).numpy().tolist()


def _length_items(split: str, examples):
    """Report items: reviews of the split per length in tokens (the manifest's length histogram)."""
    return (examples
            | f"Texts{split}" >> beam.Map(lambda example: example[3])
            | f"TextBatches{split}" >> text_batches()
            | f"Lengths{split}" >> beam.FlatMap(token_lengths)
            | f"KeyLengths{split}" >> beam.Map(lambda length: (length, 1))
            | f"CountLengths{split}" >> beam.CombinePerKey(sum)
            | f"LengthItems{split}" >> beam.Map(
                lambda pair: {"kind": "length", "split": split, "length": pair[0], "count": pair[1]}))


def _vocabulary_item(train_examples, num_tokens: int):
    """The report's vocabulary: the top tokens of the train split in adapt's order, and the totals."""
    counts = (train_examples
              | "Texts" >> beam.Map(lambda example: example[3])
              | "TextBatches" >> text_batches()
              | "CountInBatch" >> beam.FlatMap(count_tokens)
              | "CountTokens" >> beam.CombinePerKey(sum))
    # Count descending, ties by the token's bytes descending: TextVectorization.adapt's order.
    top = counts | "Top" >> beam.combiners.Top.Of(num_tokens, key=lambda pair: (pair[1], pair[0]))
    distinct = counts | "Distinct" >> beam.combiners.Count.Globally()
    total = counts | "Values" >> beam.Values() | "Total" >> beam.CombineGlobally(sum)
    return top | "VocabularyItem" >> beam.Map(
        lambda ranked, distinct, total: {"kind": "vocabulary", "distinct": distinct, "tokens": total,
                                         "ranked": [[token.decode("utf-8"), count] for token, count in ranked]},
        distinct=beam.pvalue.AsSingleton(distinct), total=beam.pvalue.AsSingleton(total))


def _read_report(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _assemble_manifest(settings: ShardSettings, out: Path, report: list[dict],
                       started: float) -> manifest_lib.Manifest:
    """The manifest from the pipeline's report, after the checks every run must pass."""
    items = {kind: [item for item in report if item["kind"] == kind]
             for kind in ("source", "written", "rejected", "labels", "shard", "vocabulary", "length")}
    source_infos = [_source_info(settings, name, out, items) for name in settings.sources()]
    splits = {split: _split_info(split, items) for split in shard_plan.SPLITS}
    shard_plan.check_train_split(splits["train"].num_examples, settings)
    (vocabulary,) = items["vocabulary"]
    vocabulary_info = write_vocabulary_file(out, [tuple(pair) for pair in vocabulary["ranked"]],
                                            vocabulary["distinct"], vocabulary["tokens"])
    num_rejected = sum(item["count"] for item in items["rejected"])
    return shard_plan.assemble_manifest(settings, splits, source_infos, vocabulary_info, num_rejected, started)


def _split_info(split: str, items: dict) -> manifest_lib.SplitInfo:
    label_counts = {str(label): sum(item["count"] for item in items["labels"]
                                    if item["split"] == split and item["label"] == label) for label in (0, 1)}
    shard_infos = sorted((shard_writer.ShardInfo(item["path"], item["num_examples"], item["bytes"], item["sha256"])
                          for item in items["shard"] if item["split"] == split), key=lambda info: info.path)
    num_examples = sum(label_counts.values())
    in_shards = sum(info.num_examples for info in shard_infos)
    if in_shards != num_examples:
        raise ReviewflowError(f"the Beam pipeline routed {num_examples:,} examples to {split} but its shards hold "
                              f"{in_shards:,}; nothing was marked complete. Run again.")
    lengths = {item["length"]: item["count"] for item in items["length"] if item["split"] == split}
    return manifest_lib.SplitInfo(num_examples, label_counts, shard_infos, manifest_lib.length_counts(lengths))


def _source_info(settings: ShardSettings, name: str, out: Path, items: dict) -> manifest_lib.SourceInfo:
    (described,) = [item for item in items["source"] if item["source"] == name]
    rejected = {item["reason"]: item["count"] for item in items["rejected"] if item["source"] == name}
    info = manifest_lib.SourceInfo(
        path=described["path"], splits=settings.source_splits(name), bytes=described["bytes"],
        sha256=described["sha256"], lines_read=described["lines_read"],
        written=sum(item["count"] for item in items["written"] if item["source"] == name),
        rejected=dict(sorted(rejected.items())))
    shard_plan.check_source_has_examples(info, _first_reject(out / REJECTS_FILE, info.path))
    return info


def _first_reject(rejects_path: Path, source_path: str) -> str | None:
    """The source's first line in rejects.jsonl (Beam writes them in no order: the lowest line number)."""
    with open(rejects_path, encoding="utf-8") as rejects:
        lines = (line for line in rejects if json.loads(line)["source"] == source_path)
        return min(lines, key=lambda line: json.loads(line)["line"], default=None)
