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
PyObject* faas_native_serve_forks(PyObject* self, PyObject* args);

static PyMethodDef methods[] = {
    {"prepare_confinement", faas_native_prepare_confinement, METH_VARARGS,
     "prepare_confinement(readable_paths): in an isolated zygote, compile the seccomp filter once "
     "and remember what its sandboxes may read."},
    {"confine", faas_native_confine, METH_VARARGS,
     "confine(workdir, first_uid, loopback) -> listener: in a kernel just forked by an isolated "
     "zygote, confine it (private mounts, no capabilities, unprivileged uid, Landlock, seccomp); "
     "returns the seccomp filter's listener descriptor, for the engine. Raises IsolationError "
     "naming the failed step."},
    {"serve_forks", faas_native_serve_forks, METH_VARARGS,
     "serve_forks(ctrl, private_root, workdir, lower, isolated) -> (sandbox_id, env, seed): in a "
     "snapshot template, serve the engine's FORK requests on ctrl until it closes (then exit). "
     "Returns only in a forked child, once it is a branch (session, channels, workdir view, "
     "rlimits; READY sent) and the engine has sent it a frame: what of the FORK request is left "
     "for Python to apply."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_faas_native",
                                    "Native steps of the sandbox kernel.", -1, methods};

PyMODINIT_FUNC PyInit__faas_native(void) {
  PyObject* m = PyModule_Create(&module);
  if (m && faas_native_add_isolation_error(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
