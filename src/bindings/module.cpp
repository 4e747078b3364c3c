// faas_sdk._core: the pybind11 face of the C++ engine. Each area registers itself.
#include "bindings/bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "Native engine of faas_sdk (private: use the faas_sdk package)";
  faas::bindings::register_errors(m);
  faas::bindings::register_logging(m);
  faas::bindings::register_engine(m);
  faas::bindings::register_sandbox(m);
  faas::bindings::register_snapshot(m);
}
