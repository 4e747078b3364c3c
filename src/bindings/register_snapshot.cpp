// Snapshots, branches and parallel exploration.
#include <pybind11/stl.h>

#include "bindings/bindings.hpp"
#include "core/engine/engine.hpp"
#include "core/engine/exploration.hpp"
#include "core/errors.hpp"

namespace py = pybind11;

namespace faas::bindings {
namespace {

using engine::Engine;
using snapshot::Snapshot;

constexpr auto kWaitSlice = std::chrono::milliseconds(50);

py::list explore(const std::shared_ptr<Snapshot>& base, const std::vector<py::bytes>& codes, size_t max_parallel,
                 std::optional<double> timeout, std::optional<uint64_t> seed) {
  std::vector<std::string> sources(codes.begin(), codes.end());
  auto exploration = std::make_unique<engine::Exploration>(Engine::instance(), base, std::move(sources),
                                                           max_parallel, timeout, seed);
  for (;;) {
    bool done;
    {
      py::gil_scoped_release release;
      done = exploration->step(kWaitSlice);
    }
    if (done) break;
    if (PyErr_CheckSignals() != 0) {
      py::error_already_set pending;
      exploration->interrupt();
      for (auto& item : exploration->items())
        if (item.sandbox) item.sandbox->close_async();
      throw pending;
    }
  }
  py::list out;
  for (auto& item : exploration->items()) {
    py::object sandbox = item.sandbox ? py::cast(item.sandbox) : py::none();
    py::object result = item.execution ? py::object(outcome_dict(item.execution->outcome())) : py::none();
    out.append(py::make_tuple(sandbox, result, item.error));
  }
  return out;
}

}  // namespace

void register_snapshot(py::module_& m) {
  py::class_<Snapshot, std::shared_ptr<Snapshot>>(m, "Snapshot")
      .def_property_readonly("id", &Snapshot::id)
      .def_property_readonly("parent_id", &Snapshot::parent_id)
      .def_property_readonly("source_sandbox_id", &Snapshot::source_sandbox_id)
      .def_property_readonly("created_at", &Snapshot::created_at)
      .def_property_readonly("template_pid", &Snapshot::template_pid)
      .def_property_readonly("released", &Snapshot::released)
      .def_property_readonly("usable", &Snapshot::usable)
      .def_property_readonly("branches_made", [](Snapshot& s) { return s.branches_made.load(); })
      .def("release", [](const std::shared_ptr<Snapshot>& s) {
        py::gil_scoped_release release;
        s->release();
        if (Engine::running()) Engine::instance().forget_snapshot(s->id());
      });

  m.def(
      "snapshot",
      [](const std::shared_ptr<sandbox::Sandbox>& sb) {
        py::gil_scoped_release release;
        return Engine::instance().snapshot(sb);
      },
      py::arg("sandbox"));

  m.def(
      "branch",
      [](const std::shared_ptr<Snapshot>& snap, std::optional<uint64_t> seed) {
        py::gil_scoped_release release;
        return Engine::instance().branch(snap, seed, true);
      },
      py::arg("snapshot"), py::arg("seed"));

  m.def(
      "branch_many",
      [](const std::shared_ptr<Snapshot>& snap, size_t count, std::optional<uint64_t> seed) {
        // Every fork is requested before any is awaited; each branch succeeds or fails alone.
        std::vector<std::shared_ptr<sandbox::Sandbox>> sandboxes(count);
        std::vector<std::string> errors(count);
        {
          py::gil_scoped_release release;
          Engine& engine = Engine::instance();
          for (size_t i = 0; i < count; ++i) {
            try {
              sandboxes[i] = engine.branch(snap, seed ? std::optional<uint64_t>(*seed + i) : std::nullopt, false);
            } catch (const std::exception& e) {
              errors[i] = e.what();
            }
          }
          for (size_t i = 0; i < count; ++i) {
            if (!sandboxes[i]) continue;
            try {
              if (!sandboxes[i]->wait_ready(std::chrono::seconds(60))) throw Error(ErrorKind::kSnapshot, "not ready within 60 s");
            } catch (const std::exception& e) {
              errors[i] = std::string("branch of snapshot ") + snap->id() + " failed: " + e.what();
              sandboxes[i]->close();
              sandboxes[i].reset();
            }
          }
        }
        py::list out;
        for (size_t i = 0; i < count; ++i)
          out.append(sandboxes[i] ? py::cast(sandboxes[i]) : py::object(py::str(errors[i])));
        return out;
      },
      py::arg("snapshot"), py::arg("count"), py::arg("seed"));

  m.def("explore", &explore, py::arg("snapshot"), py::arg("codes"), py::arg("max_parallel"), py::arg("timeout"),
        py::arg("seed"));

  m.def(
      "live_processes",
      [] {
        // (kind, id, pid) of every live sandbox kernel, branch and snapshot template.
        py::list out;
        if (!Engine::running()) return out;
        Engine& engine = Engine::instance();
        for (auto& snap : engine.live_snapshots())
          if (snap->usable()) out.append(py::make_tuple("template", snap->id(), snap->template_pid()));
        for (auto& sb : engine.live_sandboxes())
          if (sb->alive() && sb->pid() > 0) out.append(py::make_tuple(sb->is_branch() ? "branch" : "sandbox", sb->id(), sb->pid()));
        return out;
      },
      "Live processes of the engine, for memory accounting.");

  m.def("live_branch_count", [] { return Engine::running() ? Engine::instance().live_branch_count() : 0; });
}

}  // namespace faas::bindings
