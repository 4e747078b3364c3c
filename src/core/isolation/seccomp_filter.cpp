#include "core/isolation/seccomp_filter.hpp"

#include <errno.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/isolation/seccomp_policy.hpp"

namespace faas::isolation {
namespace {

int add_policy_rules(scmp_filter_ctx ctx) {
  // A system call of another architecture (e.g. 32-bit int 0x80 on x86-64) kills the process.
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  for (const DeniedSyscall& entry : denied_syscalls()) {
    if (rc != 0) return rc;
    int nr = seccomp_syscall_resolve_name(entry.name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(entry.error), nr, 0);
  }
  // Flag arguments: one rule per dangerous bit (a rule compares each argument once).
  auto deny_bits = [&](int nr, uint64_t bits) {
    for (int bit = 0; rc == 0 && bit < 64; ++bit) {
      uint64_t flag = uint64_t{1} << bit;
      if (bits & flag)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    }
  };
  deny_bits(SCMP_SYS(clone), denied_namespace_flags());
  // Added before the per-bit denials, which would match it too: libseccomp lets the rule added
  // first win (tests/security/test_seccomp_policy.py checks that this one does).
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_EQ, kBranchNamespaceFlags));
  deny_bits(SCMP_SYS(unshare), denied_namespace_flags());
  // personality: everything below and above the query value (a rule compares an argument once).
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                          SCMP_A0(SCMP_CMP_LT, kPersonalityQuery));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                          SCMP_A0(SCMP_CMP_GT, kPersonalityQuery));
  return rc;
}

}  // namespace

int compile_seccomp_policy(SeccompProgram& program) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return ENOMEM;
  int rc = add_policy_rules(ctx);
  // libseccomp 2.5 exports only to a file descriptor: go through a memfd.
  int fd = rc == 0 ? ::memfd_create("faas-seccomp", MFD_CLOEXEC) : -1;
  if (rc == 0 && fd < 0) rc = -errno;
  if (rc == 0) rc = seccomp_export_bpf(ctx, fd);
  seccomp_release(ctx);
  if (rc == 0) {
    off_t size = ::lseek(fd, 0, SEEK_END);
    program.resize(static_cast<size_t>(size) / sizeof(sock_filter));
    if (::pread(fd, program.data(), static_cast<size_t>(size), 0) != size) rc = -EIO;
  }
  if (fd >= 0) ::close(fd);
  return rc < 0 ? -rc : rc;
}

StepResult load_seccomp_program(const SeccompProgram& program, int* listener) {
  sock_fprog prog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  unsigned flags = listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
  long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
  if (rc < 0) return StepResult::fail("seccomp", "seccomp(SECCOMP_SET_MODE_FILTER)", errno, "needs no_new_privs");
  if (listener) *listener = static_cast<int>(rc);
  return StepResult::success();
}

int apply_seccomp_policy() {
  SeccompProgram program;
  if (int err = compile_seccomp_policy(program)) return err;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  auto result = load_seccomp_program(program);
  return result.ok ? 0 : result.failure.error;
}

}  // namespace faas::isolation
