"""Profiling helpers: where the time goes (cProfile) and where the memory goes (tracemalloc),
on the host, and ``Sandbox.run(code, profile=True)`` for code running inside a sandbox."""

from __future__ import annotations

import dataclasses
import functools
import json
import linecache
import os
import threading
import tracemalloc
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, TextIO, TypeVar, Union

from ..results import ExecutionResult

if TYPE_CHECKING:
    from ..sandbox import Sandbox

__all__ = [
    "AllocationSite",
    "FunctionStats",
    "MemoryProfiler",
    "MemoryReport",
    "ProfileReport",
    "ProfiledResult",
    "Profiler",
    "memory_profile",
    "profile",
]

F = TypeVar("F", bound=Callable[..., Any])
SORT_KEYS = ("cumulative", "tottime", "calls", "name")
_THIS_FILE = os.path.normcase(os.path.abspath(__file__))
_active = threading.local()  # which of our profilers run on this thread (they cannot nest)
_memory_guard = threading.Lock()
_memory_owner: list = [None]  # the thread running a memory profile, if any


# ---- time: cProfile ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FunctionStats:
    """One function of a profile (pstats' columns).

    calls            every call, recursive ones included (pstats ``ncalls``)
    primitive_calls  calls not made from inside the same function
    tottime          seconds spent in the function itself
    cumtime          seconds spent in it and everything it called
    """

    filename: str
    lineno: int
    name: str
    calls: int
    primitive_calls: int
    tottime: float
    cumtime: float

    @property
    def function(self) -> str:
        """``file:line(name)``, or ``{built-in ...}`` like pstats prints it."""
        if self.filename == "~" and self.lineno == 0:
            return "{" + self.name.strip("<>") + "}" if self.name.startswith("<") else self.name
        return f"{self.filename}:{self.lineno}({self.name})"

    def to_list(self) -> list:
        return [self.filename, self.lineno, self.name, self.calls, self.primitive_calls,
                self.tottime, self.cumtime]


def _sort_key(sort: str) -> Callable[[FunctionStats], Any]:
    if sort == "cumulative":
        return lambda r: (-r.cumtime, -r.tottime, r.function)
    if sort == "tottime":
        return lambda r: (-r.tottime, -r.cumtime, r.function)
    if sort == "calls":
        return lambda r: (-r.calls, -r.cumtime, r.function)
    if sort == "name":
        return lambda r: r.function
    raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")


def _own_frame(filename: str, name: str) -> bool:
    """The profiler's own bookkeeping, left out of every report."""
    if filename == "~" and name == "<method 'disable' of '_lsprof.Profiler' objects>":
        return True
    return os.path.normcase(os.path.abspath(filename)) == _THIS_FILE if filename[:1] not in "<~" else False


