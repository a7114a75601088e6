"""`fit` without `--max-len`: the length is chosen from the train split's length histogram, per model.

`shard` records how many training reviews have each length in tokens (the
manifest's `length_counts`); a model that reads a checkpoint's word pieces
counts its own on a sample (models/zoo/preprocessors.py). Each architecture's
spec says which share of reviews it should take whole and up to which length
(`ModelSpec.lengths`): a bag model costs little per token and takes nearly
every review whole, a sequence model covers most reviews within a cap that
bounds memory and time per step. The README's "Choosing --max-len" has the
measurements behind the numbers.
"""

from __future__ import annotations

import dataclasses

# A data directory sharded before the manifest kept lengths: the reference studies' value.
FALLBACK_MAX_LEN = 128
MIN_MAX_LEN = 16     # short-text corpora still get room for a few convolutions and poolings
MULTIPLE = 8         # lengths in multiples of 8: tidy shapes for XLA and tensor cores


@dataclasses.dataclass(frozen=True)
class MaxLenChoice:
    """The --max-len a run uses and why; `config.json` records it."""

    max_len: int
    source: str        # "option" (--max-len), "data" (the train split's lengths) or "fallback"
    reason: str
    covered: float | None = None   # share of training reviews taken whole


def covering_length(lengths: dict[int, int], share: float) -> int:
    """The smallest length that takes at least `share` of the reviews whole."""
    total = sum(lengths.values())
    seen = 0
    for length in sorted(lengths):
        seen += lengths[length]
        if seen >= share * total:
            return length
    return max(lengths, default=0)


def share_within(lengths: dict[int, int], max_len: int) -> float:
    total = sum(lengths.values())
    return sum(count for length, count in lengths.items() if length <= max_len) / total if total else 1.0


def choose(given: int | None, coverage: float, cap: int, lengths: dict[int, int] | None,
           unit: str = "tokens") -> MaxLenChoice:
    """`given` if set; else the length covering `coverage` of `lengths`, rounded up to MULTIPLE, within
    [MIN_MAX_LEN, cap]; else (no histogram) FALLBACK_MAX_LEN. `unit`: what `lengths` counts, the model's own
    (the shard's tokens, or a checkpoint's word pieces)."""
    if given is not None:
        return MaxLenChoice(given, "option", "--max-len", share_within(lengths, given) if lengths else None)
    if not lengths:
        return MaxLenChoice(FALLBACK_MAX_LEN, "fallback",
                            f"the data directory records no review lengths (sharded by an older reviewflow): "
                            f"the studies' {FALLBACK_MAX_LEN}; re-shard it to choose from the data")
    needed = covering_length(lengths, coverage)
    max_len = min(cap, max(MIN_MAX_LEN, -(-needed // MULTIPLE) * MULTIPLE))
    covered = share_within(lengths, max_len)
    return MaxLenChoice(max_len, "data", f"covers {covered:.1%} of training reviews whole (the model takes "
                        f"{coverage:.0%}: {needed} {unit}, rounded up to a multiple of {MULTIPLE}, at most {cap})",
                        round(covered, 4))
