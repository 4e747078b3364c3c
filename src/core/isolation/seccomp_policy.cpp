// The SECURE profile's seccomp policy. Default: allow. Every entry here is denied with the
// errno shown; system calls of another architecture kill the process (see seccomp_filter.cpp).
#include "core/isolation/seccomp_policy.hpp"

#include <errno.h>
#include <sched.h>

namespace faas::isolation {
namespace {

constexpr DeniedSyscall kDenied[] = {
    // Inspecting or changing other processes.
    {"ptrace", EPERM, "read or control another process"},
    {"process_vm_readv", EPERM, "read another process's memory"},
    {"process_vm_writev", EPERM, "write another process's memory"},
    {"kcmp", EPERM, "compare kernel objects of other processes"},
    // The file-system tree: mounts belong to the engine, never to a sandbox.
    {"mount", EPERM, "mount a file system"},
    {"umount2", EPERM, "unmount a file system"},
    {"pivot_root", EPERM, "change the root mount"},
    {"move_mount", EPERM, "new mount API"},
    {"open_tree", EPERM, "new mount API"},
    {"fsopen", EPERM, "new mount API"},
    {"fsconfig", EPERM, "new mount API"},
    {"fsmount", EPERM, "new mount API"},
    {"fspick", EPERM, "new mount API"},
    {"mount_setattr", EPERM, "new mount API"},
    {"chroot", EPERM, "change the root directory"},
    // Namespaces: creating or joining any.
    {"setns", EPERM, "join another namespace"},
    // clone3 passes its flags in memory, where a filter cannot read them: ENOSYS makes glibc
    // fall back to clone(2), whose flags are checked (see denied_namespace_flags()).
    {"clone3", ENOSYS, "namespace flags hidden from the filter"},
    // The kernel itself.
    {"kexec_load", EPERM, "load a new kernel"},
    {"kexec_file_load", EPERM, "load a new kernel"},
    {"init_module", EPERM, "load a kernel module"},
    {"finit_module", EPERM, "load a kernel module"},
    {"delete_module", EPERM, "unload a kernel module"},
    {"bpf", EPERM, "load eBPF programs"},
    {"perf_event_open", EPERM, "performance counters: side channels, kernel attack surface"},
    {"userfaultfd", EPERM, "stall the kernel on page faults (exploit aid)"},
    {"io_uring_setup", EPERM, "io_uring: large attack surface, bypasses this filter"},
    {"io_uring_enter", EPERM, "io_uring"},
    {"io_uring_register", EPERM, "io_uring"},
    // Keys, hardware, the machine.
    {"keyctl", EPERM, "the kernel keyring"},
    {"add_key", EPERM, "the kernel keyring"},
    {"request_key", EPERM, "the kernel keyring"},
    {"iopl", EPERM, "raw I/O port access"},
    {"ioperm", EPERM, "raw I/O port access"},
    {"reboot", EPERM, "reboot the machine"},
    {"swapon", EPERM, "enable swap"},
    {"swapoff", EPERM, "disable swap"},
    {"acct", EPERM, "process accounting"},
    {"settimeofday", EPERM, "set the clock"},
    {"clock_settime", EPERM, "set the clock"},
    {"clock_adjtime", EPERM, "adjust the clock"},
    {"adjtimex", EPERM, "adjust the clock"},
    {"syslog", EPERM, "read the kernel log"},
    {"quotactl", EPERM, "disk quotas"},
    {"nfsservctl", EPERM, "the kernel NFS server"},
    {"lookup_dcookie", EPERM, "profiling internals"},
    {"vhangup", EPERM, "hang up terminals"},
    {"name_to_handle_at", EPERM, "file handles: open_by_handle_at escapes"},
    {"open_by_handle_at", EPERM, "open files by handle, bypassing paths (container escape)"},
};

}  // namespace

std::span<const DeniedSyscall> denied_syscalls() { return kDenied; }



uint64_t denied_namespace_flags() {
  return CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
         CLONE_NEWCGROUP | 0x00000080 /* CLONE_NEWTIME */;
}

}  // namespace faas::isolation
