// Engine-level functions: configuration, sandbox creation, warm pools, metrics, shutdown.
#include <pybind11/stl.h>

#include <memory>

#include "bindings/bindings.hpp"
#include "core/engine/engine.hpp"

namespace py = pybind11;

namespace faas::bindings {
namespace {

using engine::Engine;

py::dict summary_dict(const metrics::Summary& s) {
  py::dict d;
  d["count"] = s.count;
  d["mean"] = s.mean_s;
  d["min"] = s.min_s;
  d["max"] = s.max_s;
  d["p50"] = s.p50_s;
  d["p95"] = s.p95_s;
  d["p99"] = s.p99_s;
  d["p999"] = s.p999_s;
  return d;
}

py::dict metrics_dict() {
  auto& m = Engine::instance().metrics();
  py::dict d;
  d["sandbox_start"] = summary_dict(m.sandbox_start.summary());
  d["execute"] = summary_dict(m.execute.summary());
  d["snapshot"] = summary_dict(m.snapshot.summary());
  d["branch_start"] = summary_dict(m.branch_start.summary());
  d["snapshots_created"] = m.snapshots_created.load();
  d["branches_created"] = m.branches_created.load();
  d["snapshots_live"] = Engine::instance().live_snapshots().size();
  d["branches_live"] = Engine::instance().live_branch_count();
  d["sandboxes_started"] = m.sandboxes_started.load();
  d["sandboxes_live"] = m.sandboxes_live.load();
  d["executions"] = m.executions.load();
  d["executions_failed"] = m.executions_failed.load();
  d["timeouts"] = m.timeouts.load();
  d["sandbox_deaths"] = m.sandbox_deaths.load();
  return d;
}

Engine& engine_with_forwarder() {
  start_log_forwarder();
  return Engine::instance();
}

}  // namespace

void register_engine(py::module_& m) {
  m.def(
      "configure",
      [](std::string kernel_script, std::string broker_path, std::string temp_parent, std::string isolate_path,
         std::vector<std::string> isolation_readonly_paths) {
        Engine::configure({std::move(kernel_script), std::move(broker_path), std::move(temp_parent),
                           std::move(isolate_path), std::move(isolation_readonly_paths)});
      },
      py::arg("kernel_script"), py::arg("broker_path"), py::arg("temp_parent"), py::arg("isolate_path") = "",
      py::arg("isolation_readonly_paths") = std::vector<std::string>{});

  m.def(
      "create_sandbox",
      [](std::string python, std::string workdir, std::vector<std::pair<std::string, std::string>> env,
         std::vector<std::pair<int, uint64_t>> rlimits, size_t output_limit, double interrupt_grace,
         std::string isolation, bool loopback) {
        sandbox::SandboxSpec spec;
        spec.python = std::move(python);
        spec.isolation = std::move(isolation);
        spec.loopback = loopback;
        spec.workdir = std::move(workdir);
        spec.env = std::move(env);
        spec.rlimits = std::move(rlimits);
        spec.output_limit = output_limit;
        spec.interrupt_grace_s = interrupt_grace;
        Engine& engine = engine_with_forwarder();
        py::gil_scoped_release release;
        return engine.create_sandbox(std::move(spec), true);
      },
      py::arg("python"), py::arg("workdir"), py::arg("env"), py::arg("rlimits"), py::arg("output_limit"),
      py::arg("interrupt_grace"), py::arg("isolation") = "", py::arg("loopback") = false);

  m.def(
      "take_warm_sandbox",
      [](std::string python, std::string isolation) {
        Engine& engine = engine_with_forwarder();
        py::gil_scoped_release release;
        return engine.take_warm(python, isolation);
      },
      py::arg("python"), py::arg("isolation") = "", "A ready sandbox with default options from the warm pool.");

  m.def(
      "prewarm",
      [](std::string python, size_t pool_size, std::string isolation) {
        Engine& engine = engine_with_forwarder();
        engine.set_pool_size(pool_size);
        engine.prewarm(python, isolation);
      },
      py::arg("python"), py::arg("pool_size"), py::arg("isolation") = "");

  m.def(
      "wait_disposals", [] {
        if (!Engine::running()) return;
        py::gil_scoped_release release;
        Engine::instance().wait_disposals();
      },
      "Blocks until closed sandboxes' workdirs are removed.");

  m.def("metrics", &metrics_dict);
  m.def("live_sandbox_count", [] { return Engine::running() ? Engine::instance().live_sandbox_count() : 0; });
  m.def("engine_running", &Engine::running);
  m.def("temp_root", [] { return Engine::instance().temp_root(); });

  m.def(
      "shutdown",
      [] {
        {
          py::gil_scoped_release release;
          Engine::shutdown_instance();
        }
        stop_log_forwarder();
      },
      "Ends every sandbox, the zygotes and the broker. A later call starts a new engine.");
}

}  // namespace faas::bindings
