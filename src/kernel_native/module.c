// _faas_native: the native steps of the sandbox kernel (python/faas_sdk/_kernel): confinement
// of isolated kernels (confinement.cpp) and the snapshot template's fork server
// (fork_server.c). Plain CPython API; nothing of the engine, which a sandbox must never load.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

// confinement.cpp
PyObject* faas_native_prepare_confinement(PyObject* self, PyObject* args);
PyObject* faas_native_confine(PyObject* self, PyObject* args);
int faas_native_add_isolation_error(PyObject* module);
// fork_server.c
extern PyMethodDef faas_native_fork_server_method;

static PyMethodDef methods[] = {
    {"prepare_confinement", faas_native_prepare_confinement, METH_VARARGS,
     "prepare_confinement(readable_paths): in an isolated zygote, compile the seccomp filter once "
     "and remember what its sandboxes may read."},
    {"confine", faas_native_confine, METH_VARARGS,
     "confine(workdir, first_uid, loopback) -> listener: in a kernel just forked by an isolated "
     "zygote, confine it (private mounts, no capabilities, unprivileged uid, Landlock, seccomp); "
     "returns the seccomp filter's listener descriptor, for the engine. Raises IsolationError "
     "naming the failed step."},
    {NULL, NULL, 0, NULL},  // serve_forks, added by PyInit
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_faas_native",
                                    "Native steps of the sandbox kernel.", -1, methods};

PyMODINIT_FUNC PyInit__faas_native(void) {
  methods[2] = faas_native_fork_server_method;
  PyObject* m = PyModule_Create(&module);
  if (m && faas_native_add_isolation_error(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
