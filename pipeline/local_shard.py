"""`shard --runner local`: fastText files -> shards, `vocab.txt`, `rejects.jsonl`, the manifest, in one pass.

Runs in this process in flat memory: lines are parsed and written as they are
read, tokens counted on a background thread, sources hashed on another.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from pathlib import Path

from tqdm import tqdm

from pipeline import manifest as manifest_lib, shard_plan, shards, sources, text
from pipeline.fasttext_format import parse_line
from pipeline.rejects import RejectLog
from pipeline.shard_plan import ShardSettings
from pipeline.vocab import TokenCounter, write_vocabulary_file

VOCAB_BATCH_LINES = 4096   # texts per counting batch: big enough to amortize a TF call
PROGRESS_EVERY_LINES = 20_000


def shard_locally(settings: ShardSettings, out: Path, progress: bool) -> manifest_lib.Manifest:
    """Write the dataset into the (locked, emptied) `out`; the manifest last. On error, discard everything."""
    started = time.perf_counter()
    writers = {split: shards.SplitWriter(out, split, count, settings.compression)
               for split, count in shard_plan.plan_split_shards(settings).items()}
    rejects = RejectLog(out)
    counter = TokenCounter()
    hasher = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    hashes = {name: hasher.submit(shards.file_sha256, path) for name, path in settings.sources().items()}
    try:
        source_infos = [dataclasses.replace(_write_source(settings, name, path, writers, rejects, counter, progress),
                                            sha256=hashes[name].result())
                        for name, path in settings.sources().items()]
        counter.close()
        shard_plan.check_train_split(writers["train"].num_examples, settings)
        split_infos = {split: _finish(writer, counter.lengths.get(split, {})) for split, writer in writers.items()}
        rejects.finish()
        ranked = counter.most_common(settings.vocab_size - text.NUM_SPECIAL_TOKENS)
        vocabulary = write_vocabulary_file(out, ranked, len(counter.counts), counter.num_tokens)
        manifest = shard_plan.assemble_manifest(settings, split_infos, source_infos, vocabulary, rejects.total,
                                                started)
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


def _write_source(settings: ShardSettings, name: str, path: Path, writers: dict[str, shards.SplitWriter],
                  rejects: RejectLog, counter: TokenCounter, progress: bool) -> manifest_lib.SourceInfo:
    """Parse one source file and write each line to its split, or to the rejects."""
    reader = sources.LineReader(path, settings.max_line_bytes, settings.parallelism)
    encoder = shards.ExampleEncoder()
    batches: dict[str, list[bytes]] = {split: [] for split in shard_plan.SOURCE_SPLITS[name]}
    written = 0
    bar = tqdm(desc=path.name, unit="B", unit_scale=True, disable=not progress, mininterval=0.5)
    for line in reader:
        parsed = parse_line(line)
        if not isinstance(parsed, tuple):
            rejects.add(name, str(path), reader.lines_read, parsed, line)
            continue
        label, text_bytes = parsed
        split = shard_plan.split_of(name, label, text_bytes, settings)
        writers[split].write(encoder.encode(text_bytes, label), label)
        written += 1
        batch = batches[split]  # counted for the split's length histogram (and, for train, the vocabulary)
        batch.append(text_bytes)
        if len(batch) >= VOCAB_BATCH_LINES:
            counter.add(batch, split)
            batches[split] = []
        if progress and written % PROGRESS_EVERY_LINES == 0:
            _update_bar(bar, reader)
    for split, batch in batches.items():
        counter.add(batch, split)
    _update_bar(bar, reader)
    bar.close()
    info = manifest_lib.SourceInfo(
        path=str(path),
        splits=shard_plan.SOURCE_SPLITS[name],
        bytes=path.stat().st_size,
        sha256="",  # filled in once the background hash is done
        lines_read=reader.lines_read,
        written=written,
        rejected=dict(sorted(rejects.counts[name].items())),
    )
    shard_plan.check_source_has_examples(info, rejects.first.get(name))
    return info


def _finish(writer: shards.SplitWriter, lengths: dict[int, int]) -> manifest_lib.SplitInfo:
    """Rename the split's shards into place and describe the split (with its length histogram)."""
    label_counts = {"0": writer.label_counts[0], "1": writer.label_counts[1]}
    return manifest_lib.SplitInfo(writer.num_examples, label_counts, writer.finish(),
                                  manifest_lib.length_counts(lengths))


def _update_bar(bar: tqdm, reader: sources.LineReader) -> None:
    bar.update(reader.bytes_read - bar.n)
    elapsed = max(bar.format_dict["elapsed"], 1e-9)
    bar.set_postfix_str(f"{reader.lines_read / elapsed:,.0f} lines/s", refresh=False)
