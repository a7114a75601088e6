"""A live stream's items, with a `PAUSE` where the next one keeps the reader waiting.

`predict` scores reviews in pools of several batches; on a stream that someone is still writing (a user typing
reviews, `tail -f reviews.txt | reviewflow predict RUN`), a pool would hold its answers until thousands more
reviews came. At a pause it answers what has come instead.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

# How long the next item may keep the reader waiting before what has come is answered: far longer than a pipe
# between two programs takes to pass a line on, short enough that a person sees an answer at once.
PAUSE_AFTER_S = 0.2


class Pause:
    """The marker `with_pauses` puts where the stream paused (not an item of it)."""

    def __repr__(self) -> str:
        return "PAUSE"


PAUSE = Pause()
_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def with_pauses(items: Iterable, pause_after_s: float = PAUSE_AFTER_S, read_ahead: int = 4096) -> Iterator:
    """`items`, read on a thread of their own (at most `read_ahead` ahead), and one `PAUSE` each time the next
    item takes longer than `pause_after_s` to come. An error reading `items` is raised here, in order."""
    ahead: queue.Queue = queue.Queue(maxsize=read_ahead)

    def read() -> None:
        try:
            for item in items:
                ahead.put(item)
        except BaseException as error:  # noqa: BLE001 - handed over, and raised by the consuming thread
            ahead.put(_Failed(error))
        ahead.put(_END)

    # A daemon: a command that stops early (its reader gone) must not wait for a stream nobody ends.
    threading.Thread(target=read, name="reviewflow-live-input", daemon=True).start()
    paused = False
    while True:
        try:
            item = ahead.get(timeout=None if paused else pause_after_s)
        except queue.Empty:
            paused = True  # once a pause: wait for the next item without waking
            yield PAUSE
            continue
        paused = False
        if item is _END:
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item
