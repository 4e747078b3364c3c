// faas_sdk._kernel native helper (_faas_native): the steps that turn a freshly forked child of
// a snapshot template into a branch, done in C. In Python each step touches (and so copies,
// copy-on-write) many objects of the heap shared with the template; here they touch almost
// nothing, which keeps a branch small and quick to start. Plain CPython API and the isolation
// steps (confinement.cpp); nothing of the engine, which a sandbox must never load.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static PyObject* fail(const char* step) {
  int err = errno;
  PyObject* msg = PyUnicode_FromFormat("%s: %s", step, strerror(err));
  if (msg) {
    PyObject* args = Py_BuildValue("(iO)", err, msg);
    if (args) {
      PyErr_SetObject(PyExc_OSError, args);
      Py_DECREF(args);
    }
    Py_DECREF(msg);
  }
  return NULL;
}

// Puts the engine's data socket on fd 3 and the output pipes on fds 1 and 2. They are moved
// far away first: a received descriptor may itself be 1, 2 or 3.
int faas_install_channels(int sock, int out, int err_fd) {
  int src[3] = {sock, out, err_fd}, high[3], dst[3] = {3, 1, 2};
  for (int i = 0; i < 3; ++i) {
    high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 100);
    if (high[i] < 0) return -1;
  }
  for (int i = 0; i < 3; ++i) close(src[i]);
  for (int i = 0; i < 3; ++i) {
    if (dup3(high[i], dst[i], dst[i] == 3 ? O_CLOEXEC : 0) < 0) return -1;
    close(high[i]);
  }
  return 0;
}

static int read_fd_flags(int fd, int* flags) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0) return -1;
  ssize_t n = read(f, buf, sizeof buf - 1);
  close(f);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* line = strstr(buf, "flags:");
  if (!line) return -1;
  *flags = (int)strtol(line + 6, NULL, 8);
  return 0;
}

// Every inherited regular file gets its own open file description (own offset), re-resolved by
// path so files under the workdir come from this branch's layer. Best effort per descriptor.
void faas_reopen_regular_files(void) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  int dir_fd = dirfd(dir);
  struct dirent* entry;
  while ((entry = readdir(dir)) != NULL) {
    char* end;
    long fd = strtol(entry->d_name, &end, 10);
    if (*end != '\0' || fd <= 3 || fd == dir_fd) continue;
    struct stat st;
    if (fstat((int)fd, &st) < 0 || !S_ISREG(st.st_mode)) continue;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%ld", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0) continue;
    path[len] = '\0';
    if (len > 10 && strcmp(path + len - 10, " (deleted)") == 0) continue;
    int flags;
    if (read_fd_flags((int)fd, &flags) < 0) continue;
    off_t offset = lseek((int)fd, 0, SEEK_CUR);
    int fresh = open(path, flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY));
    if (fresh < 0) continue;
    if (offset > 0) lseek(fresh, offset, SEEK_SET);
    dup3(fresh, (int)fd, flags & O_CLOEXEC);
    close(fresh);
  }
  closedir(dir);
}

// enter_branch(sock, out, err, template_ctrl, workdir, lower, own_dir): see the module doc.
static PyObject* enter_branch(PyObject* self, PyObject* args) {
  int sock, out, err_fd, ctrl;
  const char *workdir, *lower, *own_dir;
  if (!PyArg_ParseTuple(args, "iiiisss", &sock, &out, &err_fd, &ctrl, &workdir, &lower, &own_dir)) return NULL;
  if (setsid() < 0) return fail("setsid");
  if (faas_install_channels(sock, out, err_fd) < 0) return fail("installing the channels");
  close(ctrl);
  if (unshare(CLONE_NEWNS) < 0) return fail("unshare(CLONE_NEWNS)");
  // A branch of a branch: the parent branch's overlay is mounted here; drop it (EINVAL: none).
  if (umount2(workdir, MNT_DETACH) < 0 && errno != EINVAL) return fail("umount2(workdir)");
  char upper[4096], work[4096], options[12288];
  snprintf(upper, sizeof upper, "%s/upper", own_dir);
  snprintf(work, sizeof work, "%s/work", own_dir);
  if (mkdir(own_dir, 0700) < 0 || mkdir(upper, 0700) < 0 || mkdir(work, 0700) < 0)
    return fail("mkdir(branch layer)");
  snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
  if (mount("overlay", workdir, "overlay", 0, options) < 0) return fail("mount(overlay on the workdir)");
  if (chdir(workdir) < 0) return fail("chdir(workdir)");
  faas_reopen_regular_files();
  Py_RETURN_NONE;
}

// confinement.cpp: the sandbox half of the isolation pipeline.
PyObject* faas_native_prepare_confinement(PyObject* self, PyObject* args);
PyObject* faas_native_confine(PyObject* self, PyObject* args);
PyObject* faas_native_enter_isolated_branch(PyObject* self, PyObject* args);
int faas_native_add_isolation_error(PyObject* module);

static PyMethodDef methods[] = {
    {"enter_branch", enter_branch, METH_VARARGS,
     "enter_branch(sock, out, err, template_ctrl, workdir, lower, own_dir): in a child forked by a "
     "snapshot template (whose mount namespace is private and privileged), become a branch: own "
     "session, channels on fds 1-3, own mount namespace with an overlay at the workdir, cwd there, "
     "inherited regular files reopened."},
    {"prepare_confinement", faas_native_prepare_confinement, METH_VARARGS,
     "prepare_confinement(readable_paths): in an isolated zygote, compile the seccomp filter once "
     "and remember what its sandboxes may read."},
    {"confine", faas_native_confine, METH_VARARGS,
     "confine(workdir, first_uid, loopback) -> listener: in a kernel just forked by an isolated "
     "zygote, confine it (private mounts, no capabilities, unprivileged uid, Landlock, seccomp); "
     "returns the seccomp filter's listener descriptor, for the engine. Raises IsolationError "
     "naming the failed step."},
    {"enter_isolated_branch", faas_native_enter_isolated_branch, METH_VARARGS,
     "enter_isolated_branch(sock, out, err, template_ctrl, workdir): in a child forked by the "
     "template of an isolated snapshot, become a branch: own session and channels, own user, "
     "mount and IPC namespaces with the engine's mounts of its layers, no capabilities, a "
     "Landlock domain of its own, cwd in the workdir, inherited regular files reopened."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_faas_native",
                                    "Native steps of the sandbox kernel (branch set-up).", -1, methods};

PyMODINIT_FUNC PyInit__faas_native(void) {
  PyObject* m = PyModule_Create(&module);
  if (m && faas_native_add_isolation_error(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
