"""A real Dask cluster for the batch tests: ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class DaskProcesses:
    """A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (no nanny: a killed worker stays dead)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: dict[str, int] = {}  # address -> pid
        self.address = ""

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.folder / log, "wb")  # noqa: SIM115 - closed with the process
        dask = Path(sys.executable).parent / "dask"
        proc = subprocess.Popen([str(dask), *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.folder)
        self.procs.append(proc)
        return proc

    def start(self, n_workers: int = 2) -> DaskProcesses:
        from distributed import Client

        self._spawn(
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(self.scheduler_file), log="scheduler.log",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.scheduler_file.is_file():
            if time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start: " + (self.folder / "scheduler.log").read_text())
            time.sleep(0.1)
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        for i in range(n_workers):
            self._spawn(
                "worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1", "--nthreads", "1",
                "--nworkers", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}", log=f"worker-{i}.log",
            )  # fmt: skip
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=90)
            self.workers = {addr: int(pid) for addr, pid in client.run(os.getpid).items()}
        return self

    def kill_worker(self, address: str) -> None:
        """SIGKILL one worker process: no goodbye to the scheduler, its running task dies with it."""
        os.kill(self.workers[address], signal.SIGKILL)

    def stop(self) -> None:
        for proc in reversed(self.procs):  # workers first, the scheduler last; only the processes we started
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
