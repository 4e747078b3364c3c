// The isolation pipeline of the SECURE and CONTAINER profiles: which steps run, in which
// order, where.
//
// Two halves, because a sandbox is a fork of a warm zygote (design.md §3, issue: warm zygotes
// per isolation profile):
//   isolate_zygote   once per zygote, before its interpreter starts (faas-isolate):
//                    SECURE:    user namespace (unprivileged hosts) -> network -> root filesystem
//                    CONTAINER: user+pid+uts+ipc+cgroup+network namespaces -> hostname ->
//                               root filesystem with the pid namespace's /proc
//   confine_sandbox  in every new kernel, right after the fork, before any user code:
//                    [own loopback network] -> private mounts -> capabilities and uid ->
//                    landlock -> seccomp
// Resource limits: rlimits are applied by the kernel itself just after (kernel.py); CONTAINER's
// cgroup limits by the host, which alone can write the host's cgroup files
// (python/faas_sdk/_cgroups.py).
#pragma once

#include <string>
#include <vector>

#include "core/isolation/seccomp_filter.hpp"
#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

struct ZygoteIsolation {
  bool new_user_namespace = false;          // true when the host is not root
  bool container = false;                   // CONTAINER: the namespaces, hostname and /proc
  std::string rootfs;                       // CONTAINER: a host directory as the base system
  std::vector<std::string> readonly_paths;  // what the interpreter needs to run
  std::vector<std::string> writable_paths;  // the engine's directory of workdirs
};

StepResult isolate_zygote(const ZygoteIsolation& plan);

struct SandboxConfinement {
  std::string workdir;
  std::vector<std::string> readable_paths;  // the zygote's read-only paths
  int uid = -1;                             // -1: keep (an unprivileged host's user namespace)
  const SeccompProgram* seccomp = nullptr;  // compiled once by the zygote
  bool loopback = false;                    // own network namespace, lo up, TCP allowed in it
};

// The unprivileged uid of the sandbox whose kernel has process id `pid` (root hosts): unique
// among live sandboxes because pids are, so sandboxes cannot signal or read each other.
// `first` is the profile's first sandbox uid (kSecureFirstUid or kContainerFirstUid).
int sandbox_uid_for(int pid, int first);

constexpr int kSecureFirstUid = 200000;     // host uids, above what distributions hand out
constexpr int kContainerFirstUid = 100000;  // uids inside the container's user namespace
constexpr int kContainerSandboxIds = 65536; // ... this many; its pid_max stays below

// `listener`: the seccomp filter's user-notification descriptor (see load_seccomp_program).
StepResult confine_sandbox(const SandboxConfinement& plan, int* listener);

// The branch half: in a child of an isolated snapshot's template, which inherited the sandbox's
// whole confinement, before it runs anything of its own:
//   user, mount and IPC namespaces of its own (the engine grants the unshare) -> its workdir
//   overlay mounted by the engine (the doorbell) -> the new namespace's capabilities dropped ->
//   a Landlock domain of its own under the sandbox's (its workdir, no /tmp), so its siblings
//   are outside it.
// See core/sandbox/branch_supervisor.hpp for the engine's side.
struct BranchConfinement {
  std::string workdir;
  std::vector<std::string> readable_paths;
  bool loopback = false;  // the sandbox's: TCP stays allowed in its own network namespace
};

StepResult confine_branch(const BranchConfinement& plan);

}  // namespace faas::isolation
