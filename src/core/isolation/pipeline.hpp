// The isolation pipeline of the SECURE profile: which steps run, in which order, where.
//
// Two halves, because a sandbox is a fork of a warm zygote (design.md §3, issue: warm zygotes
// per isolation profile):
//   isolate_zygote   once per zygote, before its interpreter starts (faas-isolate):
//                    user namespace (unprivileged hosts) -> network -> root filesystem
//   confine_sandbox  in every new kernel, right after the fork, before any user code:
//                    private mounts -> capabilities and uid -> landlock -> seccomp
// Resource limits (rlimits) are applied by the kernel itself just after (kernel.py).
#pragma once

#include <string>
#include <vector>

#include "core/isolation/seccomp_filter.hpp"
#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

struct ZygoteIsolation {
  bool new_user_namespace = false;          // true when the host is not root
  std::vector<std::string> readonly_paths;  // what the interpreter needs to run
  std::vector<std::string> writable_paths;  // the engine's directory of workdirs
};

StepResult isolate_zygote(const ZygoteIsolation& plan);

struct SandboxConfinement {
  std::string workdir;
  std::vector<std::string> readable_paths;  // the zygote's read-only paths
  int uid = -1;                             // -1: keep (inside a user namespace)
  const SeccompProgram* seccomp = nullptr;  // compiled once by the zygote
};

// The unprivileged uid of the sandbox whose kernel has process id `pid` (root hosts): unique
// among live sandboxes because pids are, so sandboxes cannot signal or read each other.
int sandbox_uid_for(int pid);

StepResult confine_sandbox(const SandboxConfinement& plan);

}  // namespace faas::isolation
