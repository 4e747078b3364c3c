// Step "user namespace": a new user namespace in which the caller is root. Used when the host
// is not root (so the later steps have the capabilities they need inside it) and by CONTAINER.
#pragma once

#include <string>

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

// Maps the caller's uid and gid to 0 inside the new namespace (the only mapping an
// unprivileged process may write).
StepResult enter_user_namespace();

// Writes `text` to a /proc file (an id map, setgroups, a sysctl) in one write(), as those files
// require; false with errno set on failure.
bool write_proc_file(const std::string& path, const std::string& text);

}  // namespace faas::isolation
