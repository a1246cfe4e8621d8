"""Run a picklable per-item function over many items on every core, reporting progress in order."""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from nnc_web.engine.reporting import JobCancelled

INLINE_BELOW = 48  # starting processes costs more than it saves on tiny inputs


def worker_count() -> int:
    return max(1, int(os.environ.get("NNC_CONVERT_WORKERS", 0)) or (os.cpu_count() or 1))


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: the kernel kills this process when its parent dies (even by SIGKILL), so a
    killed worker leaves no conversion processes behind (Linux; elsewhere a no-op)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _run_chunk(function: Callable[[Any], Any], chunk: Sequence[Any]) -> list[Any]:
    return [function(item) for item in chunk]


def parallel_map(
    function: Callable[[Any], Any],
    items: Sequence[Any],
    should_stop: Callable[[], bool] = lambda: False,
    chunk_size: int = 16,
    workers: int | None = None,
) -> Iterator[Any]:
    """Yield `function(item)` results (unordered between chunks) as they finish.

    Uses a spawn-context process pool so it is safe inside threaded workers; stops early and
    raises JobCancelled when `should_stop()` turns true.
    """
    workers = workers or worker_count()
    if workers == 1 or len(items) < INLINE_BELOW:
        for item in items:
            if should_stop():
                raise JobCancelled("cancelled by the user")
            yield function(item)
        return
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        pending: set[Future] = set()
        queue = iter(chunks)
        try:
            for chunk in queue:  # keep a bounded number of chunks in flight
                pending.add(pool.submit(_run_chunk, function, chunk))
                if len(pending) >= workers * 3:
                    break
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                if should_stop():
                    raise JobCancelled("cancelled by the user")
                for future in done:
                    yield from future.result()
                    next_chunk = next(queue, None)
                    if next_chunk is not None:
                        pending.add(pool.submit(_run_chunk, function, next_chunk))
        finally:
            for future in pending:
                future.cancel()
