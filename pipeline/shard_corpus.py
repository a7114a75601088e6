"""`shard`: fastText files -> sharded TFRecords, `vocab.txt`, `rejects.jsonl`, `manifest.json`, in one pass."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import time
from pathlib import Path

from tqdm import tqdm

from pipeline import datadir, manifest as manifest_lib, shards, sources, text
from pipeline.errors import ReviewflowError
from pipeline.fasttext_format import parse_line
from pipeline.rejects import RejectLog
from pipeline.vocab import VOCAB_FILE, VocabularyCounter, write_vocabulary

VOCAB_BATCH_LINES = 4096   # texts per counting batch: big enough to amortize a TF call
PROGRESS_EVERY_LINES = 20_000
RUNNERS = ("local", "beam")


@dataclasses.dataclass(frozen=True)
class ShardSettings:
    train: Path
    test: Path
    out: Path
    num_shards: int | None = None       # per split; None plans by size
    val_fraction: float = 0.2
    vocab_size: int = text.DEFAULT_VOCAB_SIZE
    compression: str = "none"           # "none" or "gzip"
    seed: int = 0
    overwrite: bool = False
    max_line_bytes: int = sources.DEFAULT_MAX_LINE_BYTES
    parallelism: int | None = None      # bzip2 decoder threads; None: all cores
    runner: str = "local"               # "local" (this process) or "beam" (an Apache Beam pipeline)
    beam_options: tuple[str, ...] = ()  # Beam pipeline options, e.g. ("--runner=DataflowRunner",)

    def __post_init__(self):
        if not 0.0 <= self.val_fraction < 1.0:
            raise ReviewflowError(f"--val-fraction must be in [0, 1), got {self.val_fraction}.")
        if self.vocab_size <= text.NUM_SPECIAL_TOKENS:
            raise ReviewflowError(f"--vocab-size must be above {text.NUM_SPECIAL_TOKENS}.")
        if self.compression not in shards.COMPRESSIONS:
            raise ReviewflowError(f"--compression must be one of {shards.COMPRESSIONS}.")
        if self.runner not in RUNNERS:
            raise ReviewflowError(f"--runner must be one of {RUNNERS}.")
        if self.beam_options and self.runner != "beam":
            raise ReviewflowError("--beam-option is for --runner beam.")

    def to_json(self) -> dict:
        """The settings that shaped the output (paths as given)."""
        return {field.name: (str(value) if isinstance(value, Path) else value)
                for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]
                if field.name not in ("overwrite", "parallelism", "beam_options")}


def plan_split_shards(settings: ShardSettings) -> dict[str, int]:
    """Number of shards per split: `num_shards` for each if given, else by estimated size."""
    if settings.num_shards:
        return {split: settings.num_shards for split in shards.SPLITS}
    train_bytes = shards.estimate_text_bytes(settings.train.stat().st_size, sources.compression_of(settings.train))
    test_bytes = shards.estimate_text_bytes(settings.test.stat().st_size, sources.compression_of(settings.test))
    return {
        "train": shards.plan_num_shards(train_bytes * (1 - settings.val_fraction)),
        "validation": shards.plan_num_shards(train_bytes * settings.val_fraction),
        "test": shards.plan_num_shards(test_bytes),
    }


def shard_corpus(settings: ShardSettings, progress: bool = False) -> manifest_lib.Manifest:
    """Run the whole shard job; on any error nothing is left that looks complete."""
    out = Path(settings.out)
    for path in (settings.train, settings.test):
        if not Path(path).is_file():
            raise ReviewflowError(f"{path}: no such file. Check the path.")
    with datadir.locked(out):
        datadir.prepare_output_dir(out, settings.overwrite)
        if settings.runner == "beam":
            return _shard_with_beam(settings, out)
        return _shard_locked(settings, out, progress)


def _shard_with_beam(settings: ShardSettings, out: Path) -> manifest_lib.Manifest:
    if importlib.util.find_spec("apache_beam") is None:
        raise ReviewflowError("--runner beam needs Apache Beam, an optional extra: pip install -e '.[beam]'.")
    from pipeline import beam_shard

    return beam_shard.shard_with_beam(settings, out)


def _shard_locked(settings: ShardSettings, out: Path, progress: bool) -> manifest_lib.Manifest:
    started = time.perf_counter()
    num_shards = plan_split_shards(settings)
    writers = {split: shards.SplitWriter(out, split, count, settings.compression)
               for split, count in num_shards.items()}
    rejects = RejectLog(out)
    counter = VocabularyCounter()
    hasher = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    source_hashes = {str(path): hasher.submit(shards.file_sha256, path) for path in (settings.train, settings.test)}
    try:
        source_infos = [
            _write_source(settings, settings.train, writers, rejects, counter, progress, holdout=True),
            _write_source(settings, settings.test, writers, rejects, counter, progress, holdout=False),
        ]
        counter.close()
        split_infos = {
            split: manifest_lib.SplitInfo(writer.num_examples,
                                          {"0": writer.label_counts[0], "1": writer.label_counts[1]},
                                          writer.finish())
            for split, writer in writers.items()}
        rejects.finish()
        vocabulary = _write_vocabulary(out, counter, settings.vocab_size)
        source_infos = [dataclasses.replace(info, sha256=source_hashes[info.path].result())
                        for info in source_infos]
    except BaseException:
        counter.close()
        for writer in writers.values():
            writer.discard()
        rejects.discard()
        raise
    finally:
        hasher.shutdown(wait=True, cancel_futures=True)
    manifest = manifest_lib.Manifest(
        format_version=manifest_lib.FORMAT_VERSION,
        settings=settings.to_json(),
        splits=split_infos,
        sources=source_infos,
        vocabulary=vocabulary,
        rejects_path=rejects.path.name,
        num_rejected=rejects.total,
        seconds=round(time.perf_counter() - started, 3),
    )
    manifest_lib.write_manifest(out, manifest)  # last: its presence marks the directory complete
    return manifest


def _write_source(settings, path, writers, rejects, counter, progress, holdout) -> manifest_lib.SourceInfo:
    """Parse one source file and write each line to its split, or to the rejects."""
    path = Path(path)
    source = str(path)
    reader = sources.LineReader(path, settings.max_line_bytes, settings.parallelism)
    encoder = shards.ExampleEncoder()
    train, validation, test = writers["train"], writers["validation"], writers["test"]
    vocab_batch: list[bytes] = []
    written = 0
    bar = tqdm(desc=path.name, unit="B", unit_scale=True, disable=not progress, mininterval=0.5)
    for line in reader:
        parsed = parse_line(line)
        if not isinstance(parsed, tuple):
            rejects.add(source, reader.lines_read, parsed, line)
            continue
        label, text_bytes = parsed
        record = encoder.encode(text_bytes, label)
        written += 1
        if not holdout:
            test.write(record, label)
        elif shards.is_validation(label, text_bytes, settings.val_fraction, settings.seed):
            validation.write(record, label)
        else:
            train.write(record, label)
            vocab_batch.append(text_bytes)
            if len(vocab_batch) >= VOCAB_BATCH_LINES:
                counter.add(vocab_batch)
                vocab_batch = []
        if progress and written % PROGRESS_EVERY_LINES == 0:
            _update_bar(bar, reader)
    counter.add(vocab_batch)
    _update_bar(bar, reader)
    bar.close()
    return manifest_lib.SourceInfo(
        path=source,
        splits=["train", "validation"] if holdout else ["test"],
        bytes=path.stat().st_size,
        sha256="",  # filled in once the background hash is done
        lines_read=reader.lines_read,
        written=written,
        rejected=dict(sorted(rejects.counts[source].items())),
    )


def _update_bar(bar: tqdm, reader: sources.LineReader) -> None:
    bar.update(reader.bytes_read - bar.n)
    elapsed = max(bar.format_dict["elapsed"], 1e-9)
    bar.set_postfix_str(f"{reader.lines_read / elapsed:,.0f} lines/s", refresh=False)


def _write_vocabulary(out: Path, counter: VocabularyCounter, vocab_size: int) -> manifest_lib.VocabularyInfo:
    ranked = counter.most_common(vocab_size - text.NUM_SPECIAL_TOKENS)
    return write_vocabulary_file(out, ranked, len(counter.counts), counter.num_tokens)


def write_vocabulary_file(out: Path, ranked: list[tuple[str, int]], distinct_tokens: int,
                          num_tokens: int) -> manifest_lib.VocabularyInfo:
    """Write `vocab.txt` from (token, count) pairs, most frequent first, and describe it."""
    path = out / VOCAB_FILE
    write_vocabulary(path, [token for token, _ in ranked])
    covered = sum(count for _, count in ranked)
    return manifest_lib.VocabularyInfo(
        path=VOCAB_FILE,
        size=len(ranked) + text.NUM_SPECIAL_TOKENS,
        num_tokens_in_file=len(ranked),
        sha256=shards.file_sha256(path),
        distinct_tokens_seen=distinct_tokens,
        tokens_seen=num_tokens,
        coverage=round(covered / num_tokens, 6) if num_tokens else 0.0,
    )
