"""Samples the CPU, memory, threads and file descriptors of the host process and of every process
below it (faas-broker, zygotes, sandbox kernels) in a background thread, with psutil."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any, Callable, Optional

import psutil

__all__ = ["HOST", "SANDBOXES", "ResourceMonitor", "ResourceSample", "default_classifier", "summarize"]

HOST = "host"
SANDBOXES = "sandboxes"

# (process, root pid) -> group name
Classifier = Callable[[psutil.Process, int], str]


def default_classifier(process: psutil.Process, root_pid: int) -> str:
    """The root process is the host; every descendant (the broker, the zygotes that fork
    sandboxes, the sandbox kernels and what they start) counts as the sandbox side."""
    return HOST if process.pid == root_pid else SANDBOXES


@dataclasses.dataclass(frozen=True)
class ResourceSample:
    """One group at one instant.

    t            seconds since the monitor started
    group        "host" or "sandboxes" (or what a custom classifier returns)
    processes    live processes of the group
    cpu_percent  CPU used since the previous sample, in % of one CPU (200 = two CPUs busy)
    rss_bytes    resident set size summed over the group's processes (pages shared copy-on-write
                 between forked sandboxes are counted once per process)
    threads      threads summed over the group
    fds          open file descriptors summed over the group
    """

    t: float
    group: str
    processes: int
    cpu_percent: float
    rss_bytes: int
    threads: int
    fds: int


def _total_cpu(times: Any) -> float:
    # Own time plus the time of reaped children: a sandbox that lives and dies between two
    # samples is never seen, but its CPU time lands in its reaper's children_* on waitpid().
    return times.user + times.system + times.children_user + times.children_system


class ResourceMonitor:
    """Samples a process tree every `interval` seconds in a daemon thread.

    pid        root of the tree (default: this process)
    interval   seconds between samples
    classify   ``(psutil.Process, root_pid) -> group``; default: "host" for the root, "sandboxes"
               for every descendant

    CPU per group and interval = the growth of (user + system + reaped children's) time of the
    group's live processes, plus the whole time of processes born since the last sample, minus,
    for each process that ended, the time already counted for it, taken from the group of its
    parent (whose children times just absorbed its total). So a sandbox that lives and dies
    between two samples is still counted, in its reaper's group: exact for the engine, where
    zygotes reap sandbox kernels and the broker reaps zygotes, all in the "sandboxes" group.
    The time of a process since the last sample is lost if its parent is not monitored.

    Use as a context manager, or ``start()`` / ``stop()``; then ``samples`` and ``summary()``.
    """

    def __init__(self, pid: Optional[int] = None, interval: float = 0.25,
                 classify: Optional[Classifier] = None) -> None:
        if not interval > 0:
            raise ValueError("interval must be > 0")
        self.pid = pid if pid is not None else os.getpid()
        self.interval = float(interval)
        self._classify = classify or default_classifier
        self._root = psutil.Process(self.pid)
        self._samples: list[ResourceSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._t0 = 0.0
        self._last_t = 0.0
        self.started_at = 0.0  # time.perf_counter() at start(): the origin of ResourceSample.t
        # pid -> (create_time, group, last seen total CPU seconds, parent pid); create_time
        # guards against pid reuse
        self._seen: dict[int, tuple[float, str, float, int]] = {}
        self._groups: set[str] = set()
        self._cpu_seconds: dict[str, float] = {}

    # ---- control -----------------------------------------------------------------------------

    def start(self) -> "ResourceMonitor":
        if self._thread is not None:
            raise RuntimeError("this ResourceMonitor was already started")
        self._t0 = self._last_t = time.perf_counter()
        self.started_at = self._t0
        self._collect(record=False)  # baseline for the first interval's CPU
        self._thread = threading.Thread(target=self._loop, name="faas-perf-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops sampling after one last sample. Idempotent."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._collect(record=True)

    def __enter__(self) -> "ResourceMonitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._collect(record=True)
            except Exception:  # the root vanished or /proc is unreadable: stop quietly
                return

    # ---- sampling ----------------------------------------------------------------------------

    def _processes(self) -> list[psutil.Process]:
        try:
            return [self._root] + self._root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def _collect(self, record: bool) -> None:
        now = time.perf_counter()
        elapsed = now - self._last_t
        self._last_t = now
        agg: dict[str, list[float]] = {}  # group -> [processes, cpu_delta, rss, threads, fds]
        alive: set[int] = set()
        for proc in self._processes():
            try:
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        # Ended but not yet reaped: its time is not yet in its reaper's
                        # children times, so keep the last seen value until it is gone.
                        if proc.pid in self._seen:
                            alive.add(proc.pid)
                        continue
                    created = proc.create_time()
                    ppid = proc.ppid()
                    cpu = _total_cpu(proc.cpu_times())
                    rss = proc.memory_info().rss
                    threads = proc.num_threads()
                    try:
                        fds = proc.num_fds()
                    except psutil.AccessDenied:
                        fds = 0
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            prev = self._seen.get(proc.pid)
            if prev is not None and prev[0] == created:
                group, delta = prev[1], cpu - prev[2]
            else:
                group = self._classify(proc, self.pid)
                # Born since the last sample: all its time is new (a fork starts from zero).
                # In the baseline pass nothing counts.
                delta = cpu
            self._seen[proc.pid] = (created, group, cpu, ppid)
            alive.add(proc.pid)
            a = agg.setdefault(group, [0, 0.0, 0, 0, 0])
            a[0] += 1
            a[1] += delta
            a[2] += rss
            a[3] += threads
            a[4] += fds
        gone = [p for p in self._seen if p not in alive]
        for pid in gone:
            _, group, last, ppid = self._seen[pid]
            # Its reaper (normally its parent) just absorbed its total into its children
            # times; take back the part counted already, from the group that got it.
            reaper = self._seen.get(ppid)
            if reaper is not None and ppid in alive:
                agg.setdefault(reaper[1], [0, 0.0, 0, 0, 0])[1] -= last
        for pid in gone:
            del self._seen[pid]
        self._groups.update(agg)
        if not record:
            return
        t = now - self._t0
        samples = []
        for group in sorted(self._groups):
            n, cpu_delta, rss, threads, fds = agg.get(group, [0, 0.0, 0, 0, 0])
            cpu_delta = max(0.0, cpu_delta)  # a process reaped outside its group
            self._cpu_seconds[group] = self._cpu_seconds.get(group, 0.0) + cpu_delta
            pct = 100.0 * cpu_delta / elapsed if elapsed > 0 else 0.0
            samples.append(ResourceSample(t=round(t, 6), group=group, processes=int(n),
                                          cpu_percent=pct, rss_bytes=int(rss), threads=int(threads),
                                          fds=int(fds)))
        with self._lock:
            self._samples.extend(samples)

    # ---- results -----------------------------------------------------------------------------

    @property
    def samples(self) -> list[ResourceSample]:
        with self._lock:
            return list(self._samples)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per group: ``samples``, ``cpu_seconds`` (total CPU time used while monitoring) and
        ``{"mean", "max"}`` of ``cpu_percent``, ``rss_bytes``, ``threads``, ``fds`` and
        ``processes``."""
        return summarize(self.samples, self._cpu_seconds)


def summarize(samples: list[ResourceSample],
              cpu_seconds: Optional[dict[str, float]] = None) -> dict[str, dict[str, Any]]:
    """The summary of ``ResourceMonitor.summary()`` computed from samples."""
    out: dict[str, dict[str, Any]] = {}
    groups = sorted({s.group for s in samples})
    for group in groups:
        mine = [s for s in samples if s.group == group]
        entry: dict[str, Any] = {"samples": len(mine)}
        for field in ("cpu_percent", "rss_bytes", "threads", "fds", "processes"):
            values = [getattr(s, field) for s in mine]
            entry[field] = {"mean": sum(values) / len(values), "max": max(values)}
        if cpu_seconds is not None:
            entry["cpu_seconds"] = cpu_seconds.get(group, 0.0)
        elif len(mine) > 1:
            # Samples alone: integrate cpu_percent over the gaps between them.
            total = sum(s.cpu_percent / 100.0 * (s.t - p.t) for p, s in zip(mine, mine[1:]))
            entry["cpu_seconds"] = total
        out[group] = entry
    return out
