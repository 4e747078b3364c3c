"""The SECURE profile's seccomp policy, proven with the errno oracle (design.md §6).

faas-try-syscall applies a profile to itself and makes one system call with arguments the
kernel rejects, exiting with the errno. Under the policy, a denied call must fail with its
configured errno (EPERM; ENOSYS for clone3 and for the branch flags' user notification); without it, the same call must reach the kernel
and fail differently (EFAULT, EBADF, EINVAL, ESRCH, ...; ENOSYS where this kernel lacks the
feature), which proves the filter, not the arguments, stopped it.

SECURE sandboxes load this policy (test_escapes.py makes the same calls from inside one).
"""

import errno
import os
import platform
import signal
import subprocess

import pytest

DENIED = {
    "ptrace": errno.EPERM, "process_vm_readv": errno.EPERM, "process_vm_writev": errno.EPERM,
    "kcmp": errno.EPERM,
    "mount": errno.EPERM, "umount2": errno.EPERM, "pivot_root": errno.EPERM,
    "move_mount": errno.EPERM, "open_tree": errno.EPERM, "fsopen": errno.EPERM,
    "fsconfig": errno.EPERM, "fsmount": errno.EPERM, "fspick": errno.EPERM,
    "mount_setattr": errno.EPERM, "chroot": errno.EPERM,
    "setns": errno.EPERM, "unshare": errno.EPERM, "clone_newuser": errno.EPERM,
    # unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC) exactly goes to the engine as a user
    # notification (branch_supervisor.hpp); with no listener, as here, the kernel says ENOSYS.
    # That it is not EPERM proves this rule, not the per-flag denials, decides the call.
    "unshare_branch_flags": errno.ENOSYS,
    "clone3": errno.ENOSYS,
    "kexec_load": errno.EPERM, "kexec_file_load": errno.EPERM, "init_module": errno.EPERM,
    "finit_module": errno.EPERM, "delete_module": errno.EPERM, "bpf": errno.EPERM,
    "perf_event_open": errno.EPERM, "userfaultfd": errno.EPERM,
    "io_uring_setup": errno.EPERM, "io_uring_enter": errno.EPERM, "io_uring_register": errno.EPERM,
    "keyctl": errno.EPERM, "add_key": errno.EPERM, "request_key": errno.EPERM,
    "iopl": errno.EPERM, "ioperm": errno.EPERM, "reboot": errno.EPERM,
    "swapon": errno.EPERM, "swapoff": errno.EPERM, "acct": errno.EPERM,
    "settimeofday": errno.EPERM, "clock_settime": errno.EPERM, "clock_adjtime": errno.EPERM,
    "adjtimex": errno.EPERM, "syslog": errno.EPERM, "quotactl": errno.EPERM,
    "name_to_handle_at": errno.EPERM, "open_by_handle_at": errno.EPERM,
    "personality_no_aslr": errno.EPERM, "personality_high_bits": errno.EPERM,
    "personality_linux": errno.EPERM,
}

# Allowed under the policy: they must still reach the kernel (same answer with and without).
ALLOWED = ["read", "clone_plain", "personality_query"]


def oracle() -> str:
    import faas_sdk._core as core
    return os.path.join(os.path.dirname(core.__file__), "faas-try-syscall")


def attempt(profile: str, name: str) -> int:
    return subprocess.run([oracle(), profile, name], capture_output=True, timeout=10).returncode


@pytest.mark.parametrize("name", sorted(DENIED))
def test_denied_call_is_stopped_by_the_filter(name):
    expected = DENIED[name]
    assert attempt("secure", name) == expected
    assert attempt("none", name) != expected, "without the filter the call must reach the kernel"


@pytest.mark.parametrize("name", ALLOWED)
def test_allowed_call_reaches_the_kernel(name):
    assert attempt("secure", name) == attempt("none", name)
    assert attempt("secure", name) not in (errno.EPERM, errno.ENOSYS)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="int 0x80 is x86 only")
def test_a_call_of_another_architecture_kills_the_process():
    assert attempt("none", "int80_getpid") == 0
    assert attempt("secure", "int80_getpid") == -signal.SIGSYS