@dataclasses.dataclass(frozen=True)
class ProfileReport:
    """The result of a profile: every function seen, with report and top-n helpers.

    total_time   seconds of profiled time (sum of every function's own time)
    total_calls  function calls seen, primitive_calls: those not recursive
    note         why the profile is empty or partial, "" when it is complete
    """

    rows: tuple[FunctionStats, ...]
    total_time: float
    total_calls: int
    primitive_calls: int
    note: str = ""

    @classmethod
    def from_profiler(cls, profiler: Any, note: str = "") -> "ProfileReport":
        """From a stopped ``cProfile.Profile``. Uses its raw entries rather than pstats, whose
        dict keeps only one of several code objects with the same file, line and name."""
        merged: dict[tuple, list] = {}
        for e in profiler.getstats():
            code = e.code
            key = (("~", 0, code) if isinstance(code, str)
                   else (code.co_filename, code.co_firstlineno, code.co_name))
            if _own_frame(key[0], key[2]):
                continue
            row = merged.setdefault(key, [0, 0, 0.0, 0.0])
            row[0] += e.callcount
            row[1] += e.callcount - e.reccallcount
            row[2] += e.inlinetime
            row[3] += e.totaltime
        return cls._from_rows((FunctionStats(f, line, name, nc, cc, tt, ct)
                               for (f, line, name), (nc, cc, tt, ct) in merged.items()), note)

    @classmethod
    def from_stats(cls, stats: dict, note: str = "") -> "ProfileReport":
        """From a pstats-style dict ``{(file, line, name): (cc, nc, tt, ct, callers)}``."""
        rows = tuple(FunctionStats(f, int(line), name, int(nc), int(cc), float(tt), float(ct))
                     for (f, line, name), (cc, nc, tt, ct, *_rest) in stats.items()
                     if not _own_frame(f, name))
        return cls._from_rows(rows, note)

    @classmethod
    def _from_rows(cls, rows: Iterable[FunctionStats], note: str = "") -> "ProfileReport":
        rows = tuple(sorted(rows, key=_sort_key("cumulative")))
        return cls(rows, sum(r.tottime for r in rows), sum(r.calls for r in rows),
                   sum(r.primitive_calls for r in rows), note)

    @classmethod
    def from_dict(cls, data: dict) -> "ProfileReport":
        rows = (FunctionStats(str(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4]), float(r[5]),
                              float(r[6])) for r in data.get("rows", ()))
        report = cls._from_rows(rows, str(data.get("note", "")))
        # The sandbox sends only the heaviest rows; the totals cover every function.
        totals = {k: data[k] for k in ("total_time", "total_calls", "primitive_calls") if k in data}
        return dataclasses.replace(report, **totals) if totals else report

    def to_dict(self) -> dict:
        return {"rows": [r.to_list() for r in self.rows], "total_time": self.total_time,
                "total_calls": self.total_calls, "primitive_calls": self.primitive_calls,
                "note": self.note}

    def top(self, n: int = 20, sort: str = "cumulative") -> list[FunctionStats]:
        """The first `n` functions ordered by `sort`: cumulative, tottime, calls or name."""
        return sorted(self.rows, key=_sort_key(sort))[:max(0, n)]

    def find(self, name: str) -> list[FunctionStats]:
        """Rows whose function name (or ``file:line(name)``) contains `name`."""
        return [r for r in self.rows if name in r.name or name in r.function]

    def report(self, n: int = 20, sort: str = "cumulative") -> str:
        """pstats-like text: totals, then the top `n` functions."""
        rows = self.top(n, sort)
        head = (f"{self.total_calls} function calls ({self.primitive_calls} primitive calls) in "
                f"{self.total_time:.6f} seconds")
        lines = [head, f"Ordered by: {sort}; top {len(rows)} of {len(self.rows)} functions"]
        if self.note:
            lines.append(f"Note: {self.note}")
        lines.append("")
        lines.append(f"{'ncalls':>10} {'tottime':>9} {'percall':>9} {'cumtime':>9} {'percall':>9}  "
                     "filename:lineno(function)")
        for r in rows:
            calls = str(r.calls) if r.calls == r.primitive_calls else f"{r.calls}/{r.primitive_calls}"
            per_tt = r.tottime / r.calls if r.calls else 0.0
            per_ct = r.cumtime / r.primitive_calls if r.primitive_calls else 0.0
            lines.append(f"{calls:>10} {r.tottime:9.6f} {per_tt:9.6f} {r.cumtime:9.6f} "
                         f"{per_ct:9.6f}  {r.function}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


class _Helper:
    """Shared shape of profile() and memory_profile(): a context manager that keeps its
    result, and a decorator that profiles every call of the function it wraps."""

    _kind = ""

    def __init__(self, *, top: int, print_to: Optional[TextIO]) -> None:
        self.top_n = top
        self.print_to = print_to
        self._result: Any = None

    @property
    def result(self) -> Any:
        if self._result is None:
            raise RuntimeError(f"no {self._kind} yet: the block or call has not finished")
        return self._result

    def report(self, n: Optional[int] = None) -> str:
        return self.result.report(self.top_n if n is None else n)

    def _busy(self) -> bool:
        return self._kind in getattr(_active, "kinds", ())

    def _mark(self, on: bool) -> None:
        kinds = getattr(_active, "kinds", None)
        if kinds is None:
            kinds = _active.kinds = set()
        (kinds.add if on else kinds.discard)(self._kind)

    def _fresh(self) -> "_Helper":
        """A new helper with the same settings, for one call of a decorated function."""
        raise NotImplementedError

    def _render(self, result: Any) -> str:
        return result.report(self.top_n)

    def _publish(self, result: Any, label: str) -> None:
        self._result = result
        if self.print_to is not None:
            print(f"{self._kind} of {label}:\n{self._render(result)}", file=self.print_to)

    def __call__(self, func: F) -> F:
        helper = self

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if helper._busy():  # recursion, or called inside a profiled block: run it plainly
                return func(*args, **kwargs)
            run = helper._fresh()
            with run:
                value = func(*args, **kwargs)
            wrapper.last_profile = run.result  # type: ignore[attr-defined]
            helper._publish(run.result, func.__qualname__)
            return value

        wrapper.last_profile = None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]


