"""Class names: any label the training source holds, given record ids as they first appear, ordered once.

A shard run reads each source once, so a label's *record id* (the int64 in the
TFRecords) is given when the label is first seen, and the order of the classes
is fixed at the end: natural order (1 < 2 < 10, else by name), and for two
classes the positive one second. The manifest keeps the map from record ids to
class ids; the dataset applies it. `1` and `2` always get record ids 0 and 1,
so Amazon polarity's shards are byte for byte what they always were.

A label seen fewer than `min_examples` times in the training source is not a
class but a typo or a stray line: its lines wait in a bounded buffer and are
rejected as `bad_label` once the source is read, so a stray `__label__3` never
turns a two-class corpus into three classes.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from pipeline.errors import ReviewflowError

LEGACY_RECORD_IDS = {"1": 0, "2": 1}    # fastText's __label__1 (negative) and __label__2 (positive)
MIN_CLASS_EXAMPLES = 10
PENDING_BUDGET_BYTES = 32 << 20         # lines of not-yet-confirmed labels held in memory, at most
MAX_CLASSES = 1000
MAX_LABEL_BYTES = 256                   # a longer "label" is a text in the wrong field: rejected, never held
LABEL_ENTRY_BYTES = 256                 # what one pending label costs the budget beyond its lines and name
RARE_CLASS_SHARE = 0.01                 # shard warns about a class under this share of the largest one


def check_class_rule(classes: tuple[str, ...] | None, min_examples: int) -> None:
    """Refuse a class rule no corpus can meet (shard's, and `stats FILE`'s preview of it)."""
    if min_examples < 1:
        raise ReviewflowError("--min-class-examples must be 1 or more.")
    if classes is not None and len(set(classes)) < 2:
        raise ReviewflowError(f"--classes names {len(set(classes))} distinct class(es); give two or more.")


def split_key(label: str) -> bytes:
    """What keys a label's validation hash: Amazon polarity's record id (so its split never moves), else the name."""
    return str(LEGACY_RECORD_IDS.get(label, label)).encode()


@dataclasses.dataclass(frozen=True)
class ClassesInfo:
    """The manifest's classes: their names in class-id order, the positive one (two classes), the record-id map."""

    names: list[str]
    positive: str | None                 # the class whose probability a two-class model outputs; None for N > 2
    record_to_class: list[int]           # class id of each record id written in the shards; -1: not a class

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def display_names(self) -> list[str]:
        """How tables name the classes: Amazon polarity's 1 and 2 as negative and positive, others as they are."""
        return ["negative", "positive"] if self.names == ["1", "2"] else self.names


# Directories sharded before classes were recorded: Amazon polarity's two, record ids as class ids.
LEGACY_CLASSES = ClassesInfo(["1", "2"], "2", [0, 1])


