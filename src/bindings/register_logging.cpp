// Replays engine log records into Python's `logging` (logger "faas_sdk.engine") from one
// forwarding thread, so no engine thread ever waits for the GIL.
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "bindings/bindings.hpp"
#include "core/log/logging.hpp"

namespace py = pybind11;

namespace faas::bindings {
namespace {

std::mutex g_mu;
std::thread* g_forwarder = nullptr;  // leaked on purpose when a fork()ed child drops it
pid_t g_forwarder_pid = 0;
std::atomic<bool> g_running{false};

// A fork()ed child inherits the thread object but not the thread: forget it.
void forget_inherited_forwarder() {
  if (g_forwarder && g_forwarder_pid != ::getpid()) {
    g_forwarder = nullptr;
    g_running = false;
  }
}

void forward_loop() {
  while (g_running.load()) {
    auto record = log::pop_record(std::chrono::milliseconds(200));
    if (!record) continue;
    py::gil_scoped_acquire gil;
    try {
      py::module_::import("logging").attr("getLogger")("faas_sdk.engine").attr("log")(record->python_level,
                                                                                     record->message);
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("faas_sdk log forwarding");
    }
  }
}

}  // namespace

void start_log_forwarder() {
  std::lock_guard lock(g_mu);
  forget_inherited_forwarder();
  if (g_running.load()) return;
  g_running = true;
  g_forwarder = new std::thread(forward_loop);
  g_forwarder_pid = ::getpid();
}

void stop_log_forwarder() {
  std::lock_guard lock(g_mu);
  forget_inherited_forwarder();
  if (!g_running.exchange(false)) return;
  py::gil_scoped_release release;  // the forwarder may be waiting for the GIL
  g_forwarder->join();
  delete g_forwarder;
  g_forwarder = nullptr;
}

void register_logging(py::module_& m) {
  m.def("set_log_level", &log::set_python_level, py::arg("level"),
        "Sets the engine's log level from a Python logging level.");
}

}  // namespace faas::bindings
