// Registration functions of the _core module, one per file (module.cpp calls them in order).
#pragma once

#include <pybind11/pybind11.h>

#include "core/sandbox/execution.hpp"

namespace faas::bindings {

void register_errors(pybind11::module_& m);
void register_logging(pybind11::module_& m);
void register_engine(pybind11::module_& m);
void register_sandbox(pybind11::module_& m);
void register_snapshot(pybind11::module_& m);

// The raw result dict of an execution outcome (register_sandbox.cpp); faas_sdk.results turns
// it into an ExecutionResult.
pybind11::dict outcome_dict(const sandbox::Outcome& outcome);

// Used by register_engine's shutdown: stops the log forwarding thread.
void stop_log_forwarder();
void start_log_forwarder();

}  // namespace faas::bindings
