"""A fork server: the loop of a zygote (a warm interpreter) and of a snapshot template (a frozen
copy of a kernel). It forks one child per FORK request, reaps its children and reports their
wait status. What the child becomes is the caller's `become` function."""

import os
import signal
import socket
import struct
from dataclasses import dataclass
from typing import Callable, Optional

from _faas_wire import (CONTROL_BUFFER, FORK_CHILD_EXITED, FORK_DONE, FORK_LOOPBACK, FORK_REQUEST,
                        FORK_SERVER_READY, Reader, wire_str)


@dataclass
class ForkRequest:
    """What the engine asked for one new sandbox (see kZygoteFork in messages.hpp)."""
    fds: list               # data socket, stdout pipe, stderr pipe (write ends)
    sandbox_id: str
    workdir: str
    env: list
    rlimits: list
    seed: Optional[int]
    loopback: bool          # an isolated kernel: a network namespace of its own, lo up


def parse_fork_request(msg: bytes, fds: list) -> ForkRequest:
    r = Reader(msg)
    r.take("<B")
    r.take("<I")
    sandbox_id, workdir = r.str(), r.str()
    env = [(r.str(), r.str()) for _ in range(r.take("<I"))]
    rlimits = [(r.take("<I"), r.take("<Q")) for _ in range(r.take("<I"))]
    has_seed, seed = r.take("<B"), r.take("<Q")
    flags = r.take("<B")
    return ForkRequest(list(fds), sandbox_id, workdir, env, rlimits, seed if has_seed else None,
                       bool(flags & FORK_LOOPBACK))


class ForkServer:
    # Keeping a child forked and prepared ahead of requests was measured and dropped: on two
    # cores its preparation competes with the work it is meant to speed up (explore_parallel
    # 7 ms -> 13 ms, 1,000 branches 2 s -> 4 s) for ~0.4 ms off a lone branch.

    def __init__(self, ctrl: socket.socket, become: Callable[[ForkRequest, int], None],
                 private_root: Optional[str] = None) -> None:
        self.ctrl = ctrl
        # Each child's own directory is private_root/<pid> (a branch's layer); FORK_DONE names
        # it so the engine removes it with the sandbox. None: children have none.
        self.private_root = private_root
        self.become = become  # runs in the child; must not return normally
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
                self.ctrl.send(struct.pack("<Bii", FORK_CHILD_EXITED, pid, status))
            except OSError:
                pass

    def announce(self, detail: str) -> None:
        self.ctrl.send(struct.pack("<Bi", FORK_SERVER_READY, self.pid) + wire_str(detail, 4096))

    def serve(self) -> None:
        while True:
            msg, fds, _, _ = socket.recv_fds(self.ctrl, CONTROL_BUFFER, 8)
            if not msg:
                os._exit(0)  # the engine released us or is gone
            try:
                if msg[0] == FORK_REQUEST:
                    self.fork(msg, fds)
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def fork(self, msg: bytes, fds: list) -> None:
        request_id = Reader(msg[1:5]).take("<I") if len(msg) >= 5 else 0
        try:
            request = parse_fork_request(msg, fds)
        except ValueError as exc:
            self._done(request_id, -1, 22, f"malformed FORK request: {exc}")
            return
        if len(fds) != 3:
            self._done(request_id, -1, 22, "FORK needs three descriptors")
            return
        # SIGCHLD stays blocked until FORK_DONE is sent, so CHILD_EXITED never overtakes it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            try:
                pid = os.fork()
            except OSError as exc:
                self._done(request_id, -1, exc.errno or 0, f"fork: {exc.strerror}")
                return
            if pid == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                fds.clear()  # the child owns them now; the parent's finally must not close them
                self.become(request, self.pid)
                os._exit(70)  # `become` must not return
            pidfd = os.pidfd_open(pid)
            try:
                self._done(request_id, pid, 0, "", pidfd)
            finally:
                os.close(pidfd)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

    def private_dir(self, pid: int) -> str:
        return f"{self.private_root}/{pid}" if self.private_root else ""

    def _done(self, request_id: int, pid: int, err: int, message: str, pidfd: int = -1) -> None:
        msg = (struct.pack("<BIii", FORK_DONE, request_id, pid, err) + wire_str(message, 4096)
               + wire_str(self.private_dir(pid) if pid > 0 else "", 4096))
        socket.send_fds(self.ctrl, [msg], [pidfd] if pidfd >= 0 else [])
