"""Data directory + split -> a streaming `tf.data.Dataset` of batches; never the whole corpus in memory.

Each step is a small `Dataset -> Dataset` function; `make_dataset` chains them.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import batching, text
from pipeline.data_dir import DataDir
from pipeline.labels import ClassesInfo

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BUFFER_EXAMPLES = 10_000   # bounded: ~5 MB of reviews, whatever the corpus size
SHUFFLE_BUFFER_BYTES = 64 << 20    # ... and fewer reviews where they are long (`examples_within`)
READ_BUFFER_BYTES = 8 << 20
# Parsing and vectorizing cost per call as well as per example: do both on
# blocks of ~1024 examples, then cut the blocks into training batches.
BLOCK_EXAMPLES = 1024
# Tokenizing a block takes ~10x its text (pipeline/text.py's copies): where reviews are far longer than Amazon's
# (~450 bytes), a block holds fewer of them, ~BLOCK_BYTES (1024 documents of 114 kB took `fit` to 3.5 GB).
BLOCK_BYTES = 16 << 20
# Gzipped shards hold about a third of their records' bytes (reviews compress ~2.8-3x).
GZIP_TEXT_FACTOR = 3
FEATURES = {
    "text": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def read_records(files: list[str], compression: str, shuffle: bool, seed: int | None, every: int = 1,
                 block_size: int | None = None) -> tf.data.Dataset:
    """Serialized examples, read from several shards in parallel (file order shuffled if asked): each file's
    every `every`-th (`every_kth`). With `block_size`, blocks of exactly that many (the last: the rest),
    each read from one file: the interleave's cost per element, paid per review, was half of reading."""
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read(path):
        records = every_kth(tf.data.TFRecordDataset(path, compression, READ_BUFFER_BYTES), every)
        return records.batch(block_size) if block_size else records
    dataset = dataset.interleave(read, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
                                 deterministic=seed is not None or not shuffle)
    return dataset.rebatch(block_size) if block_size else dataset  # files' last blocks are short: join them


def shuffle_examples(dataset: tf.data.Dataset, buffer_size: int, seed: int | None) -> tf.data.Dataset:
    """Shuffle within a bounded buffer: memory does not grow with the corpus."""
    return dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)


# What a label outside the manifest's classes says (cli.py shows a TensorFlow error's last line).
BAD_LABEL_MESSAGE = ("a shard holds a label outside the manifest's classes: the data directory was changed or "
                     "damaged. Run `reviewflow verify DIR`, or re-shard the corpus")


def parse_batch_for(classes: ClassesInfo):
    """Serialized examples -> (texts, labels): two classes as float32 (batch, 1), the sigmoid's target; N
    classes as int32 class ids (batch,), sparse categorical cross-entropy's. Record ids become class ids.

    A label that is no class stops the pipeline with BAD_LABEL_MESSAGE: cross-entropy would take an id of
    7 for two classes as a target without a word (and a GPU's gather gives 0 for an index out of range).
    """
    identity = classes.record_to_class == list(range(len(classes.record_to_class)))
    record_to_class = tf.constant(classes.record_to_class, tf.int64)
    num_record_ids = len(classes.record_to_class)

    def parse_batch(records: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_example(records, FEATURES)
        record_ids = parsed["label"]
        in_range = tf.reduce_all((record_ids >= 0) & (record_ids < num_record_ids))
        with tf.control_dependencies([tf.debugging.Assert(in_range, [BAD_LABEL_MESSAGE])]):
            labels = tf.identity(record_ids) if identity else tf.gather(record_to_class, record_ids)
        if not identity:
            with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(labels >= 0), [BAD_LABEL_MESSAGE])]):
                labels = tf.identity(labels)
        if classes.num_classes == 2:
            return parsed["text"], tf.cast(labels, tf.float32)[:, None]
        return parsed["text"], tf.cast(labels, tf.int32)
    return parse_batch


def class_ids(labels) -> np.ndarray:
    """A batch's labels as int class ids (batch,), whichever of the two forms above they have."""
    return np.asarray(labels).reshape(-1).astype(int)


def vectorize_with(vectorizer):
    """Texts -> ragged token ids without padding, a whole block at a time (`text.ragged_ids`; a preset's
    preprocessor pads, and its padding is cut off here)."""
    def vectorize(texts, labels):
        if isinstance(vectorizer, keras.layers.TextVectorization):
            return text.ragged_ids(vectorizer, texts), labels
        return as_ragged_ids(vectorizer(texts), labels)
    return vectorize


def every_kth(dataset: tf.data.Dataset, every: int) -> tf.data.Dataset:
    """Every `every`-th example, from the first: of each shard file, a sample spread over the whole split (the
    shards hold its reviews in turn), the same each pass."""
    return dataset.shard(every, 0) if every > 1 else dataset


