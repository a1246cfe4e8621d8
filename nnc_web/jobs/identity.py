"""Which machine, process and device a worker is: recorded on each job it runs."""
from __future__ import annotations

import functools
import os
import socket


@functools.cache
def worker_identity() -> str:
    """`host pid N · GPU 0` (the devices CUDA shows this process) or `host pid N · CPU`. The host is
    `NNC_WORKER_HOST` when set (the launcher and `runworker` set it to the machine's name)."""
    host = os.environ.get("NNC_WORKER_HOST") or socket.gethostname()
    return f"{host} pid {os.getpid()} · {device_description()}"


def device_description() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA install still runs CPU jobs
        count = 0
    if not count:
        return "CPU"
    ids = visible.split(",") if visible else [str(i) for i in range(count)]
    return f"GPU {','.join(ids[:count])}"
