// Step "mounts" (zygote side): a private mount namespace whose root is a fresh tmpfs holding
// only what the sandbox may see: host paths bound read-only at their own paths (system
// directories, the interpreter), the engine's directory of workdirs bound read-write, a few
// device nodes and an empty /tmp. The root itself is then made read-only. After bubblewrap's
// approach: build under the old root, pivot into the new one, detach the old one.
#pragma once

#include <string>
#include <vector>

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

struct RootLayout {
  std::vector<std::string> readonly_paths;  // absolute host paths; missing ones are skipped
  std::vector<std::string> writable_paths;  // absolute host directories
  // CONTAINER with a rootfs of the user's: each top-level entry of this host directory is bound
  // read-only at /<entry> (all but proc, dev, sys, tmp and run: the sandbox gets its own).
  std::string rootfs;
  // CONTAINER: a /proc of the caller's (new) pid namespace that shows each process only its
  // own uid's processes (hidepid=invisible), read-only once pid_max (if > 0) is written.
  bool mount_proc = false;
  int proc_pid_max = 0;
};

// Device nodes every sandbox gets (bound from the host; nothing else of /dev exists).
const std::vector<std::string>& sandbox_devices();

StepResult enter_new_root(const RootLayout& layout);

// The paths at which enter_new_root() shows a rootfs's entries ("/usr", "/etc", ...; symlinks
// left out: they resolve to one of the others). Read on the host, before isolating.
std::vector<std::string> rootfs_entries(const std::string& rootfs);

}  // namespace faas::isolation
