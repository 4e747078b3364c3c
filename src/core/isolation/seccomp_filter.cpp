#include "core/isolation/seccomp_filter.hpp"

#include <errno.h>
#include <seccomp.h>
#include <sys/prctl.h>

#include "core/isolation/seccomp_policy.hpp"

namespace faas::isolation {

int apply_seccomp_policy() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return ENOMEM;
  int rc = 0;
  // A system call of another architecture (e.g. 32-bit int 0x80 on x86-64) kills the process.
  rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  for (const DeniedSyscall& entry : denied_syscalls()) {
    if (rc != 0) break;
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
  deny_bits(SCMP_SYS(unshare), denied_namespace_flags());
  // personality: everything below and above the query value (a rule compares an argument once).
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                          SCMP_A0(SCMP_CMP_LT, kPersonalityQuery));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                          SCMP_A0(SCMP_CMP_GT, kPersonalityQuery));
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc < 0 ? -rc : rc;
}

}  // namespace faas::isolation
