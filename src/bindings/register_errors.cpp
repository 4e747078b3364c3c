// Maps C++ errors onto the Python hierarchy in python/faas_sdk/errors.py.
#include "bindings/bindings.hpp"
#include "core/errors.hpp"
#include "core/util/syscalls.hpp"

namespace py = pybind11;

namespace faas::bindings {
namespace {

const char* class_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kIsolation: return "IsolationError";
    case ErrorKind::kSnapshot: return "SnapshotError";
    case ErrorKind::kSandboxDead: return "SandboxDead";
    case ErrorKind::kExecutionTimeout: return "ExecutionTimeout";
    case ErrorKind::kResourceLimit: return "ResourceLimitExceeded";
    case ErrorKind::kProtocol: return "ProtocolError";
    case ErrorKind::kInvalidCode: return "InvalidCode";
    case ErrorKind::kNotImplemented: return "ModeNotAvailable";
    case ErrorKind::kFaas: break;
  }
  return "FaasError";
}

void set_error(const char* name, const char* message) {
  py::object cls = py::module_::import("faas_sdk.errors").attr(name);
  PyErr_SetString(cls.ptr(), message);
}

}  // namespace

void register_errors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      set_error(class_name(e.kind()), e.what());
    } catch (const sys::SyscallError& e) {
      set_error("FaasError", e.what());
    }
  });
}

}  // namespace faas::bindings
