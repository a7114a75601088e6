"""`shard --runner local`: corpus files -> shards, `vocab.txt`, `rejects.jsonl`, the manifest, in one pass.

Runs in this process in flat memory: records are parsed and written as they are
read, tokens counted on a background thread, sources hashed on another. Any
format of `pipeline/formats` and any labels: the class table gives record ids.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from pathlib import Path

from tqdm import tqdm

from pipeline import manifest as manifest_lib, sources, text
from pipeline.shard import plan as shard_plan
from pipeline.shard import writer as shard_writer
from pipeline import formats
from pipeline.formats import Record, RecordReader
from pipeline.labels import ClassesInfo, ClassTable
from pipeline.rejects import Reject, RejectLog
from pipeline.shard.plan import ShardSettings
from pipeline.vocab import COUNT_BATCH_BYTES, TokenCounter, write_vocabulary_file

VOCAB_BATCH_LINES = 4096   # texts per counting batch: big enough to amortize a TF call (or COUNT_BATCH_BYTES)
PROGRESS_EVERY_LINES = 20_000


def shard_locally(settings: ShardSettings, out: Path, progress: bool) -> manifest_lib.Manifest:
    """Write the dataset into the (locked, emptied) `out`; the manifest last. On error, discard everything."""
    started = time.perf_counter()
    rejects = RejectLog(out, settings.max_rejects_kept)
    counter = TokenCounter()
    table = ClassTable(settings.min_class_examples, settings.classes)
    hasher = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    hashes = {name: hasher.submit(sources.source_sha256, path) for name, path in settings.sources().items()}
    writers: dict[str, shard_writer.SplitWriter] = {}
    try:
        for split, count in shard_plan.plan_split_shards(settings).items():  # a split that fails to open: none left
            writers[split] = shard_writer.SplitWriter(out, split, count, settings.compression)
        source_infos = []
        for name, path in settings.sources().items():
            writer = SourceWriter(settings, name, path, writers, rejects, counter, table)
            source_infos.append(dataclasses.replace(writer.run(progress), sha256=hashes[name].result()))
        counter.close()
        shard_plan.check_train_split(writers["train"].num_examples, settings)
        classes = table.classes(settings.positive_class)
        split_infos = {split: _finish(writer, counter.lengths.get(split, {}), classes)
                       for split, writer in writers.items()}
        rejects.finish()
        ranked = counter.most_common(settings.vocab_size - text.NUM_SPECIAL_TOKENS)
        vocabulary = write_vocabulary_file(out, ranked, counter.num_distinct, counter.num_tokens, counter.count_error)
        manifest = shard_plan.assemble_manifest(settings, split_infos, source_infos, vocabulary, rejects.total,
                                                started, classes, rejects.kept)
    except BaseException:
        counter.close()
        for writer in writers.values():
            writer.discard()
        rejects.discard()
        raise
    finally:
        hasher.shutdown(wait=True, cancel_futures=True)
    manifest_lib.write_manifest(out, manifest)  # last: its presence marks the directory complete
    return manifest


class SourceWriter:
    """Parses one source and writes each record to its split, or to the rejects."""

    def __init__(self, settings: ShardSettings, name: str, path: Path, writers: dict[str, shard_writer.SplitWriter],
                 rejects: RejectLog, counter: TokenCounter, table: ClassTable):
        self.settings, self.name, self.path = settings, name, path
        self.writers, self.rejects, self.counter, self.table = writers, rejects, counter, table
        self.reader = formats.open_records(path, settings.format_settings())
        self.encoder = shard_writer.ExampleEncoder()
        self.batches: dict[str, list[bytes]] = {split: [] for split in settings.source_splits(name)}
        self.batch_bytes: dict[str, int] = {split: 0 for split in settings.source_splits(name)}
        self.written = 0

    def run(self, progress: bool) -> manifest_lib.SourceInfo:
        bar = tqdm(desc=self.path.name, unit="B", unit_scale=True, disable=not progress, mininterval=0.5)
        for record in self.reader:
            self.add(record)
            if progress and self.reader.records_read % PROGRESS_EVERY_LINES == 0:
                _update_bar(bar, self.reader)
        if self.name == "train":  # the class set is now known: labels that stayed rare are no classes
            to_write, rare = self.table.freeze()
            for held in to_write:
                self.write(held)
            for held in rare:
                self.reject(held, Reject.BAD_LABEL)
        for split, batch in self.batches.items():
            self.counter.add(batch, split)
        _update_bar(bar, self.reader)
        bar.close()
        info = manifest_lib.SourceInfo(
            path=str(self.path),
            splits=self.settings.source_splits(self.name),
            bytes=sources.source_bytes(self.path),
            sha256="",  # filled in once the background hash is done
            lines_read=self.reader.records_read,
            written=self.written,
            rejected=dict(sorted(self.rejects.counts[self.name].items())),
            format=self.reader.format,
            fields=list(self.reader.fields) if self.reader.fields else None,
        )
        shard_plan.check_source_has_examples(info, self.rejects.first.get(self.name))
        return info

    def add(self, record: Record) -> None:
        if not isinstance(record.parsed, tuple):
            self.reject(record, record.parsed)
            return
        label, text_bytes = record.parsed
        if self.name != "train":
            if self.table.record_id(label) is None:
                self.reject(record, Reject.UNKNOWN_LABEL)
            else:
                self.write(record)
            return
        admitted = self.table.admit(label, record, len(text_bytes))
        if admitted is None:
            self.reject(record, Reject.BAD_LABEL)
        for held in admitted or ():
            self.write(held)

    def reject(self, record: Record, reason: Reject) -> None:
        self.rejects.add(self.name, str(self.path), record.number, reason, record.raw)

    def write(self, record: Record) -> None:
        label, text_bytes = record.parsed
        record_id = self.table.record_id(label)
        split = shard_plan.split_of(self.name, label, text_bytes, self.settings)
        self.writers[split].write(self.encoder.encode(text_bytes, record_id), record_id)
        self.written += 1
        batch = self.batches[split]  # counted for the split's length histogram (and, for train, the vocabulary)
        batch.append(text_bytes)
        self.batch_bytes[split] += len(text_bytes)
        if len(batch) >= VOCAB_BATCH_LINES or self.batch_bytes[split] >= COUNT_BATCH_BYTES:
            self.counter.add(batch, split)
            self.batches[split], self.batch_bytes[split] = [], 0


def _finish(writer: shard_writer.SplitWriter, lengths: dict[int, int], classes: ClassesInfo) -> manifest_lib.SplitInfo:
    """Rename the split's shards into place and describe it: examples per class id, the length histogram."""
    label_counts = {str(index): 0 for index in range(classes.num_classes)}
    for record_id, count in writer.label_counts.items():
        label_counts[str(classes.record_to_class[record_id])] += count
    return manifest_lib.SplitInfo(writer.num_examples, label_counts, writer.finish(),
                                  manifest_lib.length_counts(lengths))


def _update_bar(bar: tqdm, reader: RecordReader) -> None:
    bar.update(reader.bytes_read - bar.n)
    elapsed = max(bar.format_dict["elapsed"], 1e-9)
    bar.set_postfix_str(f"{reader.records_read / elapsed:,.0f} records/s", refresh=False)
