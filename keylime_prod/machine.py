"""Facts about the machine a run uses, shared by the transcript engines and the batch runner."""

from __future__ import annotations

import os


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads do not count; Whisper gains nothing from them)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        phys = core = ""
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = val.strip()
                elif key == "core id":
                    core = val.strip()
                elif not line.strip():
                    if core:
                        cores.add((phys, core))
                    phys = core = ""
        if core:
            cores.add((phys, core))
    except OSError:
        pass
    return max(1, min(usable, len(cores))) if cores else max(1, usable)
