"""A private PostgreSQL for the live tests: Debian's `postgresql` (installed with apt when missing, as
the README's setup installs Chromium), its own data folder and port, removed afterwards."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from nnc_web.launcher import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def ensure_postgresql() -> Path:
    if _binaries() is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "postgresql"], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    binaries = _binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL's binaries were not found after installing the postgresql package")
    return binaries


class PrivatePostgres:
    """initdb + pg_ctl on a free loopback port; the server runs as `postgres` when we are root (it
    refuses to run as root)."""

    def __init__(self, folder: Path) -> None:
        self.bin = ensure_postgresql()
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = free_port()
        self._as = []
        if os.geteuid() == 0:
            folder.mkdir(parents=True, exist_ok=True)
            user = pwd.getpwnam("postgres")
            os.chown(folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> str:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "nnc", "--auth=trust", "-E", "UTF8")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log"), "-w",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")
        return self.database("nnc")

    def database(self, name: str) -> str:
        """A new, empty database on this server: its URL."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "nnc", name)
        return f"postgres://nnc@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