def sample_size(data: DataDir, split: str, every: int) -> int:
    """Examples `every_kth` keeps of the split's shards."""
    return sum(-(-shard.num_examples // every) for shard in data.split(split).shards)


def record_bytes(data: DataDir, split: str) -> float:
    """Bytes of a record of the split, about (the manifest's shard sizes: the largest shard's mean)."""
    factor = GZIP_TEXT_FACTOR if data.compression else 1
    means = [shard.bytes * factor / shard.num_examples for shard in data.split(split).shards if shard.num_examples]
    return max(means, default=1.0)


def examples_within(data: DataDir, split: str, num_bytes: int, most: int) -> int:
    """How many of the split's reviews hold about `num_bytes`, at most `most` and at least 1: a block's, a
    buffer's or a batch's count where reviews are long (memory follows a block's bytes, not its count)."""
    return max(1, min(most, int(num_bytes // record_bytes(data, split))))


def block_examples(data: DataDir, split: str, batch_size: int) -> int:
    """Reviews a block parses and vectorizes at once: whole batches, ~BLOCK_EXAMPLES, ~BLOCK_BYTES at most
    (one batch where a batch alone holds more)."""
    return batch_size * max(1, examples_within(data, split, BLOCK_BYTES, BLOCK_EXAMPLES) // batch_size)


def with_known_batches(dataset: tf.data.Dataset, num_examples: int, batch_size: int) -> tf.data.Dataset:
    """Tell tf.data how many batches come (the manifest knows): Keras then shows progress and epoch ends."""
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-num_examples // batch_size)))


def make_text_dataset(data: DataDir, split: str, batch_size: int, shuffle: bool = False,
                      seed: int | None = None, shuffle_buffer: int = SHUFFLE_BUFFER_EXAMPLES,
                      known_size: bool = True, every: int = 1) -> tf.data.Dataset:
    """(texts, labels) batches of a split (of every `every`-th review: `every_kth`); `known_size=False` where
    workers each read only some files."""
    # Shuffled: review by review, in a bounded buffer; otherwise read in blocks of the batch.
    dataset = read_records(data.shard_paths(split), data.compression, shuffle, seed, every,
                           None if shuffle else batch_size)
    if shuffle:
        buffer = examples_within(data, split, SHUFFLE_BUFFER_BYTES, shuffle_buffer)
        dataset = shuffle_examples(dataset, buffer, seed).batch(batch_size)
    if known_size:
        dataset = with_known_batches(dataset, sample_size(data, split, every), batch_size)
    return dataset.map(parse_batch_for(data.classes), num_parallel_calls=AUTOTUNE, deterministic=True)


def make_dataset(data: DataDir, split: str, batch_size: int, max_len: int = text.DEFAULT_MAX_LEN,
                 shuffle: bool = False, seed: int | None = None,
                 vectorizer: keras.layers.TextVectorization | None = None,
                 shuffle_buffer: int = SHUFFLE_BUFFER_EXAMPLES, cache_path: Path | None = None,
                 known_size: bool = True, by_length: bool = True, compiled: bool = False,
                 every: int = 1) -> tf.data.Dataset:
    """(token_ids, labels) batches of a split, vectorized in the pipeline and prefetched.

    `every`: only every `every`-th review of the split (`every_kth`; a validation sample).
    With `by_length`, batches hold reviews of similar length, each padded to its own bucket width
    (pipeline/batching.py; `compiled`: fewer widths, for a step XLA compiles); without it, every batch is
    padded to `max_len` (as before length buckets).
    With `cache_path`, the first pass writes the token ids to that file (disk, not memory: ~4 bytes a
    token, padding left out) and later passes read them back instead of parsing and vectorizing again;
    shuffling then happens in a bounded buffer of blocks after the cache, so every epoch gets a new order.
    """
    block = block_examples(data, split, batch_size)
    dataset = make_text_dataset(data, split, block, shuffle and cache_path is None, seed, shuffle_buffer,
                                known_size, every)
    if vectorizer is None:
        vectorizer = text.vocabulary_vectorizer(data.vocabulary(), max_len)
    dataset = dataset.map(vectorize_with(vectorizer), num_parallel_calls=AUTOTUNE, deterministic=True)
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        dataset = dataset.cache(str(cache_path))
        if shuffle:
            dataset = batching.shuffle_blocks(dataset, shuffle_buffer, block, seed)
    if by_length:
        dataset = batching.pools(dataset, batching.pool_blocks(batch_size, block))
        dataset = batching.sorted_batches(dataset, batch_size, max_len, shuffle, seed, compiled)
    else:
        dataset = batching.pools(dataset, 1).map(lambda ids, labels: (tf.nest.map_structure(
            lambda part: batching.to_width(part, max_len), ids), labels)).rebatch(batch_size)
    if known_size:
        dataset = with_known_batches(dataset, sample_size(data, split, every), batch_size)
    return dataset.prefetch(AUTOTUNE)


def as_ragged_ids(ids, labels):
    """A block's padded ids -> ragged int32 ids without the padding (a preset's dict: every part)."""
    return batching.without_padding(tf.nest.map_structure(lambda part: tf.cast(part, tf.int32), ids), labels)
