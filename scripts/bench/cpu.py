"""CPU and memory of processes, from /proc: what every benchmark reports beside its figures.

A benchmark shares the machine with the server it measures (and on a shared machine with
whatever else runs), so each one samples the CPU time of the pids it knows (server, clients,
Redis, MariaDB) and of the whole machine, and reports the rest as ``other``: a run with much
``other`` CPU is noise. Percentages are of one core (100 = one core busy) unless named
``machine`` (100 = every core busy).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def cpu_us(pid: int) -> float | None:
    """utime + stime of ``pid`` (all threads) in microseconds; ``None`` if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000 / CLK_TCK


def rss_kib(pid: int) -> int | None:
    """Resident memory (VmRSS) of ``pid`` in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def machine_jiffies() -> tuple[float, float]:
    """(busy, total) jiffies of all cores together, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields)
    return total - idle, total


@dataclass(frozen=True)
class CpuSample:
    """CPU counters of some pids and of the machine at one moment."""

    t_ns: int  # time.time_ns(): comparable with time stamps taken in other processes
    mono: float  # time.monotonic()
    pids: dict[int, float]  # µs of CPU per pid that could be read
    machine: tuple[float, float]

    @classmethod
    def take(cls, pids: Iterable[int]) -> CpuSample:
        read = {pid: v for pid in pids if pid and (v := cpu_us(pid)) is not None}
        return cls(time.time_ns(), time.monotonic(), read, machine_jiffies())


def used_us(a: CpuSample, b: CpuSample, pids: Iterable[int]) -> float | None:
    """CPU µs the ``pids`` used between ``a`` and ``b``; ``None`` if one could not be read."""
    total = 0.0
    for pid in pids:
        if pid not in a.pids or pid not in b.pids:
            return None
        total += b.pids[pid] - a.pids[pid]
    return total


def per_pid_us(a: CpuSample, b: CpuSample, pids: Iterable[int]) -> list[float]:
    """CPU µs of each of ``pids`` that could be read at both samples."""
    return [b.pids[p] - a.pids[p] for p in pids if p in a.pids and p in b.pids]


def pct(used: float | None, seconds: float) -> float | None:
    """``used`` µs of CPU over ``seconds`` as a percentage of one core."""
    if used is None or seconds <= 0:
        return None
    return round(100 * used / (seconds * 1e6), 1)


def machine_pct(a: CpuSample, b: CpuSample) -> float | None:
    """The whole machine between ``a`` and ``b``: 100 = every core busy."""
    total = b.machine[1] - a.machine[1]
    return round(100 * (b.machine[0] - a.machine[0]) / total, 1) if total > 0 else None


def other_pct(a: CpuSample, b: CpuSample) -> float | None:
    """CPU the machine used beyond the sampled pids (100 = one core): another load next door."""
    total = b.machine[1] - a.machine[1]
    seconds = (b.mono - a.mono) or 1e-9
    if total <= 0:
        return None
    machine = 100 * (b.machine[0] - a.machine[0]) / total * CORES
    ours = pct(used_us(a, b, [p for p in b.pids if p in a.pids]), seconds) or 0.0
    return round(max(0.0, machine - ours), 1)


class CpuSampler:
    """Samples some pids every ``interval`` seconds while a phase runs.

    The end of a measurement window (the last delivery, say) is often known only afterwards;
    :meth:`at` finds the first sample at or after it.
    """

    def __init__(self, pids: Sequence[int], interval: float = 0.05) -> None:
        self.pids = [p for p in pids if p]
        self.interval = interval
        self.samples: list[CpuSample] = []

    def take(self) -> CpuSample:
        sample = CpuSample.take(self.pids)
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.take()

    def at(self, t_ns: int) -> CpuSample:
        return next((s for s in self.samples if s.t_ns >= t_ns), self.samples[-1])
