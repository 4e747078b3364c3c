"""Escape attempts from SECURE and CONTAINER sandboxes, each asserting the errno, signal or
sentinel that proves it was stopped (design.md §6); the same attempts from a LOCAL sandbox show
that LOCAL isolates nothing (trusted code only).

Each attempt is a function body run inside the sandbox. It returns "ok" when the attempt
succeeded, the errno's name when it raised OSError, or a sentinel string. `$names` are filled
in from the scene: a sibling sandbox holding secrets, the host's pid, a listening host socket.
Attempts that would harm the host when they succeed (writing /usr, changing the hostname,
bringing up a host interface), or that this machine's kernel refuses even to root, are made
from SECURE only.
"""

from __future__ import annotations

import ast
import os
import platform
import socket
import string
import textwrap
from dataclasses import dataclass
from typing import Optional

import pytest

from faas_sdk import ExecutionPlatform, Limits, Mode
from faas_sdk._isolation import container_unavailable_reason, secure_unavailable_reason

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="system call numbers are x86-64's")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOT_BLOCKED = "!blocked"  # LOCAL expectation: the call reached the kernel (not EPERM/ENOSYS/EACCES)
# LOCAL expectation where this machine refuses even root (its kernel has no module loading or
# kexec, and root here lacks CAP_SYS_RESOURCE), so LOCAL cannot show the difference.
KERNEL_REFUSES_ROOT = None
AS_SECURE = "=secure"  # CONTAINER expectation: the same as SECURE's

PRELUDE = """
import ctypes, errno, os, resource, socket, stat, subprocess
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def _sys(nr, *args):
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
"""


@dataclass(frozen=True)
class Attempt:
    name: str
    body: str
    secure: Optional[str]         # what SECURE must answer (None: not attempted from SECURE)
    local: Optional[str]          # what LOCAL answers (None: not attempted from LOCAL)
    container: Optional[str] = AS_SECURE  # what CONTAINER must answer

    def expected(self, mode: Mode) -> Optional[str]:
        if mode is Mode.CONTAINER:
            return self.secure if self.container == AS_SECURE else self.container
        return self.secure if mode is Mode.SECURE else self.local


