"""The sandbox side of faas_sdk: a zygote that forks kernels, and the kernel loop itself.

Started by the broker as ``python kernel.py zygote <cwd>`` with its control socket on fd 3.
It never imports faas_sdk: a sandbox must not load the engine. The wire format mirrors
src/core/protocol/messages.hpp; docs/protocol.md describes both.
"""

import ast
import builtins
import ctypes
import fcntl
import gc
import itertools
import linecache
import os
import resource
import signal
import socket
import struct
import sys
import time
import traceback
import types

HEADER = struct.Struct("<IBBH")
FRAME_EXEC, FRAME_READY, FRAME_RESULT, FRAME_FATAL = 0x01, 0x81, 0x82, 0x83
ZYGOTE_FORK, ZYGOTE_READY, ZYGOTE_FORKED, ZYGOTE_EXITED = 0x01, 0x80, 0x81, 0x82
STATUS_OK, STATUS_ERROR = 0, 1
MARKER_STDOUT, MARKER_STDERR = 1, 2
FLAG_HAS_VALUE = 1
MARKER_PREFIX = b"\x1e\x1fFAAS-END:"
TOKEN_SIZE = 16
FIONREAD = 0x541B
PR_SET_PDEATHSIG = 1
RLIM_INFINITY_WIRE = (1 << 64) - 1
MAX_VALUE_REPR = 1 << 20
MAX_MESSAGE = 64 << 10
MAX_TRACEBACK = 1 << 20
CONTROL_BUFFER = 256 * 1024  # larger than the engine's 128 KiB control-message bound
KERNEL_FILE = os.path.abspath(__file__)

_libc = ctypes.CDLL(None, use_errno=True)


