// faas-isolate: runs the zygote half of the isolation pipeline (pipeline.hpp), then execs the
// zygote's interpreter inside it. The broker starts it in place of the interpreter for every
// zygote of an isolated profile.
//   faas-isolate [--user-namespace] [--container] [--ro PATH]... [--rw PATH]... -- PROGRAM [ARGS...]
// --container: CONTAINER's namespaces (pid, uts, ipc, cgroup, user), hostname and /proc.
// --rootfs DIR (with --container): DIR's top-level entries, read-only, as the base system; the
//   --ro paths are bound over it (PROGRAM is then a path inside DIR).
// On failure it prints the failed step and exits 121 (the engine raises IsolationError).
// The exec'd zygote learns what its sandboxes must do from two variables:
//   FAAS_SDK_CONFINE        "uid:N" (root host: sandbox uid N + pid, one per sandbox) or "keep"
//   FAAS_SDK_CONFINE_PATHS  the read-only paths, newline-separated (Landlock's read list)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/isolation/pipeline.hpp"
#include "core/isolation/root_filesystem.hpp"

namespace {

constexpr int kIsolationFailed = 121;

int usage() {
  fprintf(stderr, "usage: faas-isolate [--user-namespace] [--container [--rootfs DIR]] [--ro PATH]... [--rw PATH]... -- PROGRAM [ARGS...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  faas::isolation::ZygoteIsolation plan;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "--user-namespace") {
      plan.new_user_namespace = true;
    } else if (arg == "--container") {
      plan.container = true;
    } else if (arg == "--rootfs" && i + 1 < argc && argv[i + 1][0] == '/') {
      plan.rootfs = argv[++i];
    } else if ((arg == "--ro" || arg == "--rw") && i + 1 < argc && argv[i + 1][0] == '/') {
      (arg == "--ro" ? plan.readonly_paths : plan.writable_paths).emplace_back(argv[++i]);
    } else {
      return usage();
    }
  }
  if (i + 1 >= argc || (!plan.rootfs.empty() && !plan.container)) return usage();
  std::vector<std::string> rootfs_paths = faas::isolation::rootfs_entries(plan.rootfs);
  char** program = argv + i + 1;

  auto result = faas::isolation::isolate_zygote(plan);
  if (!result.ok) {
    fprintf(stderr, "IsolationError: %s\n", result.failure.describe().c_str());
    return kIsolationFailed;
  }
  std::string paths;
  for (const auto& path : plan.readonly_paths) paths += path + "\n";
  for (const auto& path : rootfs_paths) paths += path + "\n";
  if (plan.container) paths += "/proc\n";  // its own pid namespace's, showing only its own processes
  int first_uid = plan.container ? faas::isolation::kContainerFirstUid : faas::isolation::kSecureFirstUid;
  std::string confine = plan.new_user_namespace ? "keep" : "uid:" + std::to_string(first_uid);
  setenv("FAAS_SDK_CONFINE", confine.c_str(), 1);
  setenv("FAAS_SDK_CONFINE_PATHS", paths.c_str(), 1);
  execv(program[0], program);
  fprintf(stderr, "IsolationError: exec %s failed inside the isolated root: %s (is it under a --ro path, or in the rootfs?)\n",
          program[0], strerror(errno));
  return kIsolationFailed;
}
