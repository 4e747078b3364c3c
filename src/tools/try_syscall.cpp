// faas-try-syscall: the errno oracle of the security tests (after bubblewrap's try-syscall).
//   faas-try-syscall <none|secure> <name>
// Applies the given profile to itself, then makes system call <name> with arguments the kernel
// rejects, and exits with the errno (0 if it succeeded). EPERM/ENOSYS: the filter stopped it;
// EFAULT, EBADF, EINVAL, ESRCH...: it reached the kernel, which refused the arguments.
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <string>

#include "core/isolation/seccomp_filter.hpp"
#include "core/isolation/seccomp_policy.hpp"

namespace {

long call(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  return ::syscall(nr, a, b, c, d, e, f);
}

constexpr long kBadPointer = 1;  // never mapped: EFAULT if the kernel dereferences it

const std::map<std::string, std::function<long()>>& attempts() {
  static const std::map<std::string, std::function<long()>> table = {
      {"ptrace", [] { return call(SYS_ptrace, -1, -1); }},
      {"process_vm_readv", [] { return call(SYS_process_vm_readv, -1, 0, 0, 0, 0, 1); }},
      {"process_vm_writev", [] { return call(SYS_process_vm_writev, -1, 0, 0, 0, 0, 1); }},
      {"kcmp", [] { return call(SYS_kcmp, -1, -1, -1, 0, 0); }},
      {"mount", [] { return call(SYS_mount, kBadPointer, kBadPointer, kBadPointer, 0, 0); }},
      {"umount2", [] { return call(SYS_umount2, kBadPointer, 0); }},
      {"pivot_root", [] { return call(SYS_pivot_root, kBadPointer, kBadPointer); }},
      {"move_mount", [] { return call(SYS_move_mount, -1, kBadPointer, -1, kBadPointer, 0); }},
      {"open_tree", [] { return call(SYS_open_tree, -1, kBadPointer, 0); }},
      {"fsopen", [] { return call(SYS_fsopen, kBadPointer, 0); }},
      {"fsconfig", [] { return call(SYS_fsconfig, -1, 0, 0, 0, 0); }},
      {"fsmount", [] { return call(SYS_fsmount, -1, 0, 0); }},
      {"fspick", [] { return call(SYS_fspick, -1, kBadPointer, 0); }},
      {"mount_setattr", [] { return call(SYS_mount_setattr, -1, kBadPointer, 0, 0, 0); }},
      {"chroot", [] { return call(SYS_chroot, kBadPointer); }},
      {"setns", [] { return call(SYS_setns, -1, 0); }},
      // Namespace flags plus CLONE_FS, which the kernel refuses together with CLONE_NEWNS.
      {"unshare", [] { return call(SYS_unshare, CLONE_NEWNS | CLONE_FS); }},
      // The branch flags exactly: a user notification, which nobody answers here (ENOSYS).
      {"unshare_branch_flags", [] { return call(SYS_unshare, faas::isolation::kBranchNamespaceFlags); }},
      {"clone_newuser", [] { return call(SYS_clone, CLONE_NEWUSER | CLONE_FS | CLONE_NEWNS, 0, 0, 0, 0); }},
      {"clone3", [] { return call(SYS_clone3, 0, 0); }},
      {"kexec_load", [] { return call(SYS_kexec_load, 0, 0, 0, -1); }},
      {"kexec_file_load", [] { return call(SYS_kexec_file_load, -1, -1, 0, 0, -1); }},
      {"init_module", [] { return call(SYS_init_module, kBadPointer, 16, kBadPointer); }},
      {"finit_module", [] { return call(SYS_finit_module, -1, kBadPointer, 0); }},
      {"delete_module", [] { return call(SYS_delete_module, kBadPointer, 0); }},
      {"bpf", [] { return call(SYS_bpf, -1, 0, 0); }},
      {"perf_event_open", [] { return call(SYS_perf_event_open, kBadPointer, 0, -1, -1, 0); }},
      {"userfaultfd", [] { return call(SYS_userfaultfd, -1); }},
      {"io_uring_setup", [] { return call(SYS_io_uring_setup, 0, kBadPointer); }},
      {"io_uring_enter", [] { return call(SYS_io_uring_enter, -1, 0, 0, 0, 0, 0); }},
      {"io_uring_register", [] { return call(SYS_io_uring_register, -1, 0, 0, 0); }},
      {"keyctl", [] { return call(SYS_keyctl, -1, 0, 0, 0, 0); }},
      {"add_key", [] { return call(SYS_add_key, kBadPointer, kBadPointer, 0, 0, 0); }},
      {"request_key", [] { return call(SYS_request_key, kBadPointer, kBadPointer, 0, 0); }},
      {"iopl", [] { return call(SYS_iopl, 100); }},
      {"ioperm", [] { return call(SYS_ioperm, -1, 1, 1); }},
      {"reboot", [] { return call(SYS_reboot, 0, 0, 0, 0); }},
      {"swapon", [] { return call(SYS_swapon, kBadPointer, 0); }},
      {"swapoff", [] { return call(SYS_swapoff, kBadPointer); }},
      {"acct", [] { return call(SYS_acct, kBadPointer); }},
      {"settimeofday", [] { return call(SYS_settimeofday, kBadPointer, 0); }},
      {"clock_settime", [] { return call(SYS_clock_settime, -1, 0); }},
      {"clock_adjtime", [] { return call(SYS_clock_adjtime, -1, 0); }},
      {"adjtimex", [] { return call(SYS_adjtimex, kBadPointer); }},
      {"syslog", [] { return call(SYS_syslog, 9999, 0, 0); }},
      {"quotactl", [] { return call(SYS_quotactl, -1, 0, 0, 0); }},
      {"name_to_handle_at", [] { return call(SYS_name_to_handle_at, -1, kBadPointer, 0, 0, 0); }},
      {"open_by_handle_at", [] { return call(SYS_open_by_handle_at, -1, 0, 0); }},
      {"personality_no_aslr", [] { return call(SYS_personality, 0x0040000); }},
      // The kernel ignores the upper 32 bits: 1<<32 | ADDR_NO_RANDOMIZE must be denied too.
      {"personality_high_bits", [] { return call(SYS_personality, (1L << 32) | 0x0040000); }},
      {"personality_linux", [] { return call(SYS_personality, 0); }},
      // Allowed calls, which must still reach the kernel under the filter.
      {"read", [] { return call(SYS_read, -1, 0, 0); }},
      {"personality_query", [] { return call(SYS_personality, 0xffffffff) >= 0 ? 0 : -1; }},
      {"clone_plain", [] { return call(SYS_clone, CLONE_SIGHAND, 0, 0, 0, 0); }},  // EINVAL: no CLONE_VM
  };
  return table;
}

#if defined(__x86_64__)
// A 32-bit system call (getpid through int 0x80): another architecture to the filter.
long int80_getpid() {
  long ret;
  asm volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
  return ret < 0 ? (errno = static_cast<int>(-ret), -1) : 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: faas-try-syscall <none|secure> <name>\n");
    return 125;
  }
  std::string profile = argv[1], name = argv[2];
  std::function<long()> attempt;
#if defined(__x86_64__)
  if (name == "int80_getpid") attempt = int80_getpid;
#endif
  if (!attempt) {
    auto it = attempts().find(name);
    if (it == attempts().end()) {
      fprintf(stderr, "unknown system call %s\n", name.c_str());
      return 126;
    }
    attempt = it->second;
  }
  if (profile == "secure") {
    int err = faas::isolation::apply_seccomp_policy();
    if (err != 0) {
      fprintf(stderr, "cannot apply the policy: %s\n", strerror(err));
      return 127;
    }
  } else if (profile != "none") {
    fprintf(stderr, "unknown profile %s\n", profile.c_str());
    return 125;
  }
  errno = 0;
  return attempt() < 0 ? errno : 0;
}
