"""The batch explanations' background writer: each row's picture (drawn, PNG-encoded) and raw map
(float16 .npy) are written on one thread while the main thread decodes and explains the next rows.
The writer's work is kept small and off torch (NumPy and ISA-L's deflate, which release the GIL: about
4 ms of CPU an image, `pictures.encode_png` under 1 ms of it), because on a 2-core CPU it shares the
cores with the forward and backward passes; a torch op here would also queue on the explaining side's
intra-op threads.

A bounded queue keeps memory flat (the explaining side waits when the writer is behind); every file
lands whole (written beside, then renamed); the first failure is raised on the explaining side at its
next row (the rest of the queue is dropped, never waited on), and cancelling drops what is queued."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType

from nnc_web.engine.errors import UserError

Task = Callable[[], None]
_DONE = None


class BackgroundWriter:
    """`submit(cell, task)` queues `task` (which writes the file `cell` names, relative to the output);
    `check()` raises the first failure; leaving the `with` block waits for everything queued (or,
    when the block raised, drops it) and then raises a failure the block has not seen yet."""

    def __init__(self, depth: int = 32) -> None:
        self._queue: queue.Queue[tuple[str, Task] | None] = queue.Queue(maxsize=max(1, depth))
        self._failure: BaseException | None = None
        self._dropping = threading.Event()
        self._lock = threading.Lock()
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="xai-batch-writer", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        """Tasks finished so far (progress counts rows whose files are on disk)."""
        with self._lock:
            return self._written

    def submit(self, cell: str, task: Task) -> None:
        self.check()
        self._queue.put((cell, task))  # blocks while the queue is full; the writer always drains it

    def check(self) -> None:
        """Raise the writer's first failure on the calling (explaining) thread."""
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is _DONE:
                return
            if self._dropping.is_set():
                continue  # after a failure or a cancel: empty the queue so no submit waits forever
            cell, task = entry
            try:
                task()
            except BaseException as exc:  # noqa: BLE001 - every failure goes to the explaining thread
                with self._lock:
                    self._failure = _as_user_error(cell, exc)
                self._dropping.set()
            else:
                with self._lock:
                    self._written += 1

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is not None:
            self._dropping.set()  # the job failed or was cancelled: its remaining files are not wanted
        self._queue.put(_DONE)
        self._thread.join()
        if kind is None:
            self.check()


def _as_user_error(cell: str, exc: BaseException) -> BaseException:
    """A file system failure names the file by its cell (never a server path); other errors stay as they are."""
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        error = UserError(f"could not write {cell}: {reason}")
        error.__cause__ = exc
        return error
    return exc