def natural_order(names) -> list[str]:
    """Names as numbers where all are integers (1, 2, 10), else as text."""
    names = list(names)
    if all(name.lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def order_classes(names, positive: str | None) -> list[str]:
    """The class order: natural; for two classes the positive one (given, or the later in order) second."""
    ordered = natural_order(names)
    if positive is None:
        return ordered
    if positive not in ordered:
        raise ReviewflowError(f"--positive-class {positive!r} is not one of the training file's classes "
                              f"{ordered}; name one of them.")
    if len(ordered) != 2:
        raise ReviewflowError(f"--positive-class is for two classes; the training file has {len(ordered)}: "
                              f"{ordered}. Leave it out: every class then gets its own probability.")
    return [name for name in ordered if name != positive] + [positive]


@dataclasses.dataclass
class Pending:
    """A label not yet confirmed as a class: its lines so far (record payloads), and their bytes."""

    items: list[Any] = dataclasses.field(default_factory=list)
    num_bytes: int = 0


class ClassTable:
    """Record ids for labels as they come; holds back the lines of labels seen fewer than `min_examples` times.

    `admit(label, item, num_bytes)` returns the items that may be written now
    (none while the label is pending; all its held lines once it is confirmed),
    or None when the label cannot be a class (not in `fixed`, or the buffer is
    full). `freeze()` ends the training source and returns the held lines of
    labels that never became classes; after it, unknown labels are refused.
    """

    def __init__(self, min_examples: int = MIN_CLASS_EXAMPLES, fixed: tuple[str, ...] | None = None,
                 budget_bytes: int = PENDING_BUDGET_BYTES):
        self.min_examples = 1 if fixed else min_examples
        self.fixed = set(fixed) if fixed else None
        self.budget_bytes = budget_bytes
        self.record_ids: dict[str, int] = dict(LEGACY_RECORD_IDS)
        self.confirmed: set[str] = set()
        self.counts: collections.Counter[str] = collections.Counter()
        self.pending: dict[str, Pending] = {}
        self.pending_bytes = 0

    def admit(self, label: str, item, num_bytes: int) -> list | None:
        if self.fixed is not None and label not in self.fixed:
            return None
        if label in self.confirmed:
            self.counts[label] += 1
            return [item]
        held = self.pending.get(label)
        if held is None and len(label.encode("utf-8", "surrogateescape")) > MAX_LABEL_BYTES:
            return None
        # The budget counts every byte a pending label holds: its lines, and its name and entry when new, so
        # that neither many distinct labels nor long ones grow memory past it. Over it, the line is rejected.
        cost = num_bytes + (len(label) + LABEL_ENTRY_BYTES if held is None else 0)
        if self.pending_bytes + cost > self.budget_bytes:
            return None
        if held is None:
            held = self.pending[label] = Pending()
        held.items.append(item)
        held.num_bytes += cost
        self.pending_bytes += cost
        self.counts[label] += 1
        if len(held.items) >= self.min_examples:
            return self._confirm(label)
        return []

    def _confirm(self, label: str) -> list:
        if len(self.confirmed) >= MAX_CLASSES:
            raise ReviewflowError(f"the training file has more than {MAX_CLASSES} labels seen "
                                  f"{self.min_examples}+ times each: is the label field the right one?")
        self.confirmed.add(label)
        self.record_ids.setdefault(label, len(self.record_ids))
        held = self.pending.pop(label)
        self.pending_bytes -= held.num_bytes
        return held.items

    def record_id(self, label: str) -> int | None:
        """The record id of a class, None for a label that is not one (after `freeze`: of the test source)."""
        return self.record_ids[label] if label in self.confirmed else None

    def freeze(self) -> tuple[list, list]:
        """End the training source: (held lines to write now, held lines of labels that stayed rare, to reject).

        Amazon polarity's `1` and `2` are classes however few their lines, when they are the only ones: a tiny
        two-class file stays a two-class corpus.
        """
        legacy = set(LEGACY_RECORD_IDS)
        to_write = []
        if self.confirmed <= legacy:
            for label in sorted(legacy & set(self.pending)):
                to_write += self._confirm(label)
        rare = [item for held in self.pending.values() for item in held.items]
        for label in self.pending:
            del self.counts[label]
        self.pending.clear()
        self.pending_bytes = 0
        return to_write, rare

    def classes(self, positive: str | None) -> ClassesInfo:
        """The manifest's record: classes in order, and the class id of every record id."""
        if self.fixed is not None:
            absent = natural_order(name for name in self.fixed if not self.counts[name])
            if absent:
                raise ReviewflowError(f"--classes names {', '.join(map(repr, absent))}, which the training file "
                                      f"never has (its classes: {', '.join(natural_order(self.counts)[:20])}). "
                                      "Name only classes it holds. Nothing was written.")
            self.confirmed |= self.fixed
            for label in self.fixed:
                self.record_ids.setdefault(label, len(self.record_ids))
        elif self.confirmed <= set(LEGACY_RECORD_IDS):  # Amazon polarity: both classes, whatever was seen
            self.confirmed |= set(LEGACY_RECORD_IDS)
        if len(self.confirmed) < 2:
            found = ", ".join(f"{name!r} ({self.counts[name]:,} lines)" for name in natural_order(self.counts)[:20])
            raise ReviewflowError(f"the training file has {len(self.confirmed)} class(es) with at least "
                                  f"{self.min_examples} examples each; a classifier needs two or more. "
                                  f"Labels found: {found or 'none'}. Nothing was written.")
        names = order_classes(self.confirmed, positive)
        if len(names) == 2 and positive is None:
            positive = names[1]
        class_of = {name: index for index, name in enumerate(names)}
        by_record = sorted(self.record_ids.items(), key=lambda item: item[1])
        return ClassesInfo(names, positive if len(names) == 2 else None,
                           [class_of.get(name, -1) for name, _ in by_record])