class Profiler(_Helper):
    """cProfile over a block or every call of a function; see profile()."""

    _kind = "profile"

    def __init__(self, *, top: int = 20, sort: str = "cumulative", print_to: Optional[TextIO] = None,
                 label: str = "block") -> None:
        super().__init__(top=top, print_to=print_to)
        _sort_key(sort)  # validate early
        self.sort = sort
        self.label = label
        self._profiler: Any = None

    def _fresh(self) -> "Profiler":
        return Profiler(top=self.top_n, sort=self.sort)

    def __enter__(self) -> "Profiler":
        import cProfile
        if self._busy():
            raise RuntimeError("profile() blocks cannot nest on one thread: cProfile has one "
                               "profiler per thread; profile the outer block only")
        self._profiler = cProfile.Profile()
        self._mark(True)
        try:
            self._profiler.enable()
        except ValueError as exc:  # Python 3.12+: another profiler (a debugger, coverage) is on
            self._mark(False)
            raise RuntimeError(f"cannot start cProfile: {exc}") from None
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._profiler.disable()
        self._mark(False)
        self._publish(ProfileReport.from_profiler(self._profiler), self.label)
        self._profiler = None

    def report(self, n: Optional[int] = None, sort: Optional[str] = None) -> str:
        return self.result.report(self.top_n if n is None else n, sort or self.sort)

    def top(self, n: Optional[int] = None, sort: Optional[str] = None) -> list[FunctionStats]:
        return self.result.top(self.top_n if n is None else n, sort or self.sort)

    def _render(self, result: Any) -> str:
        return result.report(self.top_n, self.sort)


def profile(func: Optional[F] = None, /, *, top: int = 20, sort: str = "cumulative",
            print_to: Optional[TextIO] = None) -> Any:
    """Profiles with cProfile; the report lists the top functions by cumulative time.

    As a context manager (the result is kept on the profiler)::

        with profile() as prof:
            work()
        print(prof.report())          # or prof.top(10), prof.result.rows

    As a decorator, every call is profiled; the latest profile is ``func.last_profile``::

        @profile(print_to=sys.stderr)   # or bare @profile
        def work(): ...

    Only the calling thread is profiled. Blocks do not nest on one thread (RuntimeError); a
    decorated function called recursively or inside a profiled block runs unprofiled.
    ``print_to`` (a file) receives the report of every block or call when given.
    """
    prof = Profiler(top=top, sort=sort, print_to=print_to)
    return prof(func) if func is not None else prof


