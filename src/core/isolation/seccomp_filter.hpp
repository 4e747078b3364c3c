// Step "seccomp": the SECURE policy (seccomp_policy.cpp), compiled by libseccomp to a BPF
// program once (in the zygote), then loaded by each sandbox with one seccomp() call.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

using SeccompProgram = std::vector<sock_filter>;

// Fills `program`; returns 0 or an errno.
int compile_seccomp_policy(SeccompProgram& program);

// The caller must have no_new_privs set (drop_privileges does). With `listener`, it receives
// the filter's user-notification descriptor (close-on-exec), which must leave the process
// before any user code runs: whoever holds it answers the unshare(kBranchNamespaceFlags) calls.
StepResult load_seccomp_program(const SeccompProgram& program, int* listener = nullptr);

// Both, plus no_new_privs: for a process that only needs the filter (faas-try-syscall).
int apply_seccomp_policy();

}  // namespace faas::isolation
