#include "core/isolation/privileges.hpp"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace faas::isolation {
namespace {
constexpr const char* kStep = "capabilities";
}

namespace {

StepResult empty_bounding_and_ambient_sets() {
  // The bounding set first: dropping from it needs CAP_SETPCAP, which goes away below.
  for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return StepResult::fail(kStep, "prctl(PR_CAPBSET_DROP)", errno);
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return StepResult::fail(kStep, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno);
  return StepResult::success();
}

StepResult clear_capability_sets() {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capset, &header, data) != 0) return StepResult::fail(kStep, "capset(0)", errno);
  return StepResult::success();
}

}  // namespace

StepResult drop_capabilities() {
  if (auto r = empty_bounding_and_ambient_sets(); !r.ok) return r;
  return clear_capability_sets();
}

StepResult drop_privileges(int uid, int gid) {
  if (auto r = empty_bounding_and_ambient_sets(); !r.ok) return r;
  // uid 0 must never mean capabilities again (not at exec, not at a uid change).
  unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                       SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) return StepResult::fail(kStep, "prctl(PR_SET_SECUREBITS)", errno);
  if (gid >= 0) {
    if (::setgroups(0, nullptr) != 0) return StepResult::fail(kStep, "setgroups(0)", errno);
    if (::setresgid(gid, gid, gid) != 0) return StepResult::fail(kStep, "setresgid", errno);
  }
  if (uid >= 0 && ::setresuid(uid, uid, uid) != 0) return StepResult::fail(kStep, "setresuid", errno);
  // A uid change already cleared them; inside a user namespace (no change) do it explicitly.
  if (auto r = clear_capability_sets(); !r.ok) return r;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return StepResult::fail(kStep, "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  return StepResult::success();
}

}  // namespace faas::isolation
