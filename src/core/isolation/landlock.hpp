// Step "landlock": a Landlock domain for the sandbox. Files: read (and execute) only the
// listed paths, read and write only the listed writable ones; everything else, including every
// other sandbox's workdir, is EACCES. Network (ABI 4+): no TCP bind or connect at all, unless
// `tcp` (a sandbox whose network namespace holds only its own loopback). Scopes (ABI 6+): no
// signals to, and no abstract unix sockets of, processes outside the domain.
#pragma once

#include <string>
#include <vector>

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

struct FilesystemRules {
  std::vector<std::string> readable;  // read + execute (files or directory trees)
  std::vector<std::string> writable;  // everything (directory trees)
  std::vector<std::string> devices;   // read + write of these files only
  bool tcp = false;                   // leave TCP bind/connect alone
};

// The Landlock ABI version of the running kernel; 0 if it has none (or it is disabled).
int landlock_abi();

// The caller must have no_new_privs set. Missing paths are skipped.
StepResult restrict_filesystem(const FilesystemRules& rules);

}  // namespace faas::isolation
