"""The sandbox side of faas_sdk: the kernel loop, and the entry point of a zygote.

Started by the broker as ``python -u kernel.py zygote <cwd>`` with its control socket on fd 3.
It never imports faas_sdk: a sandbox must not load the engine. The wire format mirrors
src/core/protocol/messages.hpp; docs/protocol.md describes both.
"""

import sys

# This directory is sys.path[0] only so that the helpers below import; user code must not see it.
_KERNEL_DIR = sys.path[0]
import _faas_branch  # noqa: E402
import _faas_fork_server  # noqa: E402
from _faas_wire import (FLAG_HAS_VALUE, FRAME_EXEC, FRAME_FATAL, FRAME_READY,  # noqa: E402
                        FRAME_RESULT, FRAME_SNAPSHOT, FRAME_SNAPSHOT_DONE, MARKER_PREFIX,
                        MARKER_STDERR, MARKER_STDOUT, RLIM_INFINITY_WIRE, STATUS_ERROR,
                        STATUS_OK, TOKEN_SIZE, HEADER, frame, wire_str)
sys.path.remove(_KERNEL_DIR)

import array  # noqa: E402
import ast  # noqa: E402
import builtins  # noqa: E402
import ctypes  # noqa: E402
import fcntl  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import linecache  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402,F401  (warm in the zygote: branches reseed it instead of importing it)
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

FIONREAD = 0x541B
PR_SET_PDEATHSIG = 1
MAX_VALUE_REPR = 1 << 20
MAX_MESSAGE = 64 << 10
MAX_TRACEBACK = 1 << 20
SINGLE_THREAD_DEFAULTS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                          "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
KERNEL_FILES = {__file__, _faas_branch.__file__, _faas_fork_server.__file__}

_libc = ctypes.CDLL(None, use_errno=True)
_faas_native = None  # set by main() when the native helper loads
# Set by main() in a zygote started by faas-isolate: the first sandbox uid (each sandbox gets
# that plus its pid as a uid of its own) or -1 (keep ours: an unprivileged host's user
# namespace); None for an unisolated (LOCAL) zygote.
_confine = None
ISOLATION_FAILED = 121  # exit status of a zygote that cannot isolate (as faas-isolate's)


