// The sandbox half of the isolation pipeline, for the kernel (python/faas_sdk/_kernel): the
// zygote compiles the seccomp filter once (prepare_confinement); each kernel it forks then
// confines itself before running any user code (confine). See core/isolation/pipeline.hpp.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <unistd.h>

#include <string>
#include <vector>

#include "core/isolation/pipeline.hpp"
#include "kernel_native/branch_steps.h"

namespace {

faas::isolation::SeccompProgram g_seccomp;
std::vector<std::string> g_readable;
bool g_loopback = false;  // this kernel's (and so its branches') network namespace is its own
bool g_prepared = false;
PyObject* g_isolation_error = nullptr;

PyObject* raise_failure(const faas::isolation::StepFailure& failure) {
  PyErr_SetString(g_isolation_error, failure.describe().c_str());
  return nullptr;
}

}  // namespace

extern "C" PyObject* faas_native_prepare_confinement(PyObject*, PyObject* args) {
  PyObject* paths;
  if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &paths)) return nullptr;
  g_readable.clear();
  for (Py_ssize_t i = 0; i < PyList_Size(paths); ++i) {
    const char* path = PyUnicode_AsUTF8(PyList_GetItem(paths, i));
    if (!path) return nullptr;
    g_readable.emplace_back(path);
  }
  if (int err = faas::isolation::compile_seccomp_policy(g_seccomp))
    return raise_failure({"seccomp", "seccomp_export_bpf", err, "libseccomp could not compile the policy"});
  g_prepared = true;
  Py_RETURN_NONE;
}

extern "C" PyObject* faas_native_confine(PyObject*, PyObject* args) {
  const char* workdir;
  int first_uid;  // the profile's first sandbox uid, or -1 to keep ours (a user namespace's)
  int loopback;   // a network namespace of its own with lo up (and TCP allowed in it)
  if (!PyArg_ParseTuple(args, "sip", &workdir, &first_uid, &loopback)) return nullptr;
  if (!g_prepared) return raise_failure({"seccomp", "prepare_confinement", EINVAL, "the zygote did not prepare"});
  faas::isolation::SandboxConfinement plan;
  plan.workdir = workdir;
  plan.readable_paths = g_readable;
  plan.uid = first_uid >= 0 ? faas::isolation::sandbox_uid_for(::getpid(), first_uid) : -1;
  plan.seccomp = &g_seccomp;
  plan.loopback = loopback != 0;
  g_loopback = plan.loopback;
  int listener = -1;
  auto result = faas::isolation::confine_sandbox(plan, &listener);
  if (!result.ok) return raise_failure(result.failure);
  return PyLong_FromLong(listener);
}

extern "C" int faas_enter_isolated_branch(const char* workdir, const char** step) {
  auto result = faas::isolation::confine_branch({workdir, g_readable, g_loopback});
  if (!result.ok) {
    static std::string message;  // this process is about to exit with it
    message = "IsolationError: " + result.failure.describe();
    *step = message.c_str();
    return FAAS_STEP_FAILED_DESCRIBED;
  }
  *step = "chdir(workdir)";
  if (::chdir(workdir) < 0) return FAAS_STEP_FAILED;
  // Its open workdir files were reopened on its own copy by the engine, at the doorbell.
  return 0;
}

extern "C" int faas_native_add_isolation_error(PyObject* module) {
  g_isolation_error = PyErr_NewExceptionWithDoc(
      "_faas_native.IsolationError", "An isolation step failed: which step, system call and errno.",
      PyExc_Exception, nullptr);
  if (!g_isolation_error) return -1;
  Py_INCREF(g_isolation_error);
  return PyModule_AddObject(module, "IsolationError", g_isolation_error);
}
