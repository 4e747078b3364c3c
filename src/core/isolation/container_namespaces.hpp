// Step "container namespaces" (CONTAINER, zygote side): new user, pid, uts, ipc, cgroup and
// network namespaces in one clone(), the way nsjail and bubblewrap enter theirs. A pid
// namespace only applies to children, so the caller forks: the child carries on as pid 1 of
// the container (the zygote), and the parent stays outside as a waiter that writes the child's
// uid and gid maps, then passes on its exit status (the engine's handle on the zygote).
#pragma once

#include <string>

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

// The container's id mapping. A root host maps root (so the zygote can read root-owned host
// files it was given) and a block of sandbox uids onto an unused host range; an unprivileged
// host can only map itself.
struct ContainerIds {
  bool host_is_root = false;
  int first_sandbox_id = 0;  // inside the container; sandbox uid = first_sandbox_id + its pid
  int sandbox_ids = 0;       // how many; the pid namespace's pid_max is kept below it
};

// Returns in the child only (pid 1 of the new namespaces). The parent never returns: it exits
// with the child's status, or 121 with an IsolationError line if it could not map the ids.
StepResult enter_container_namespaces(const ContainerIds& ids);

// Inside the new uts namespace: the container's own host name.
StepResult set_container_hostname(const std::string& name);

// Inside the new pid namespace, with its /proc mounted: pids stay below `limit`, so that
// first_sandbox_id + pid is always a mapped uid.
StepResult limit_container_pids(const std::string& proc, int limit);

}  // namespace faas::isolation