class CellCompiler:
    """Compiles a cell like a notebook does: the last expression is evaluated separately so
    its value can be shown. Sources are registered with linecache for tracebacks."""

    def __init__(self) -> None:
        self.cells = itertools.count(1)
        self.cache: dict = {}

    def compile(self, source: str):
        hit = self.cache.get(source)
        if hit is not None:
            return hit
        filename = f"<cell-{next(self.cells)}>"
        tree = ast.parse(source, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
        body = compile(tree, filename, "exec") if tree.body else None
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        if len(self.cache) >= 512:
            self.cache.clear()
        self.cache[source] = (body, last)
        return body, last


class Kernel:
    """Executes cells in a persistent __main__ namespace; forks snapshot templates."""

    def __init__(self) -> None:
        self.rx = bytearray()
        self.chunk = bytearray(1 << 16)  # reused: recv(n) would allocate n bytes per call
        self.chunk_view = memoryview(self.chunk)
        self.in_user_code = False
        self.compiler = CellCompiler()
        self.templates: list = []  # our snapshot templates: children we must reap
        self.depth = 0  # how many branch levels this kernel's call stack holds
        # An isolated kernel's seccomp listener, until the engine has taken its copy (it names
        # the descriptor in READY, and sends nothing before it has): no user code may hold it.
        self.listener = -1
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        self.namespace = main.__dict__
        signal.signal(signal.SIGINT, self._on_sigint)
        self.attach()

    def attach(self) -> None:
        """Binds to the channels on fds 1-3 (after a fork, a branch's own ones)."""
        self.pid = os.getpid()
        self.sock = socket.socket(fileno=3)
        # Private duplicates of the output pipes: the end-of-output marker still goes through
        # if user code closes or redirects fd 1/2.
        self.out_fd = os.dup(1)
        self.err_fd = os.dup(2)
        self.rx.clear()
        self.templates = []

    def _on_sigint(self, signum, frame):
        # Interrupts (timeouts, host Ctrl-C) only ever stop user code, never the protocol.
        if self.in_user_code:
            raise KeyboardInterrupt

    def read_frame(self):
        while True:
            if len(self.rx) >= HEADER.size:
                length, frame_type, flags, _ = HEADER.unpack_from(self.rx)
                if len(self.rx) >= HEADER.size + length:
                    payload = bytes(self.rx[HEADER.size:HEADER.size + length])
                    del self.rx[:HEADER.size + length]
                    return frame_type, flags, payload
            try:
                n = self.sock.recv_into(self.chunk)
            except KeyboardInterrupt:
                continue
            if not n:
                os._exit(0)  # the engine closed the channel
            self.rx += self.chunk_view[:n]

    def serve(self, announce: bool = True) -> None:
        """The kernel loop. `announce=False`: READY was sent already (by _faas_native)."""
        if announce:
            self.sock.sendall(frame(FRAME_READY, struct.pack("<ii", os.getpid(), self.listener)))
        while True:
            frame_type, _, payload = self.read_frame()
            if self.listener >= 0:
                os.close(self.listener)
                self.listener = -1
            token = payload[:TOKEN_SIZE]
            if frame_type == FRAME_EXEC:
                self.execute(token, payload[TOKEN_SIZE:])
            elif frame_type == FRAME_SNAPSHOT:
                self.snapshot(payload[TOKEN_SIZE:])

    # ---- executions --------------------------------------------------------------------------

    def execute(self, token: bytes, code: bytes) -> None:
        started = time.perf_counter_ns()
        status, has_value = STATUS_OK, False
        value_repr = error_type = error_message = tb_text = ""
        try:
            source = code.decode("utf-8")
            body, last = self.compiler.compile(source)
            self.in_user_code = True
            try:
                if body is not None:
                    exec(body, self.namespace)
                value = eval(last, self.namespace) if last is not None else None
                if value is not None:
                    self.namespace["_"] = value
                    value_repr = repr(value)
                    has_value = True
            finally:
                self.in_user_code = False
        except BaseException as exc:  # user code may raise anything, SystemExit included
            self.in_user_code = False
            status = STATUS_ERROR
            error_type, error_message, tb_text = describe_exception(exc)
        elapsed = time.perf_counter_ns() - started
        if os.getpid() != self.pid:
            os._exit(0)  # a child the cell forked reached the end of the cell: only we reply
        if self.templates:
            self.reap_templates()  # released templates must not linger as zombies
        markers = self.end_output(token)
        self.reply(FRAME_RESULT, status, markers, elapsed, value_repr, error_type, error_message,
                   tb_text, FLAG_HAS_VALUE if has_value else 0)

    def reply(self, frame_type, status, markers, elapsed, value, error_type, message, tb, flags=0,
              fds=()) -> None:
        payload = b"".join((
            struct.pack("<BBHQ", status, markers, 0, elapsed),
            wire_str(value, MAX_VALUE_REPR),
            wire_str(error_type, 256),
            wire_str(message, MAX_MESSAGE),
            wire_str(tb, MAX_TRACEBACK),
        ))
        data = frame(frame_type, payload, flags)
        if fds:
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            if sent < len(data):
                self.sock.sendall(data[sent:])
        else:
            self.sock.sendall(data)

    def end_output(self, token: bytes) -> int:
        """Marks the end of this execution's output on each pipe that still holds unread bytes.

        An empty pipe means the engine has already read (and attributed) everything written so
        far, so no marker is needed; that keeps a silent execution to one write.
        """
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:
                pass
        markers = 0
        for bit, fd in ((MARKER_STDOUT, self.out_fd), (MARKER_STDERR, self.err_fd)):
            try:
                pending = struct.unpack("i", fcntl.ioctl(fd, FIONREAD, b"\0\0\0\0"))[0]
                if pending:
                    os.write(fd, MARKER_PREFIX + token)
                    markers |= bit
            except OSError:
                pass
        return markers

    # ---- snapshots and branches --------------------------------------------------------------

    def snapshot(self, paths: bytes) -> None:
        """Forks a frozen template of this kernel and hands its control socket to the engine.
        `paths`: the workdir, its frozen copy (the engine made it) and the scratch directory
        for branches' own layers, NUL-separated."""
        started = time.perf_counter_ns()
        try:
            workdir, layer, scratch = paths.decode("utf-8", "surrogateescape").split("\0")
        except ValueError:
            self.reply(FRAME_SNAPSHOT_DONE, STATUS_ERROR, 0, 0, "", "SnapshotError",
                       "malformed snapshot request", "")
            return
        self.reap_templates()
        threads = count_threads()
        if threads > 1:
            self.reply(FRAME_SNAPSHOT_DONE, STATUS_ERROR, 0, 0, "", "SnapshotError",
                       f"the kernel has {threads} threads ({threads - 1} started by user code); fork() "
                       "copies only the calling thread, so a snapshot would be corrupt. Join the "
                       "threads before taking a snapshot.", "")
            return
        engine_end, template_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        gc.freeze()  # collections in the template's branches then leave the shared heap alone
        pid = os.fork()
        if pid == 0:
            engine_end.close()
            self.become_template(template_end, workdir, layer, scratch)
        # Both sides move the template into its own process group (race-free either way), so
        # closing this kernel (a kill of its group) never takes the template with it.
        os.setpgid(pid, pid)
        gc.unfreeze()
        template_end.close()
        pidfd = os.pidfd_open(pid)
        self.templates.append(pid)
        try:
            self.reply(FRAME_SNAPSHOT_DONE, STATUS_OK, 0, time.perf_counter_ns() - started, str(pid),
                       "", "", "", fds=(engine_end.fileno(), pidfd))
        finally:
            engine_end.close()
            os.close(pidfd)

    def reap_templates(self) -> None:
        for pid in list(self.templates):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    self.templates.remove(pid)
            except ChildProcessError:
                self.templates.remove(pid)

    def become_template(self, ctrl: socket.socket, workdir: str, layer: str, scratch: str) -> None:
        """In the forked child: stop being a kernel, serve branch forks until released."""
        os.setpgid(0, 0)  # out of the kernel's process group (the parent does it too)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        self.sock.detach()
        for fd in (3, self.out_fd, self.err_fd):
            os.close(fd)
        self.templates = []
        self.template_ctrl = ctrl
        self.branch_layout = (workdir, layer)
        if _confine is None:  # an isolated template may not; the engine mounts for its branches
            _faas_branch.prepare_template_namespace()
        self.fork_server = _faas_fork_server.ForkServer(ctrl, self._template_child,
                                                        private_root=scratch)
        self.fork_server.announce("template")
        if _faas_native is not None and (_confine is not None or _faas_branch.template_namespace_ready()):
            # Returns only in a branch, once the engine has sent it its first frame.
            request = _faas_native.serve_forks(ctrl.fileno(), scratch, workdir, layer, _confine is not None)
            self._become_native_branch(request)
            self.serve(announce=False)
        self.fork_server.serve()
        os._exit(0)

    def _mount_branch_workdir(self) -> None:
        """This child's own copy-on-write view of the workdir, at the workdir's path."""
        workdir, layer = self.branch_layout
        _faas_branch.mount_private_workdir(workdir, layer, self.fork_server.private_dir(os.getpid()))

    def _template_child(self, request, template_pid: int) -> None:
        # Run on from here rather than unwinding to serve(): unwinding touches (and so copies)
        # every frame and object on the way, which costs a fresh fork more than the call.
        self._enter_next_level()
        self.become_branch(request)
        self.serve()

    def _enter_next_level(self) -> None:
        # Each level of branch-of-branch nests a few frames; the limit is raised to match.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000 + 20 * self.depth))
        self.depth += 1

    def become_branch(self, request) -> None:
        """In a child of a template served by the Python fork server (no _faas_native, or the
        template has no mount namespace of its own): a live kernel again, with the snapshot's
        state."""
        try:
            os.setsid()  # its own process group, like every sandbox: close() kills the group
            template_ctrl = self.template_ctrl.detach()
            install_channels(request.fds)
            os.close(template_ctrl)
        except BaseException:
            os._exit(70)
        sock = socket.socket(fileno=3)
        try:
            self._mount_branch_workdir()
            os.chdir(request.workdir)
            _faas_branch.reopen_regular_files(keep={0, 1, 2, 3})
            apply_rlimits(request)
        except BaseException as exc:
            fatal(sock, exc)
        sock.detach()
        self._finish_branch(request.sandbox_id, request.env, request.seed)

    def _become_native_branch(self, request) -> None:
        """The Python half of a branch made by _faas_native.serve_forks, run at its first frame:
        C has done the session, channels, workdir view and rlimits, and said READY. `request`:
        (sandbox id, environment, seed)."""
        self.template_ctrl.detach()  # C closed it
        self._enter_next_level()
        self._finish_branch(*request)

    def _finish_branch(self, sandbox_id: str, env, seed) -> None:
        """Both paths end here: its environment, fresh randomness, then the kernel loop's own
        view of the channels (fd 3 onwards)."""
        try:
            apply_environment(env, sandbox_id)
            _faas_branch.reseed(seed)
            self.attach()
        except BaseException as exc:
            fatal(socket.socket(fileno=3), exc)


def count_threads() -> int:
    """This process's threads: from /proc, or, where there is none (SECURE), the threads
    Python knows of (a kernel's C libraries are held to one thread, see main())."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return len(sys._current_frames())


def install_channels(fds) -> None:
    """Puts the engine's data socket on fd 3 and the output pipes on fds 1 and 2."""
    # Move them out of the way first: a received descriptor may itself be 1, 2 or 3.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
    for fd in fds:
        os.close(fd)
    sock_fd, out_fd, err_fd = high
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.dup2(sock_fd, 3, inheritable=False)
    for fd in high:
        os.close(fd)


def apply_environment(env, sandbox_id: str) -> None:
    os.environ.update(env)
    os.environ["FAAS_SDK_SANDBOX_ID"] = sandbox_id


def apply_rlimits(request) -> None:
    for res, limit in request.rlimits:
        value = resource.RLIM_INFINITY if limit == RLIM_INFINITY_WIRE else limit
        # For CPU time the hard limit is one second later, so the soft limit's SIGXCPU
        # (not a bare SIGKILL) tells the user which limit ended the sandbox.
        hard = value + 1 if res == resource.RLIMIT_CPU and value != resource.RLIM_INFINITY else value
        resource.setrlimit(res, (value, hard))


def fatal(sock: socket.socket, exc: BaseException) -> None:
    """Tells the engine why this kernel cannot start, then exits."""
    try:
        sock.sendall(frame(FRAME_FATAL, wire_str(f"{type(exc).__name__}: {exc}", 4096)))
    finally:
        os._exit(71)


def describe_exception(exc: BaseException):
    """(type name, message, traceback text) with the kernel's own frames left out."""
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    try:
        if isinstance(exc, SyntaxError):
            text = "".join(traceback.format_exception_only(type(exc), exc))
        else:
            # The kernel's own frames (the exec call, the SIGINT handler) are noise to the user.
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename not in KERNEL_FILES]
            text = "".join(["Traceback (most recent call last):\n"]
                           + traceback.format_list(frames)
                           + traceback.format_exception_only(type(exc), exc))
    except Exception:
        text = f"{type(exc).__name__}: {message}\n"
    return type(exc).__name__, message, text


