// Step "capabilities": become an unprivileged user with no capability at all, for good.
// Every capability leaves the bounding and ambient sets, the securebits are locked so that
// neither exec nor a uid change can bring any back, and no_new_privs is set (setuid binaries
// and file capabilities then grant nothing).
#pragma once

#include <sys/types.h>

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

// uid/gid < 0: keep the current ids (inside a user namespace where only one id is mapped).
StepResult drop_privileges(int uid, int gid);

// Empties the bounding, ambient, effective, permitted and inheritable sets: for a branch that
// has just entered a user namespace of its own (which came with every capability in it).
StepResult drop_capabilities();

}  // namespace faas::isolation
