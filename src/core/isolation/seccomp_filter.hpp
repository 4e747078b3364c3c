// Loads the SECURE seccomp policy (seccomp_policy.cpp) into the calling process.
#pragma once

namespace faas::isolation {

// Sets no_new_privs and loads the filter. Returns 0 or an errno. Meant for a single-threaded
// process about to exec or become a sandbox (it allocates: not for a child of a threaded one).
int apply_seccomp_policy();

}  // namespace faas::isolation