def warm_up() -> None:
    """Runs the kernel's code paths once in the zygote, so every forked kernel inherits them
    warm (lazy imports, compiler state) instead of paying for them in its first cell."""
    namespace: dict = {"__name__": "__warmup__"}
    body, last = CellCompiler().compile("def f(x):\n    return [x] * 2\nf(21)")
    exec(body, namespace)
    repr(eval(last, namespace))
    try:
        exec(CellCompiler().compile("1 / 0")[1], namespace)
    except ZeroDivisionError as exc:
        describe_exception(exc)
    try:
        CellCompiler().compile("def broken(:")
    except SyntaxError as exc:
        describe_exception(exc)


def zygote_child(request, zygote_pid: int) -> None:
    """In a child of the zygote: a fresh kernel for a new sandbox. Never returns."""
    try:
        os.setsid()  # own session and process group: closing the sandbox kills the group
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote_pid:
            os._exit(0)
        install_channels(request.fds)
        os.closerange(4, 1 << 20)  # the zygote's control socket and anything else it held
        sock = socket.socket(fileno=3)
    except BaseException:
        os._exit(70)
    try:
        listener = -1
        if _confine is not None:
            listener = _faas_native.confine(request.workdir, _confine, request.loopback)
            # A change of uid clears the parent-death signal: set it again.
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != zygote_pid:
                os._exit(0)
        os.chdir(request.workdir)
        apply_environment(request.env, request.sandbox_id)
        apply_rlimits(request)
        sock.detach()
        kernel = Kernel()
        kernel.listener = listener
    except BaseException as exc:
        fatal(sock, exc)
    try:
        kernel.serve()
    finally:
        os._exit(0)


