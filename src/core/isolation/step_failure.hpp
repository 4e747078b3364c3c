// How an isolation step reports failure: which step, which system call, which errno, and a
// hint where one is known. Raised in Python as IsolationError (design.md §3).
#pragma once

#include <string>

namespace faas::isolation {

struct StepFailure {
  std::string step;     // "user namespace", "mounts", "landlock", ...
  std::string syscall;  // "unshare(CLONE_NEWUSER)", "pivot_root", ...
  int error = 0;        // errno
  std::string hint;     // what to check; empty when nothing useful is known

  // "landlock: landlock_restrict_self failed: Operation not permitted (EPERM). Hint: ..."
  std::string describe() const;
};

// The step result: empty on success.
struct StepResult {
  bool ok = true;
  StepFailure failure;
  static StepResult success() { return {}; }
  static StepResult fail(std::string step, std::string syscall, int error, std::string hint = {}) {
    return {false, {std::move(step), std::move(syscall), error, std::move(hint)}};
  }
};

}  // namespace faas::isolation
