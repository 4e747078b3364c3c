// Step "mounts" (sandbox side): each sandbox's own mount and IPC namespaces, made by its
// still-privileged kernel right after the zygote forks it. A private tmpfs on /tmp; over the
// directory of workdirs a tmpfs holding only this sandbox's own workdir, so no other
// sandbox's files exist in its view at all.
#pragma once

#include <string>
#include <vector>
#include <sys/types.h>

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

struct PrivateMounts {
  std::string workdir;     // absolute; visible in the zygote's view
  uid_t owner = 0;         // the sandbox's uid: it owns its workdir and /tmp
  gid_t group = 0;
  std::string tmp_size = "256m";
  // Read-only binds of the zygote's root that lie under /tmp (an interpreter or virtual
  // environment installed there): carried over onto the private /tmp.
  std::vector<std::string> under_tmp;
};

StepResult enter_private_mounts(const PrivateMounts& mounts);

}  // namespace faas::isolation
