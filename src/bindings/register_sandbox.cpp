// The Sandbox handle: run (blocking, GIL released, Ctrl-C aware, streaming callbacks),
// submit (for asyncio, completion signalled through a CompletionQueue's eventfd), close.
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <pybind11/stl.h>

#include <atomic>
#include <mutex>
#include <optional>

#include "bindings/bindings.hpp"
#include "core/errors.hpp"
#include "core/sandbox/sandbox.hpp"
#include "core/util/syscalls.hpp"
#include "core/util/unique_fd.hpp"

namespace py = pybind11;

namespace faas::bindings {
namespace {

using sandbox::Execution;
using sandbox::Outcome;
using sandbox::OutcomeKind;
using sandbox::Sandbox;

constexpr auto kWaitSlice = std::chrono::milliseconds(50);

py::str decode(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

const char* kind_name(OutcomeKind k) {
  switch (k) {
    case OutcomeKind::kCompleted: return "completed";
    case OutcomeKind::kTimeout: return "timeout";
    case OutcomeKind::kDied: return "died";
    case OutcomeKind::kInterrupted: return "interrupted";
    case OutcomeKind::kProtocolError: return "protocol_error";
  }
  return "completed";
}

}  // namespace

py::dict outcome_dict(const Outcome& o) {
  py::dict d;
  d["outcome"] = kind_name(o.kind);
  d["success"] = o.success;
  d["stdout"] = decode(o.stdout_text);
  d["stderr"] = decode(o.stderr_text);
  d["value"] = o.has_value ? py::object(decode(o.value)) : py::none();
  if (o.success) {
    d["error"] = py::none();
  } else {
    d["error"] = py::make_tuple(decode(o.error_type), decode(o.error_message), decode(o.traceback));
  }
  d["output_truncated"] = o.output_truncated;
  d["kernel_duration"] = static_cast<double>(o.kernel_ns) * 1e-9;
  d["engine_duration"] = static_cast<double>(o.engine_ns) * 1e-9;
  return d;
}

namespace {

void deliver(std::vector<sandbox::StreamChunk>& chunks, py::object& on_stdout, py::object& on_stderr,
             std::optional<py::error_already_set>& callback_error) {
  for (auto& c : chunks) {
    py::object& cb = c.stream == 1 ? on_stdout : on_stderr;
    if (cb.is_none() || callback_error) continue;
    try {
      cb(decode(c.data));
    } catch (py::error_already_set& e) {
      callback_error.emplace(std::move(e));  // re-raised once the execution is complete
    }
  }
  chunks.clear();
}

py::dict run(const std::shared_ptr<Sandbox>& sb, const py::bytes& code, std::optional<double> timeout,
             py::object on_stdout, py::object on_stderr) {
  std::string source = code;
  bool streaming = !on_stdout.is_none() || !on_stderr.is_none();
  std::shared_ptr<Execution> exec;
  {
    py::gil_scoped_release release;
    exec = sb->submit(source, timeout, streaming, /*direct=*/true);
  }
  std::vector<sandbox::StreamChunk> chunks;
  std::optional<py::error_already_set> callback_error;
  for (;;) {
    bool done;
    {
      py::gil_scoped_release release;
      done = sb->pump(exec, kWaitSlice, chunks);
    }
    deliver(chunks, on_stdout, on_stderr, callback_error);
    if (done) break;
    if (PyErr_CheckSignals() != 0) {
      // Ctrl-C: interrupt the sandbox like a notebook would, then let KeyboardInterrupt rise.
      py::error_already_set pending;
      sb->interrupt(exec);
      {
        py::gil_scoped_release release;
        while (!sb->pump(exec, kWaitSlice, chunks)) {
        }
      }
      deliver(chunks, on_stdout, on_stderr, callback_error);
      throw pending;
    }
  }
  if (callback_error) throw *callback_error;
  return outcome_dict(exec->outcome());
}

// Completed async executions are announced here; asyncio watches fileno() with add_reader.
class CompletionQueue {
 public:
  CompletionQueue() : efd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!efd_) sys::throw_errno("eventfd");
  }
  int fileno() const { return efd_.get(); }
  void push(uint64_t id) {
    {
      std::lock_guard lock(mu_);
      done_.push_back(id);
    }
    uint64_t one = 1;
    (void)!::write(efd_.get(), &one, sizeof one);
  }
  std::vector<uint64_t> drain() {
    uint64_t count;
    (void)!::read(efd_.get(), &count, sizeof count);
    std::lock_guard lock(mu_);
    std::vector<uint64_t> out;
    out.swap(done_);
    return out;
  }

 private:
  UniqueFd efd_;
  std::mutex mu_;
  std::vector<uint64_t> done_;
};

struct PendingExecution {
  std::shared_ptr<Sandbox> sandbox;
  std::shared_ptr<Execution> execution;
  bool done() { return execution->done(); }
  py::dict result() {
    if (!execution->done()) throw Error(ErrorKind::kFaas, "the execution has not completed");
    return outcome_dict(execution->outcome());
  }
  void interrupt() { sandbox->interrupt(execution); }
};

std::atomic<uint64_t> g_next_async_id{1};

}  // namespace

void register_sandbox(py::module_& m) {
  py::class_<CompletionQueue, std::shared_ptr<CompletionQueue>>(m, "CompletionQueue")
      .def(py::init<>())
      .def("fileno", &CompletionQueue::fileno)
      .def("drain", &CompletionQueue::drain);

  py::class_<PendingExecution>(m, "PendingExecution")
      .def("done", &PendingExecution::done)
      .def("result", &PendingExecution::result)
      .def("interrupt", &PendingExecution::interrupt);

  py::class_<Sandbox, std::shared_ptr<Sandbox>>(m, "Sandbox")
      .def_property_readonly("id", &Sandbox::id)
      .def_property_readonly("pid", &Sandbox::pid)
      .def_property_readonly("workdir", &Sandbox::workdir)
      .def_property_readonly("alive", &Sandbox::alive)
      .def_property_readonly("closed", &Sandbox::closed)
      .def_property_readonly("death_reason", &Sandbox::death_reason)
      .def("run", &run, py::arg("code"), py::arg("timeout") = py::none(), py::arg("on_stdout") = py::none(),
           py::arg("on_stderr") = py::none())
      .def(
          "submit",
          [](const std::shared_ptr<Sandbox>& sb, const py::bytes& code, std::optional<double> timeout,
             const std::shared_ptr<CompletionQueue>& queue) {
            std::string source = code;
            std::shared_ptr<Execution> exec;
            {
              py::gil_scoped_release release;
              exec = sb->submit(source, timeout, false);
            }
            uint64_t id = g_next_async_id.fetch_add(1);
            exec->set_on_complete([queue, id] { queue->push(id); });
            return py::make_tuple(id, PendingExecution{sb, exec});
          },
          py::arg("code"), py::arg("timeout"), py::arg("queue"))
      .def("close",
           [](const std::shared_ptr<Sandbox>& sb) {
             py::gil_scoped_release release;
             sb->close();
           })
      .def("close_async", [](const std::shared_ptr<Sandbox>& sb) { sb->close_async(); })
      .def("kill", [](const std::shared_ptr<Sandbox>& sb, const std::string& reason) { sb->kill(reason); });
}

}  // namespace faas::bindings
