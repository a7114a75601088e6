"""Batches by length: each batch holds reviews of similar length and is padded to its own bucket width, not
to --max-len.

`fit` chooses --max-len to cover 90-99% of reviews whole (920 tokens on IMDB, whose median review has 180):
a batch padded to it spends most of its step on padding. Here a pool of blocks is sorted by length and cut
into batches; each batch is padded (or cut) to the smallest of a few fixed widths that holds its longest
review, so an XLA-compiled step meets a bounded number of shapes. The models mask padding, so a review's
probabilities do not depend on how much padding its batch had (`model.keras` still pads to --max-len).

tf.data's `bucket_by_sequence_length` leaves a partial batch in every bucket at the end of an epoch: the
number of steps, which the progress bar, the learning-rate schedules and resumption count on, would no
longer be known. Sorting within a pool keeps it: ceil(examples / batch size), as before.
"""

from __future__ import annotations

import tensorflow as tf

SMALLEST_WIDTH = 8
# Two widths per octave (8, 12, 16, 24, 32, 48, ...): a batch carries at most 50% padding beyond its
# longest review (a quarter, on average), and --max-len 2048 meets 17 shapes.
WIDTH_STEPS = (1.5, 4 / 3)
# For a step XLA compiles, one per octave (8, 16, 32, ...): each width is a compile of its own (~0.5-1 s a
# function), and a bag model's step, whose cost is linear in the width, pays less for the padding than that.
COMPILED_WIDTH_STEPS = (2,)
# Batches sorted together: the larger the pool, the closer its batches' lengths (and the more memory: 16
# batches of 256 reviews of --max-len 2048 int32 ids are 32 MB). At least POOL_EXAMPLES reviews: each pool
# costs tf.data a dataset of its own, which small batches would pay too often.
POOL_BATCHES = 16
POOL_EXAMPLES = 4096
# Under a strategy, the uneven batches `even_batch_first` holds back before the first even one: a small pool's
# partial batch and the next pools' can come first; more than three in a row would need pools of ~1 batch.
UNEVEN_HELD_BACK = 3


