"""Start and stop the real studio (`manage.py runstack`) in a subprocess: for live tests and benchmarks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_stack(data_dir: Path, port: int, extra_env: dict | None = None,
                args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, dict]:
    """Run `manage.py runstack` in a subprocess with the real settings; wait for its ready file."""
    ready = data_dir / "ready.json"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DRAMATIQ_BROKER")}
    # Two web servers: what the tests check of several (one port, one killed) needs no more on 2 cores.
    env.update({"DJANGO_SETTINGS_MODULE": "nnc_web.settings", "NNC_DATA_DIR": str(data_dir),
                "PYTHONUNBUFFERED": "1", "NNC_WEB_PROCESSES": "2", **(extra_env or {})})
    log = open(data_dir / "launcher.log", "w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--port", str(port), "--ready-file", str(ready),
         "--worker-threads", "2", *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("stack did not start:\n" + (data_dir / "launcher.log").read_text()[-4000:])
        time.sleep(0.2)
    return process, json.loads(ready.read_text())


def stop_stack(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
