#include "core/isolation/network.hpp"

#include <errno.h>
#include <sched.h>

namespace faas::isolation {

StepResult isolate_network() {
  if (::unshare(CLONE_NEWNET) != 0)
    return StepResult::fail("network", "unshare(CLONE_NEWNET)", errno, "needs CAP_SYS_ADMIN or a user namespace");
  return StepResult::success();
}

}  // namespace faas::isolation
