"""Dynamic batching: requests that arrive together are scored as one batch, as TF Serving's batcher does.

A request waits at most `max_wait_s` for others to join it, and only while another request for the model is
on its way in (its body being read): a lone client is scored at once. A batch holds at most
`max_batch_size` reviews (a request is never split; one larger than that is scored alone). The model runs in its own
thread, one call at a time, so the event loop keeps accepting requests meanwhile, and while one batch is
scored the next one gathers. `max_batch_size=1` turns batching off: each request is scored by itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
from typing import Callable

import numpy as np

# Measured on loopback (benchmarks/serve_bench.py, README "Serving"): see the table for what they trade.
DEFAULT_MAX_BATCH_SIZE = 128
DEFAULT_MAX_WAIT_S = 0.002


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_s: float = DEFAULT_MAX_WAIT_S


class DynamicBatcher:
    """`await batcher.score(texts)` -> their rows of scores; `start()` on the serving loop, `stop()` at the end."""

    def __init__(self, score: Callable[[list[str]], np.ndarray], settings: BatchSettings = BatchSettings(),
                 on_batch: Callable[[int], None] = lambda size: None):
        self._score, self.settings, self._on_batch = score, settings, on_batch
        self._queue: asyncio.Queue | None = None
        self._carried: tuple[list[str], asyncio.Future] | None = None  # taken from the queue, not yet batched
        self._expected = 0   # requests for this model being served (`expecting`)
        self._submitted = 0  # of them, those waiting in `score`: the rest are still on their way in
        self._task: asyncio.Task | None = None
        self._model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """After the server stopped taking requests: finish what is queued, then end the model's thread."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
        self._model_thread.shutdown(wait=True)

    @contextlib.contextmanager
    def expecting(self):
        """Around the whole of one request (reading its body, then `score`): a batch may wait for it."""
        self._expected += 1
        try:
            yield
        finally:
            self._expected -= 1

    async def score(self, texts: list[str]) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self._submitted += 1
        try:
            await self._queue.put((texts, future))
            return await future
        finally:
            self._submitted -= 1

    def _others_arriving(self) -> bool:
        return self._expected > self._submitted

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            try:
                texts = [text for request_texts, _ in batch for text in request_texts]
                self._on_batch(len(texts))
                try:
                    scores = await asyncio.get_running_loop().run_in_executor(self._model_thread, self._score, texts)
                except Exception as exc:  # a failing model call fails its requests, not the server
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for request_texts, future in batch:
                    if not future.done():  # a client that went away leaves a cancelled future
                        future.set_result(scores[start:start + len(request_texts)])
                    start += len(request_texts)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _gather(self) -> list[tuple[list[str], asyncio.Future]]:
        """The first waiting request, and those that join it within the wait, up to the batch size."""
        first, self._carried = self._carried or await self._queue.get(), None
        batch, size = [first], len(first[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_wait_s
        while size < self.settings.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0 or not self._others_arriving():  # nobody else is coming: score now
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if size + len(item[0]) > self.settings.max_batch_size:
                self._carried = item  # it would overflow this batch: it opens the next one
                break
            batch.append(item)
            size += len(item[0])
        return batch
