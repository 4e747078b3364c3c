// Step "network": a network namespace with no interfaces (not even loopback is up), so a
// sandbox can reach no network at all.
#pragma once

#include "core/isolation/step_failure.hpp"

namespace faas::isolation {

StepResult isolate_network();

// Step "loopback network" (a sandbox that asked for one, right after its fork): a network
// namespace of its own whose only interface, lo, is up: it can serve and reach itself over
// 127.0.0.1 and ::1, and nothing else, neither the host nor other sandboxes.
StepResult enter_loopback_network();

}  // namespace faas::isolation
