#include "core/isolation/pipeline.hpp"

#include <errno.h>
#include <sched.h>

#include "core/isolation/container_namespaces.hpp"
#include "core/isolation/landlock.hpp"
#include "core/isolation/network.hpp"
#include "core/isolation/private_mounts.hpp"
#include "core/isolation/privileges.hpp"
#include "core/isolation/root_filesystem.hpp"
#include "core/isolation/seccomp_policy.hpp"
#include "core/isolation/user_namespace.hpp"

namespace faas::isolation {

namespace {

StepResult isolate_container(const ZygoteIsolation& plan) {
  bool root = !plan.new_user_namespace;
  if (auto r = enter_container_namespaces({root, kContainerFirstUid, kContainerSandboxIds}); !r.ok) return r;
  if (auto r = set_container_hostname("sandbox"); !r.ok) return r;
  RootLayout layout{plan.readonly_paths, plan.writable_paths, plan.rootfs};
  layout.mount_proc = true;
  layout.proc_pid_max = root ? kContainerSandboxIds : 0;  // unprivileged: one uid for all anyway
  return enter_new_root(layout);
}

}  // namespace

StepResult isolate_zygote(const ZygoteIsolation& plan) {
  if (plan.container) return isolate_container(plan);
  if (plan.new_user_namespace)
    if (auto r = enter_user_namespace(); !r.ok) return r;
  if (auto r = isolate_network(); !r.ok) return r;
  return enter_new_root({plan.readonly_paths, plan.writable_paths});
}

int sandbox_uid_for(int pid, int first) { return first + pid; }

StepResult confine_sandbox(const SandboxConfinement& plan, int* listener) {
  int owner = plan.uid >= 0 ? plan.uid : 0;
  PrivateMounts mounts{plan.workdir, static_cast<uid_t>(owner), static_cast<gid_t>(owner)};
  for (const auto& path : plan.readable_paths)
    if (path.rfind("/tmp/", 0) == 0) mounts.under_tmp.push_back(path);
  if (plan.loopback)
    if (auto r = enter_loopback_network(); !r.ok) return r;
  if (auto r = enter_private_mounts(mounts); !r.ok) return r;
  if (auto r = drop_privileges(plan.uid, plan.uid); !r.ok) return r;
  FilesystemRules rules{plan.readable_paths, {plan.workdir, "/tmp"}, sandbox_devices()};
  rules.tcp = plan.loopback;  // its namespace holds nothing but its own loopback
  if (auto r = restrict_filesystem(rules); !r.ok) return r;
  if (!plan.seccomp) return StepResult::fail("seccomp", "compile", EINVAL, "the zygote compiled no filter");
  return load_seccomp_program(*plan.seccomp, listener);
}

StepResult confine_branch(const BranchConfinement& plan) {
  if (::unshare(kBranchNamespaceFlags) != 0)
    return StepResult::fail("branch namespaces", "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWIPC)", errno,
                            "the engine grants it once, to a fresh child of one of its templates");
  // The doorbell: the engine mounts this branch's overlay and /tmp, then answers for the call.
  if (::unshare(kBranchNamespaceFlags) != 0)
    return StepResult::fail("branch mounts", "the engine's mount of the branch's layers", errno);
  if (auto r = drop_capabilities(); !r.ok) return r;
  // Landlock ignores a rule on a mount point once something is mounted over it. So the rule for
  // the workdir goes on its parent, the root-owned (0755) tmpfs that private_mounts.cpp put
  // there with nothing in it but the workdir: this branch's own branches mount over the
  // workdir again, and their files must still count as beneath it. Not /tmp: the sandbox's
  // /tmp is one file system its branches would share, and a fresh one cannot be mounted over
  // it for the same reason (the sandbox's rule for /tmp would stop applying beneath it).
  std::string workdir_parent = plan.workdir.substr(0, plan.workdir.rfind('/'));
  FilesystemRules rules{plan.readable_paths, {workdir_parent}, sandbox_devices()};
  rules.tcp = plan.loopback;
  auto r = restrict_filesystem(rules);
  if (!r.ok && r.failure.error == E2BIG)
    r.failure.hint = "each level of branch-of-branch adds a Landlock domain, and Linux allows 16";
  return r;
}

}  // namespace faas::isolation
