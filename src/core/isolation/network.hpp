// Step "network": a network namespace with no interfaces (not even loopback is up), so a
// sandbox can reach no network at all.
#pragma once

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

StepResult isolate_network();

}  // namespace faas::isolation