class Reader:
    """Bounds-checked little-endian reader for control messages."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("message truncated")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def str(self) -> str:
        n = self.take("<I")
        if self.pos + n > len(self.data):
            raise ValueError("message truncated")
        s = self.data[self.pos:self.pos + n].decode("utf-8", "surrogateescape")
        self.pos += n
        return s


def _wire_str(s: str, limit: int) -> bytes:
    b = s.encode("utf-8", "backslashreplace")
    if len(b) > limit:
        b = b[:limit] + b"...[truncated]"
    return struct.pack("<I", len(b)) + b


# --------------------------------------------------------------------------------------------
# Kernel: executes cells in a persistent __main__ namespace.

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
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rx = bytearray()
        self.chunk = bytearray(1 << 16)  # reused: recv(n) would allocate n bytes per call
        self.chunk_view = memoryview(self.chunk)
        self.in_user_code = False
        self.pid = os.getpid()
        self.compiler = CellCompiler()
        # Private duplicates of the output pipes: the end-of-output marker still goes through
        # if user code closes or redirects fd 1/2.
        self.out_fd = os.dup(1)
        self.err_fd = os.dup(2)
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        self.namespace = main.__dict__
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame):
        # Interrupts (timeouts, host Ctrl-C) only ever stop user code, never the protocol.
        if self.in_user_code:
            raise KeyboardInterrupt

    def send_frame(self, frame_type: int, payload: bytes, flags: int = 0) -> None:
        self.sock.sendall(HEADER.pack(len(payload), frame_type, flags, 0) + payload)

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

    def serve(self) -> None:
        self.send_frame(FRAME_READY, struct.pack("<i", os.getpid()))
        while True:
            frame_type, flags, payload = self.read_frame()
            if frame_type == FRAME_EXEC:
                token = payload[:TOKEN_SIZE]
                self.execute(token, payload[TOKEN_SIZE:])

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
        markers = self.end_output(token)
        payload = b"".join((
            struct.pack("<BBHQ", status, markers, 0, elapsed),
            _wire_str(value_repr, MAX_VALUE_REPR),
            _wire_str(error_type, 256),
            _wire_str(error_message, MAX_MESSAGE),
            _wire_str(tb_text, MAX_TRACEBACK),
        ))
        self.send_frame(FRAME_RESULT, payload, FLAG_HAS_VALUE if has_value else 0)

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


def warm_up() -> None:
    """Runs the kernel's code paths once in the zygote, so every forked kernel inherits them
    warm (lazy imports, codec and compiler state) instead of paying for them in its first cell."""
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
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != KERNEL_FILE]
            text = "".join(["Traceback (most recent call last):\n"]
                           + traceback.format_list(frames)
                           + traceback.format_exception_only(type(exc), exc))
    except Exception:
        text = f"{type(exc).__name__}: {message}\n"
    return type(exc).__name__, message, text


# --------------------------------------------------------------------------------------------
# Zygote: forks one kernel per FORK request, reaps them and reports their wait status.

class Zygote:
    def __init__(self, ctrl: socket.socket) -> None:
        self.ctrl = ctrl
        self.pid = os.getpid()
        signal.signal(signal.SIGCHLD, self._reap)

    def _reap(self, signum, frame) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            try:
                self.ctrl.send(struct.pack("<Bii", ZYGOTE_EXITED, pid, status))
            except OSError:
                pass

    def serve(self) -> None:
        # Kernels inherit these stream objects (unbuffered: started with -u); dup2 later points
        # fds 1 and 2 at each kernel's own pipes.
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")
        warm_up()
        gc.collect()
        gc.freeze()  # forked kernels then do not dirty the shared heap when they collect
        self.ctrl.send(struct.pack("<Bi", ZYGOTE_READY, self.pid) + _wire_str(sys.version, 4096))
        while True:
            msg, fds, _, _ = socket.recv_fds(self.ctrl, CONTROL_BUFFER, 8)
            if not msg:
                os._exit(0)  # the engine is gone
            try:
                if msg[0] == ZYGOTE_FORK:
                    self.fork(msg, fds)
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def fork(self, msg: bytes, fds: list) -> None:
        r = Reader(msg)
        r.take("<B")
        request = r.take("<I")
        try:
            sandbox_id = r.str()
            workdir = r.str()
            env = [(r.str(), r.str()) for _ in range(r.take("<I"))]
            rlimits = [(r.take("<I"), r.take("<Q")) for _ in range(r.take("<I"))]
        except ValueError as exc:
            self._forked(request, -1, 22, f"malformed FORK request: {exc}")
            return
        if len(fds) != 3:
            self._forked(request, -1, 22, "FORK needs three descriptors")
            return
        # SIGCHLD stays blocked until FORKED is sent, so EXITED can never overtake it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            try:
                pid = os.fork()
            except OSError as exc:
                self._forked(request, -1, exc.errno or 0, f"fork: {exc.strerror}")
                return
            if pid == 0:
                become_kernel(self.ctrl, self.pid, fds, sandbox_id, workdir, env, rlimits)
            pidfd = os.pidfd_open(pid)
            try:
                self._forked(request, pid, 0, "", pidfd)
            finally:
                os.close(pidfd)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

    def _forked(self, request: int, pid: int, err: int, message: str, pidfd: int = -1) -> None:
        msg = struct.pack("<BIii", ZYGOTE_FORKED, request, pid, err) + _wire_str(message, 4096)
        socket.send_fds(self.ctrl, [msg], [pidfd] if pidfd >= 0 else [])


def become_kernel(ctrl, zygote_pid, fds, sandbox_id, workdir, env, rlimits) -> None:
    """Runs in the freshly forked child; never returns."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.setsid()  # own session and process group: closing the sandbox kills the group
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote_pid:
            os._exit(0)
        ctrl.detach()  # its fd is closed below; the object must not close a reused number
        sock_fd, out_fd, err_fd = fds
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(sock_fd, 3, inheritable=False)
        os.closerange(4, 1 << 20)
        sock = socket.socket(fileno=3)
    except BaseException:
        os._exit(70)
    try:
        os.chdir(workdir)
        os.environ.update(env)
        os.environ["FAAS_SDK_SANDBOX_ID"] = sandbox_id
        for res, limit in rlimits:
            value = resource.RLIM_INFINITY if limit == RLIM_INFINITY_WIRE else limit
            # For CPU time the hard limit is one second later, so the soft limit's SIGXCPU
            # (not a bare SIGKILL) tells the user which limit ended the sandbox.
            hard = value + 1 if res == resource.RLIMIT_CPU and value != resource.RLIM_INFINITY else value
            resource.setrlimit(res, (value, hard))
        kernel = Kernel(sock)
    except BaseException as exc:
        try:
            payload = _wire_str(f"{type(exc).__name__}: {exc}", 4096)
            sock.sendall(HEADER.pack(len(payload), FRAME_FATAL, 0, 0) + payload)
        finally:
            os._exit(71)
    try:
        kernel.serve()
    finally:
        os._exit(0)


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "zygote":
        sys.stderr.write("usage: kernel.py zygote <cwd>\n")
        sys.exit(2)
    os.chdir(sys.argv[2])
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the broker
    if os.getppid() == 1:
        os._exit(0)
    ctrl = socket.socket(fileno=3)
    Zygote(ctrl).serve()


if __name__ == "__main__":
    main()