def pool_blocks(batch_size: int, block_size: int) -> int:
    """Blocks of `block_size` reviews in one pool."""
    return max(1, max(POOL_BATCHES * batch_size, POOL_EXAMPLES) // block_size)


def bucket_widths(max_len: int, steps: tuple[float, ...] = WIDTH_STEPS) -> tuple[int, ...]:
    """The widths a batch may be padded to: 8, then each `steps` times the last (in turn) below `max_len`,
    then `max_len` itself."""
    widths, width, step = [], SMALLEST_WIDTH, 0
    while width < max_len:
        widths.append(width)
        width = round(width * steps[step % len(steps)])
        step += 1
    return (*widths, max_len)


def lengths_of(ids) -> tf.Tensor:
    """Tokens per row (batch,) int64: the non-zero ids (padding is 0, at the end); a preset's padding mask."""
    if isinstance(ids, dict):
        return tf.reduce_sum(tf.cast(ids["padding_mask"], tf.int64), axis=1)
    return tf.math.count_nonzero(ids, axis=1)


def to_width(part: tf.Tensor, width) -> tf.Tensor:
    """(batch, L) -> (batch, width): cut, or padded with 0 at the end."""
    width = tf.cast(width, tf.int32)
    part = part[:, :width]
    return tf.pad(part, [[0, 0], [0, width - tf.shape(part)[1]]])


def without_padding(ids, labels):
    """A block's padded ids -> ragged ids, each row its own tokens (what the id cache stores, and pools join)."""
    lengths = lengths_of(ids)
    return tf.nest.map_structure(lambda part: tf.RaggedTensor.from_tensor(part, lengths=lengths), ids), labels


def shuffle_blocks(dataset: tf.data.Dataset, buffer_examples: int, block_size: int,
                   seed: int | None) -> tf.data.Dataset:
    """Blocks in a new order each epoch, from a buffer of about `buffer_examples` reviews.

    Whole blocks, not reviews: tf.data spends ~30 us on each element it handles one by one (a ragged one
    more), which capped a cached epoch at 40k reviews/s; a block costs that once for ~1024 reviews.
    """
    return dataset.shuffle(max(2, buffer_examples // block_size), seed=seed, reshuffle_each_iteration=True)


def pools(dataset: tf.data.Dataset, blocks_per_pool: int) -> tf.data.Dataset:
    """Blocks of ragged ids -> pools of `blocks_per_pool` blocks, padded to each pool's longest review.

    Pools are made afresh each epoch from shuffled blocks, so the reviews sorted together change too.
    """
    dataset = dataset.ragged_batch(blocks_per_pool)

    def join(ids, labels):  # ragged_batch makes every part ragged (blocks, reviews, ...): one row per review
        return tf.nest.map_structure(lambda part: part.merge_dims(0, 1).to_tensor(), ids), labels.merge_dims(0, 1)
    return dataset.map(join, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def bucket_of(lengths: tf.Tensor, widths: tf.Tensor) -> tf.Tensor:
    """Each length's bucket: the index of the smallest width that holds it."""
    return tf.minimum(tf.searchsorted(widths, lengths), tf.cast(tf.size(widths) - 1, tf.int32))


def cut_in_order(pool, keys: tf.Tensor, batch_size: int, finish=lambda *batch: batch) -> tf.data.Dataset:
    """A pool (a structure of tensors, one row per review) -> its batches of `batch_size`, in order of `keys`,
    each passed through `finish` (one map a batch: tf.data's cost is per call)."""
    ordered = tf.nest.map_structure(lambda part: tf.gather(part, tf.argsort(keys, stable=True)), pool)
    starts = tf.range(0, tf.shape(keys, out_type=tf.int64)[0], batch_size)
    return tf.data.Dataset.from_tensor_slices(starts).map(
        lambda start: finish(*tf.nest.map_structure(lambda part: part[start:start + batch_size], ordered)))


def texts_by_length(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Pools of (texts, labels) -> batches of `batch_size` texts of similar length (in bytes), for scoring: the
    end-to-end model cuts a batch's padding after its longest review (`TrimPadding`)."""
    return dataset.flat_map(lambda texts, labels: cut_in_order((texts, labels), tf.strings.length(texts),
                                                               batch_size))


def sorted_batches(dataset: tf.data.Dataset, batch_size: int, max_len: int, shuffle: bool,
                   seed: int | None, compiled: bool = False) -> tf.data.Dataset:
    """Pools of (ids, labels) -> batches of `batch_size` reviews of similar length, each padded to its bucket.

    A pool is ordered by bucket: padding is the same whatever the order within one, so with `shuffle` the
    reviews of a bucket come in a random order (the same review meets other batch mates each epoch), and
    the pool's batches too (otherwise every pool would run from its shortest reviews to its longest, and
    the steps' gradients with it). `compiled`: for a step XLA compiles, fewer widths (COMPILED_WIDTH_STEPS).
    """
    widths = tf.constant(bucket_widths(max_len, COMPILED_WIDTH_STEPS if compiled else WIDTH_STEPS), tf.int64)

    def pad_to_bucket(ids, labels):
        width = widths[bucket_of(tf.reduce_max(lengths_of(ids))[None], widths)[0]]
        return tf.nest.map_structure(lambda part: to_width(part, width), ids), labels

    def cut(ids, labels):
        buckets = tf.cast(bucket_of(lengths_of(ids), widths), tf.float32)
        if shuffle:
            buckets += tf.random.uniform(tf.shape(buckets), seed=seed)
        return cut_in_order((ids, labels), buckets, batch_size, pad_to_bucket)

    dataset = dataset.flat_map(cut)
    if shuffle:
        dataset = dataset.shuffle(POOL_BATCHES, seed=seed, reshuffle_each_iteration=True)
    return dataset


def first_batch_split_evenly(dataset: tf.data.Dataset, replicas: int) -> tf.data.Dataset:
    """The first batch, where its reviews do not split evenly over `replicas`, cut in two: the most that do,
    then the rest (every other batch as it is; a first batch of fewer reviews than replicas stays whole).

    Why: under a tf.distribute strategy, Keras 3's `fit` and `evaluate` first average the per-replica parts of
    one batch to build the model (`_maybe_symbolic_build`), which fails where those parts differ in size: a
    validation split of 605 reviews, one batch on 2 replicas, stopped `fit` at its first validation. Batches
    after the first may split unevenly. The count of batches becomes unknown to tf.data.
    """
    def cut_first(index, batch):
        rows = tf.shape(batch[-1])[0]   # the labels
        even = rows - rows % replicas
        cut = tf.where(tf.logical_and(index == 0, even > 0), even, rows)
        parts = tf.data.Dataset.from_tensors(tf.nest.map_structure(lambda part: part[:cut], batch)).concatenate(
            tf.data.Dataset.from_tensors(tf.nest.map_structure(lambda part: part[cut:], batch)))
        return parts.filter(lambda *part: tf.shape(part[-1])[0] > 0)
    return dataset.enumerate().flat_map(cut_first)


def even_batch_first(dataset: tf.data.Dataset, replicas: int) -> tf.data.Dataset:
    """The first batch whose reviews split evenly over `replicas` brought to the front, the uneven batches
    before it (at most UNEVEN_HELD_BACK) following it in their order; the count of batches kept (unlike
    `first_batch_split_evenly`), so a known one stays known.

    For training under a strategy (the same Keras build as above, once a `fit`: its first batch): an epoch's
    batches are full ones but for each pool's partial one, which the shuffle can bring first on a small corpus,
    two pools' in a row where a pool is small. A dataset of one batch, or of an unknown count, is returned as it
    is (the plan keeps a train split from being one uneven batch: `run_plan.batch_for_replicas`); a batch is
    held back only where one more comes to release it.
    """
    count = int(dataset.cardinality())
    if count < 2:
        return dataset
    empty = tf.nest.map_structure(lambda spec: tf.zeros([0] * len(spec.shape), spec.dtype), dataset.element_spec)

    def step(state, batch):
        slots, held, index, released = state
        uneven = tf.shape(batch[-1])[0] % replicas != 0
        hold = uneven & ~released & (held < UNEVEN_HELD_BACK) & (index < count - 1)
        # Emitted: nothing while holding; else this batch, then the ones held (the slots as they were).
        emitted = tf.where(hold, 0, 1 + held)

        def keep(slot: int, old):  # while holding, this batch goes into the next free slot
            take = hold & (held == slot)
            return tf.nest.map_structure(lambda part, previous: tf.cond(take, lambda: part, lambda: previous),
                                         batch, old)
        kept = tuple(keep(slot, old) for slot, old in enumerate(slots))
        state = (kept, tf.where(hold, held + 1, 0), index + 1, released | ~hold)
        return state, (batch, slots, emitted)

    def emit(batch, slots, emitted):
        parts = tf.data.Dataset.from_tensors(batch)
        for slot in slots:
            parts = parts.concatenate(tf.data.Dataset.from_tensors(slot))
        return parts.take(tf.cast(emitted, tf.int64))

    start = ((empty,) * UNEVEN_HELD_BACK, tf.constant(0), tf.constant(0), tf.constant(False))
    reordered = dataset.scan(start, step).flat_map(emit)
    return reordered.apply(tf.data.experimental.assert_cardinality(count))
