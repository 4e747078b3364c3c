// Registration functions of the _core module, one per file (module.cpp calls them in order).
#pragma once

#include <pybind11/pybind11.h>

namespace faas::bindings {

void register_errors(pybind11::module_& m);
void register_logging(pybind11::module_& m);
void register_engine(pybind11::module_& m);
void register_sandbox(pybind11::module_& m);

// Used by register_engine's shutdown: stops the log forwarding thread.
void stop_log_forwarder();
void start_log_forwarder();

}  // namespace faas::bindings
