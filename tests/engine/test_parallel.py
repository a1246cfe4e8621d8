"""Conversion pools die with the process that started them, even when it is killed with SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

SCRIPT = """
import os, sys, time
sys.path.insert(0, {root!r})
from nnc_web.engine.parallel import parallel_map

def slow(item):
    print(os.getpid(), flush=True)
    time.sleep(60)
    return item

if __name__ == "__main__":
    for _ in parallel_map(slow, list(range(64)), workers=2, chunk_size=1):
        pass
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_pool_processes_die_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(SCRIPT.format(root=str(os.getcwd())))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    children = {int(parent.stdout.readline()) for _ in range(2)}  # both pool processes are working
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    alive = set(children)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.1)
    assert not alive, f"orphaned pool processes: {alive}"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
