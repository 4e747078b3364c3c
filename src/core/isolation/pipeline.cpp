#include "core/isolation/pipeline.hpp"

#include <errno.h>

#include "core/isolation/landlock.hpp"
#include "core/isolation/network.hpp"
#include "core/isolation/private_mounts.hpp"
#include "core/isolation/privileges.hpp"
#include "core/isolation/root_filesystem.hpp"
#include "core/isolation/user_namespace.hpp"

namespace faas::isolation {

namespace {
constexpr int kFirstSandboxUid = 200000;  // above the uids distributions hand out
}

StepResult isolate_zygote(const ZygoteIsolation& plan) {
  if (plan.new_user_namespace)
    if (auto r = enter_user_namespace(); !r.ok) return r;
  if (auto r = isolate_network(); !r.ok) return r;
  return enter_new_root({plan.readonly_paths, plan.writable_paths});
}

int sandbox_uid_for(int pid) { return kFirstSandboxUid + pid; }

StepResult confine_sandbox(const SandboxConfinement& plan) {
  int owner = plan.uid >= 0 ? plan.uid : 0;
  PrivateMounts mounts{plan.workdir, static_cast<uid_t>(owner), static_cast<gid_t>(owner)};
  for (const auto& path : plan.readable_paths)
    if (path.rfind("/tmp/", 0) == 0) mounts.under_tmp.push_back(path);
  if (auto r = enter_private_mounts(mounts); !r.ok) return r;
  if (auto r = drop_privileges(plan.uid, plan.uid); !r.ok) return r;
  if (auto r = restrict_filesystem({plan.readable_paths, {plan.workdir, "/tmp"}, sandbox_devices()}); !r.ok) return r;
  if (!plan.seccomp) return StepResult::fail("seccomp", "compile", EINVAL, "the zygote compiled no filter");
  return load_seccomp_program(*plan.seccomp);
}

}  // namespace faas::isolation