# ---- memory: tracemalloc -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AllocationSite:
    """Memory allocated at one place (net over the block) and still held at its end.

    size_bytes  bytes allocated there and not freed by the end of the block
    count       blocks (allocations) likewise
    traceback   "file:line" frames, innermost last (one unless nframes > 1)
    """

    filename: str
    lineno: int
    size_bytes: int
    count: int
    traceback: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"


def _mib(n: float) -> str:
    if abs(n) < 1024:
        return f"{n:.0f} B"
    if abs(n) < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.2f} MiB"


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """What a block allocated, measured with tracemalloc (Python allocations only).

    peak_bytes       highest traced memory during the block, above what was traced at its start
    allocated_bytes  traced memory at the end minus at the start (net; negative if it freed)
    sites            allocation sites by bytes still held at the end, largest first
    """

    peak_bytes: int
    allocated_bytes: int
    sites: tuple[AllocationSite, ...]

    def top(self, n: int = 10) -> list[AllocationSite]:
        return list(self.sites[:max(0, n)])

    def report(self, n: int = 10) -> str:
        lines = [f"peak {_mib(self.peak_bytes)} above the start, net {_mib(self.allocated_bytes)} "
                 f"still allocated at the end; top {min(n, len(self.sites))} of {len(self.sites)} sites:"]
        for site in self.top(n):
            lines.append(f"{_mib(site.size_bytes):>12} {site.count:>8} blocks  {site.where}")
            for frame in reversed(site.traceback[:-1]):
                lines.append(f"{'':>23}  called from {frame}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


class MemoryProfiler(_Helper):
    """tracemalloc over a block or every call of a function; see memory_profile()."""

    _kind = "memory profile"

    def __init__(self, *, top: int = 10, nframes: int = 1, print_to: Optional[TextIO] = None,
                 label: str = "block") -> None:
        super().__init__(top=top, print_to=print_to)
        if nframes < 1:
            raise ValueError(f"nframes must be >= 1, got {nframes}")
        self.nframes = nframes
        self.label = label
        self._started = False
        self._start_bytes = 0
        self._before: Optional[tracemalloc.Snapshot] = None

    def _fresh(self) -> "MemoryProfiler":
        return MemoryProfiler(top=self.top_n, nframes=self.nframes)

    # tracemalloc is process-wide: one memory profile at a time in the whole process.
    def _busy(self) -> bool:
        return _memory_owner[0] is not None

    def _mark(self, on: bool) -> None:
        with _memory_guard:
            if on and _memory_owner[0] is not None:
                raise RuntimeError("another memory_profile() is running (tracemalloc is "
                                   "process-wide: one memory profile at a time)")
            _memory_owner[0] = threading.get_ident() if on else None

    def __enter__(self) -> "MemoryProfiler":
        self._mark(True)  # raises if a memory profile is already running
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start(self.nframes)
        self._before = tracemalloc.take_snapshot() if not self._started else None
        tracemalloc.reset_peak()
        self._start_bytes = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            current, peak = tracemalloc.get_traced_memory()
            after = tracemalloc.take_snapshot()
        finally:
            if self._started:
                tracemalloc.stop()
            self._mark(False)
        filters = [tracemalloc.Filter(False, tracemalloc.__file__),
                   tracemalloc.Filter(False, __file__),
                   tracemalloc.Filter(False, linecache.__file__)]
        after = after.filter_traces(filters)
        key = "lineno" if self.nframes == 1 else "traceback"
        if self._before is not None:
            diffs = after.compare_to(self._before.filter_traces(filters), key)
            raw = [(d.traceback, d.size_diff, d.count_diff) for d in diffs]
        else:  # tracing began with the block: everything traced was allocated in it
            raw = [(st.traceback, st.size, st.count) for st in after.statistics(key)]
        sites = []
        for tb, size, count in raw:
            if size <= 0:
                continue
            frames = list(tb)[-self.nframes:]  # oldest first; the last one allocated
            sites.append(AllocationSite(frames[-1].filename, frames[-1].lineno, size, count,
                                        tuple(f"{f.filename}:{f.lineno}" for f in frames)))
        sites.sort(key=lambda s: (-s.size_bytes, s.where))
        self._before = None
        self._publish(MemoryReport(max(0, peak - self._start_bytes), current - self._start_bytes,
                                   tuple(sites)), self.label)

    def top(self, n: Optional[int] = None) -> list[AllocationSite]:
        return self.result.top(self.top_n if n is None else n)


def memory_profile(func: Optional[F] = None, /, *, top: int = 10, nframes: int = 1,
                   print_to: Optional[TextIO] = None) -> Any:
    """Measures peak memory and the top allocation sites with tracemalloc.

    Same shapes as profile(): ``with memory_profile() as mem: ...; mem.result.peak_bytes``,
    or ``@memory_profile`` (``func.last_profile``). `nframes` > 1 records that many frames per
    site. Python-level allocations only (numpy and the like report through tracemalloc too;
    memory that C code mallocs directly does not show). If tracemalloc is already tracing
    (``-X tracemalloc``) it is left running, but its peak is reset at the start of the block.
    """
    prof = MemoryProfiler(top=top, nframes=nframes, print_to=print_to)
    return prof(func) if func is not None else prof


# ---- inside a sandbox ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class ProfiledResult(ExecutionResult):
    """An ExecutionResult from ``Sandbox.run(code, profile=True)`` plus the profile.

    profile  a ProfileReport of the code as it ran in the sandbox (its main thread), or None
             when none could be collected: the code did not compile, or the sandbox died or
             timed out during the run
    """

    profile: Optional[ProfileReport] = None

    def __repr__(self) -> str:
        what = "None" if self.profile is None else f"<{len(self.profile.rows)} functions>"
        return super().__repr__().replace("ExecutionResult(", f"ProfiledResult(profile={what}, ", 1)


# Installed once per sandbox process as module _MODULE (fork-inherited by its branches). It
# runs the cell like the kernel does (the last expression is evaluated separately and is the
# value), under cProfile, and keeps the profiler for the follow-up run that reports it.
_MODULE = "_faas_sdk_profiler_1"
_HELPER_FILE = "<faas_sdk profiler>"
_MARK = "\x1efaas_sdk-profile\x1e"
_SANDBOX_ROWS = 100
_HELPER = r'''
import ast, cProfile, itertools, json, linecache, sys

_cells = itertools.count(1)
pending = None
_state = None


def run(g):
    global pending, _state
    src, pending, _state = pending, None, None
    if src is None:
        raise RuntimeError("faas_sdk profiler: no code was handed over")
    filename = "<profiled-cell-%d>" % next(_cells)
    tree = ast.parse(src, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval", dont_inherit=True)
    body = compile(tree, filename, "exec", dont_inherit=True) if tree.body else None
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    prof, note = cProfile.Profile(), ""
    try:
        prof.enable()
    except ValueError as exc:
        prof, note = None, "cProfile could not start in the sandbox: %s" % exc
    _state = (prof, note)
    try:
        if body is not None:
            exec(body, g)
        return eval(last, g) if last is not None else None
    finally:
        if prof is not None:
            prof.disable()


def dump(limit):
    global _state
    state, _state = _state, None
    if state is None:
        return
    prof, note = state
    merged = {}
    # getstats(), not pstats: two code objects with one label (a cell's body and its last
    # expression are both "<module>" at line 1) must add up, not overwrite each other.
    for e in (prof.getstats() if prof is not None else ()):
        code = e.code
        key = ("~", 0, code) if isinstance(code, str) else (code.co_filename, code.co_firstlineno, code.co_name)
        if key[0] == __file__ or key == ("~", 0, "<method 'disable' of '_lsprof.Profiler' objects>"):
            continue
        row = merged.setdefault(key, [key[0], key[1], key[2], 0, 0, 0.0, 0.0])
        row[3] += e.callcount
        row[4] += e.callcount - e.reccallcount
        row[5] += e.inlinetime
        row[6] += e.totaltime
    rows = list(merged.values())
    totals = [sum(r[5] for r in rows), sum(r[3] for r in rows), sum(r[4] for r in rows)]
    keep = sorted(rows, key=lambda r: -r[6])[:limit]
    for r in sorted(rows, key=lambda r: -r[5])[:limit]:
        if r not in keep:
            keep.append(r)
    text = json.dumps({"rows": keep, "total_time": totals[0], "total_calls": totals[1],
                       "primitive_calls": totals[2], "note": note})
    out = sys.__stdout__
    out.write(MARK + text + MARK)
    out.flush()
'''.replace("MARK", repr(_MARK))

# Three short runs, so that the one running the user's code is a constant line: it stays
# readable in tracebacks and the kernel compiles it once.
_BOOTSTRAP = f"""\
import linecache, sys, types
m = types.ModuleType({_MODULE!r})
m.__file__ = {_HELPER_FILE!r}
linecache.cache[m.__file__] = (len(src), None, src.splitlines(True), m.__file__)
exec(compile(src, m.__file__, "exec", dont_inherit=True), m.__dict__)
sys.modules[{_MODULE!r}] = m
"""
_INSTALL = (f"if {_MODULE!r} not in __import__('sys').modules:\n"
            f"    exec({_BOOTSTRAP!r}, {{'src': {_HELPER!r}}})\n")
_HAND_OVER = f"__import__('sys').modules[{_MODULE!r}].pending = "
_RUN = f"__import__('sys').modules[{_MODULE!r}].run(globals())"
_DUMP = f"__import__('sys').modules[{_MODULE!r}].dump({_SANDBOX_ROWS})"
_HOUSEKEEPING_TIMEOUT = 60.0

_locks: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock_for(sandbox: Any) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(sandbox)
        if lock is None:
            lock = _locks[sandbox] = threading.Lock()
        return lock


def _parse_dump(stdout: str, truncated: bool) -> Optional[ProfileReport]:
    start = stdout.find(_MARK)
    end = stdout.rfind(_MARK)
    if start < 0 or end <= start:
        if truncated:
            return ProfileReport((), 0.0, 0, 0, "the profile did not fit in the sandbox's output "
                                                "limit (Limits.output_bytes)")
        return None
    return ProfileReport.from_dict(json.loads(stdout[start + len(_MARK):end]))


def run_profiled(sandbox: "Sandbox", code: Union[str, bytes], timeout: Optional[float],
                 on_stdout: Optional[Callable[[str], None]],
                 on_stderr: Optional[Callable[[str], None]]) -> ProfiledResult:
    """Sandbox.run(code, profile=True): runs `code` under cProfile inside the sandbox.

    Three executions: one installs the helper (once per sandbox) and hands the code over, one
    runs it (its result is returned, value semantics unchanged), one fetches the profile.
    """
    from .._code import check_timeout, encode_code
    from ..errors import FaasError
    source = encode_code(code).decode("utf-8")
    check_timeout(timeout)  # refuse a bad timeout before anything runs
    with _lock_for(sandbox):
        setup = sandbox.run(_INSTALL + _HAND_OVER + repr(source), timeout=_HOUSEKEEPING_TIMEOUT)
        if not setup.success:
            raise FaasError(f"could not set up profiling in sandbox {sandbox.id}: {setup.error}")
        result = sandbox.run(_RUN, timeout=timeout, on_stdout=on_stdout, on_stderr=on_stderr)
        report = None
        if result.outcome == "completed" and sandbox.alive:
            dumped = sandbox.run(_DUMP, timeout=_HOUSEKEEPING_TIMEOUT)
            if dumped.success:
                report = _parse_dump(dumped.stdout, dumped.output_truncated)
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(ExecutionResult)}
    return ProfiledResult(**fields, profile=report)