ATTEMPTS = [
    # ---- host files ------------------------------------------------------------------------
    Attempt("read /etc/shadow", "open('/etc/shadow').read(1)", "ENOENT", "ok"),
    Attempt("list /root", "os.listdir('/root')", "EACCES", "ok"),
    Attempt("read a file in /root", "open('/root/.profile').read(1)", "ENOENT", "ok"),
    Attempt("read the project's own source", "open('$repo/python/faas_sdk/platform.py').read(1)", "ENOENT", "ok"),
    Attempt("list the root directory", "os.listdir('/')", "EACCES", "ok"),
    Attempt("write under /usr", "open('/usr/lib/faas-escape', 'w')", "EROFS", None),
    Attempt("write in the root directory", "open('/faas-escape', 'w')", "EROFS", None),
    Attempt("write the kernel's own code", "open('$repo/python/faas_sdk/_kernel/kernel.py', 'a')", "EACCES", None),
    Attempt("write in a host temporary directory", "open('$host_tmp/escape', 'w')", "ENOENT", "ok"),
    Attempt("symlink out of the workdir", "os.symlink('/etc/shadow', 'link'); open('link').read(1)", "ENOENT", "ok"),
    Attempt("symlink into a sibling's workdir",
            "os.symlink('$sibling_workdir/secret.txt', 'link'); return open('link').read()", "ENOENT", "s3cret"),
    Attempt("hardlink a host file into the workdir", "os.link('/usr/bin/env', 'hardlink')", "EXDEV", "ok"),
    Attempt("hardlink /tmp into the workdir", "open('/tmp/a', 'w').close(); os.link('/tmp/a', 'hardlink')",
            "EXDEV", None),
    Attempt("read a sibling's workdir", "return open('$sibling_workdir/secret.txt').read()", "ENOENT", "s3cret"),
    Attempt("list the directory of workdirs",
            "names = os.listdir(os.path.dirname(os.getcwd()))\n"
            "return 'only its own' if names == [os.path.basename(os.getcwd())] else 'others too'",
            "only its own", "others too"),
    Attempt("read a host process's /proc", "open('/proc/1/cmdline').read(1)", "ENOENT", "ok"),
    Attempt("read a sibling's memory through /proc", "open('/proc/$sibling_pid/mem', 'rb')", "ENOENT", "ok"),
    Attempt("read a sibling's /proc by the pid it has in its own namespace",
            "open('/proc/$sibling_own_pid/environ', 'rb').read(1)", "ENOENT", "ok"),
    Attempt("see other processes in /proc",
            "pids = [n for n in os.listdir('/proc') if n.isdigit()]\n"
            "return 'only its own' if pids == [str(os.getpid())] else 'others too'",
            "ENOENT", "others too", container="only its own"),
    Attempt("write a kernel setting under /proc/sys", "open('/proc/sys/kernel/hostname', 'w')",
            None, None, container="EROFS"),
    Attempt("drop the host's page cache", "open('/proc/sys/vm/drop_caches', 'w').write('3')", None, None,
            container="EROFS"),
    Attempt("open a host device", "open('/dev/kmsg', 'rb')", "ENOENT", None),
    Attempt("create a device node", "os.mknod('null2', stat.S_IFCHR | 0o600, os.makedev(1, 3))", "EPERM", "ok"),
    # ---- what it may read (wherever the interpreter is installed, /tmp included) ------------
    Attempt("import a package of the interpreter's environment", "import numpy\nreturn 'imported'", "imported", "imported"),
    # ---- network -----------------------------------------------------------------------------
    Attempt("TCP to a host port on 127.0.0.1", "socket.create_connection(('127.0.0.1', $port), timeout=2).close()",
            "EACCES", "ok"),
    Attempt("TCP to ::1", "socket.create_connection(('::1', $port), timeout=2).close()", "EACCES", None),
    Attempt("TCP to an external address", "socket.create_connection(('1.1.1.1', 80), timeout=2).close()",
            "EACCES", None),
    Attempt("UDP to 127.0.0.1", "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))",
            "ENETUNREACH", "ok"),
    Attempt("UDP to an external address",
            "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))", "ENETUNREACH", None),
    Attempt("raw socket", "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)", "EPERM", "ok"),
    Attempt("netlink: see the host's interfaces",
            "names = [n for _, n in socket.if_nameindex()]\nreturn 'only lo' if names == ['lo'] else 'host interfaces'",
            "only lo", "host interfaces"),
    Attempt("bring up loopback",
            "import fcntl, struct\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "fcntl.ioctl(s, 0x8914, struct.pack('16sH14x', b'lo', 1))", "EPERM", None),
    Attempt("connect to a sibling's abstract unix socket",
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(b'\\0$abstract_name')",
            "EPERM", "ok"),
    # ---- other processes -----------------------------------------------------------------------
    # (In CONTAINER the host's pid names no process at all: it is outside the pid namespace.)
    Attempt("signal the host", "os.kill($host_pid, 0)", "EPERM", "ok", container="ESRCH"),
    Attempt("signal a sibling sandbox", "os.kill($sibling_own_pid, 0)", "EPERM", "ok"),
    Attempt("signal the host through a pidfd", "fd = os.pidfd_open($host_pid)\nsignal_fd = _sys(424, fd, 0, 0, 0)\n"
            "return signal_fd", "EPERM", "ok", container="ESRCH"),
    Attempt("signal the container's init (the zygote)", "os.kill(1, 0)", None, None, container="EPERM"),
    Attempt("live in a pid namespace of its own",
            "return 'own pid namespace' if os.getppid() == 1 and os.getpid() < 65536 else 'host pid namespace'",
            "host pid namespace", "host pid namespace", container="own pid namespace"),
    Attempt("ptrace a sibling sandbox", "return _sys(101, 0x4206, $sibling_pid, 0, 0)", "EPERM", None),
    Attempt("read a sibling's memory (process_vm_readv)", "return _sys(310, $sibling_pid, 0, 0, 0, 0, 0)", "EPERM",
            NOT_BLOCKED),
    Attempt("SysV shared memory of a sibling", "return _sys(29, 0x5eed, 4096, 0o666)", "ENOENT", "ok"),
    # ---- the kernel's dangerous interfaces (seccomp, inside a real sandbox) ----------------------
    Attempt("mount", "return _sys(165, 1, 1, 1, 0, 0)", "EPERM", NOT_BLOCKED),
    Attempt("unshare a user namespace", "return _sys(272, 0x10000000 | 0x200)", "EPERM", None),
    # Exactly the flags a branch's set-up uses: the filter asks the engine, which refuses anyone
    # but a fresh child of one of its snapshot templates.
    Attempt("unshare the namespaces only branches are granted", "return _sys(272, 0x10000000 | 0x20000 | 0x8000000)",
            "EPERM", None),
    Attempt("setns", "return _sys(308, -1, 0)", "EPERM", NOT_BLOCKED),
    Attempt("chroot", "return _sys(161, 1)", "EPERM", NOT_BLOCKED),
    Attempt("pivot_root", "return _sys(155, 1, 1)", "EPERM", NOT_BLOCKED),
    Attempt("load a kernel module", "return _sys(313, -1, 1, 0)", "EPERM", KERNEL_REFUSES_ROOT),
    Attempt("bpf", "return _sys(321, -1, 0, 0)", "EPERM", NOT_BLOCKED),
    Attempt("keyctl", "return _sys(250, -1, 0, 0, 0, 0)", "EPERM", NOT_BLOCKED),
    Attempt("perf_event_open", "return _sys(298, 1, 0, -1, -1, 0)", "EPERM", NOT_BLOCKED),
    Attempt("userfaultfd", "return _sys(323, -1)", "EPERM", NOT_BLOCKED),
    Attempt("io_uring_setup", "return _sys(425, 0, 1)", "EPERM", NOT_BLOCKED),
    Attempt("kexec_load", "return _sys(246, 0, 0, 0, -1)", "EPERM", KERNEL_REFUSES_ROOT),
    Attempt("turn off address-space randomisation", "return _sys(135, 0x0040000)", "EPERM", None),
    Attempt("clone3 (flags out of the filter's sight)", "return _sys(435, 0, 0)", "ENOSYS", NOT_BLOCKED),
    # ---- privileges --------------------------------------------------------------------------
    Attempt("become root", "os.setuid(0)", "EPERM", "ok"),
    Attempt("set the hostname", "socket.sethostname('escaped')", "EPERM", None),
    Attempt("see the host's name", "return socket.gethostname()", None, None, container="sandbox"),
    Attempt("see the host's cgroup paths",
            "paths = {line.split(':', 2)[2].strip() for line in open('/proc/self/cgroup')}\n"
            "return 'host paths' if paths - {'/'} and not all(p.startswith('/faas_sdk-') for p in paths - {'/'}) "
            "else 'its own namespace'", None, None, container="its own namespace"),
    Attempt("hold capabilities",
            "header = (ctypes.c_uint32 * 2)(0x20080522, 0); data = (ctypes.c_uint32 * 6)()\n"
            "_libc.capget(header, data)\nreturn 'none' if not any(data) else 'some'", "none", "some"),
    Attempt("gain privileges from a setuid binary",
            "nnp = _libc.prctl(39, 0, 0, 0, 0)\nnosuid = os.statvfs('/usr/bin').f_flag & os.ST_NOSUID\n"
            "return 'setuid is inert' if nnp == 1 and nosuid else 'setuid works'", "setuid is inert", "setuid works"),
    Attempt("raise an rlimit", "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 1024))\n"
            "limit = (ctypes.c_ulong * 2)(2048, 2048)\n"
            "return 'ok' if _libc.setrlimit(7, limit) == 0 else errno.errorcode[ctypes.get_errno()]", "EPERM",
            KERNEL_REFUSES_ROOT),
    Attempt("read the host's environment",
            "return 'clean' if set(os.environ) <= $clean_environment else 'leaked'", "clean", "leaked"),
    Attempt("use a descriptor the host left open", "os.fstat($host_fd)", "EBADF", "EBADF"),
]


def wrap(body: str, scene: dict) -> str:
    filled = string.Template(body).substitute(scene)
    return PRELUDE + "def _attempt():\n" + textwrap.indent(filled, "    ") + "\n    return 'ok'\n" + textwrap.dedent("""
        try:
            _outcome = _attempt()
        except OSError as _exc:
            _outcome = errno.errorcode.get(_exc.errno, str(_exc.errno))
        _outcome
        """)


@pytest.fixture(scope="module")
def host_listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


# All a SECURE sandbox's environment holds: what the engine sets explicitly (zygote.cpp), the
# kernel's single-thread defaults for numeric libraries, and its own id.
CLEAN_ENVIRONMENT = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "GLIBC_TUNABLES",
                     "FAAS_SDK_SANDBOX_ID", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"}


@pytest.fixture(scope="module")
def escape_platform():
    leaked = open(os.devnull)  # an inheritable descriptor of the host's
    os.set_inheritable(leaked.fileno(), True)
    try:
        with ExecutionPlatform(warm_pool_size=1) as p:
            yield p, leaked.fileno()
    finally:
        leaked.close()


SIBLING_SETUP = """
import ctypes, socket
open('secret.txt', 'w').write('s3cret')
_abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
_abstract.bind(b'\\0' + {name!r}.encode())
_abstract.listen()
_libc = ctypes.CDLL(None, use_errno=True)
_shm = _libc.shmget(0x5eed, 4096, 0o1666)
assert _shm >= 0, ctypes.get_errno()
"""


@pytest.fixture(scope="module")
def scene(request, escape_platform, host_listener, tmp_path_factory, require_isolation):
    mode = request.param
    if mode is Mode.SECURE:
        require_isolation(secure_unavailable_reason())
    if mode is Mode.CONTAINER:
        require_isolation(container_unavailable_reason())
    p, host_fd = escape_platform
    abstract_name = f"faas-escape-{mode.value}-{os.getpid()}"
    sibling = p.create_sandbox(mode=mode)
    setup = sibling.run(SIBLING_SETUP.format(name=abstract_name))
    assert setup.success, setup.error
    yield mode, p, {
        "repo": REPO, "host_pid": os.getpid(), "port": host_listener, "host_fd": host_fd,
        "host_tmp": str(tmp_path_factory.mktemp("host")), "sibling_pid": sibling.pid,
        "sibling_workdir": sibling.workdir, "abstract_name": abstract_name,
        "sibling_own_pid": int(sibling.run("import os; os.getpid()").value),
        "clean_environment": repr(CLEAN_ENVIRONMENT),
    }
    sibling.run("_libc.shmctl(_shm, 0, None)")  # IPC_RMID: SysV segments outlive processes
    sibling.close()


def attempt_in(mode, p, scene_values, attempt: Attempt) -> str:
    with p.create_sandbox(mode=mode) as sb:
        result = sb.run(wrap(attempt.body, scene_values), timeout=20)
        assert result.success, result.error
        return ast.literal_eval(result.value)


CASES = [pytest.param(mode, a, id=f"{mode.name}-{a.name}")
         for mode in (Mode.SECURE, Mode.CONTAINER, Mode.LOCAL) for a in ATTEMPTS if a.expected(mode) is not None]


@pytest.mark.parametrize("scene, attempt", CASES, indirect=["scene"])
def test_escape(scene, attempt):
    mode, p, values = scene
    expected = attempt.expected(mode)
    outcome = attempt_in(mode, p, values, attempt)
    if expected == NOT_BLOCKED:
        assert outcome not in ("EPERM", "ENOSYS", "EACCES"), f"{attempt.name}: {outcome}"
    else:
        assert outcome == expected, f"{attempt.name} from {mode.name}: got {outcome}, expected {expected}"


@pytest.mark.parametrize("mode", [Mode.SECURE, Mode.CONTAINER])
def test_there_are_at_least_forty_escape_attempts(mode):
    assert len([a for a in ATTEMPTS if a.expected(mode) not in (None, NOT_BLOCKED)]) >= 40
