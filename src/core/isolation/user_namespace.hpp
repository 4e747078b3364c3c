// Step "user namespace": a new user namespace in which the caller is root. Used when the host
// is not root (so the later steps have the capabilities they need inside it) and by CONTAINER.
#pragma once

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

// Maps the caller's uid and gid to 0 inside the new namespace (the only mapping an
// unprivileged process may write).
StepResult enter_user_namespace();

}  // namespace faas::isolation
