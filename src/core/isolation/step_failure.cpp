#include "core/isolation/step_failure.hpp"

#include <string.h>

namespace faas::isolation {

std::string StepFailure::describe() const {
  const char* name = strerrorname_np(error);
  std::string text = step + ": " + syscall + " failed: " + strerror(error);
  if (name) text += std::string(" (") + name + ")";
  if (!hint.empty()) text += ". Hint: " + hint;
  return text;
}

}  // namespace faas::isolation
