// C++ side of the error hierarchy; src/bindings/register_errors.cpp maps each kind onto the
// matching class in python/faas_sdk/errors.py.
#pragma once

#include <stdexcept>
#include <string>

namespace faas {

enum class ErrorKind {
  kFaas,
  kIsolation,
  kSnapshot,
  kSandboxDead,
  kExecutionTimeout,
  kResourceLimit,
  kProtocol,
  kInvalidCode,
  kNotImplemented,
};

// A sandbox or zygote that failed to start because an isolation step failed says so with this
// prefix (faas-isolate, _faas_native.IsolationError): such failures raise IsolationError.
inline ErrorKind start_failure_kind(const std::string& reason, ErrorKind otherwise) {
  return reason.find("IsolationError: ") != std::string::npos ? ErrorKind::kIsolation : otherwise;
}

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace faas