def load_native(directory: str):
    """_faas_native from the engine's build directory, or None (e.g. another Python version:
    the pure-Python steps then do the same work, only slower)."""
    sys.path.insert(0, directory)
    try:
        import _faas_native
        return _faas_native
    except ImportError:
        return None
    finally:
        sys.path.remove(directory)


def prepare_isolation() -> None:
    """In a zygote that faas-isolate started: compile the confinement its kernels apply."""
    global _confine
    confine = os.environ.pop("FAAS_SDK_CONFINE", None)
    readable = os.environ.pop("FAAS_SDK_CONFINE_PATHS", "").split("\n")
    if confine is None:
        return
    if _faas_native is None:
        sys.stderr.write("IsolationError: the native helper _faas_native did not load; isolated "
                         "sandboxes cannot be confined without it\n")
        os._exit(ISOLATION_FAILED)
    try:
        _faas_native.prepare_confinement([path for path in readable if path])
    except Exception as exc:
        sys.stderr.write(f"IsolationError: {exc}\n")
        os._exit(ISOLATION_FAILED)
    _confine = int(confine.partition(":")[2]) if confine.startswith("uid:") else -1


def main() -> None:
    global _faas_native
    if len(sys.argv) < 3 or sys.argv[1] != "zygote":
        sys.stderr.write("usage: kernel.py zygote <cwd> [native module directory]\n")
        sys.exit(2)
    if len(sys.argv) > 3 and sys.argv[3]:
        _faas_native = load_native(sys.argv[3])
    prepare_isolation()
    os.chdir(sys.argv[2])
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the broker
    # Numeric libraries start worker-thread pools at import, and a kernel with threads cannot be
    # snapshotted (fork copies one thread). Default them to one thread; an explicit setting wins.
    for variable in SINGLE_THREAD_DEFAULTS:
        os.environ.setdefault(variable, "1")
    if os.getppid() == 1:
        os._exit(0)
    # Kernels inherit these stream objects (unbuffered: started with -u); dup2 later points
    # fds 1 and 2 at each kernel's own pipes.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8", errors="backslashreplace")
    server = _faas_fork_server.ForkServer(socket.socket(fileno=3), zygote_child)
    warm_up()
    gc.collect()
    gc.freeze()  # forked kernels then do not dirty the shared heap when they collect
    server.announce(sys.version)
    server.serve()


if __name__ == "__main__":
    main()
