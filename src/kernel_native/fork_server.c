// The fork server of a snapshot template, in C (_faas_native.serve_forks). A branch is a fork
// of a ~40 MiB interpreter: every page either side writes after the fork is copied. The Python
// server (_faas_fork_server.py) touches hundreds of such pages per fork, in the template and
// in the child; this one touches almost none. The child becomes a branch in C (its own
// session, channels and workdir view, see branch_setup.c and confinement.cpp), says READY,
// and only returns to Python when the engine sends its first frame.
// Wire formats: src/core/protocol/messages.hpp and docs/protocol.md.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel_native/branch_steps.h"

enum {
  kForkRequest = 0x01,
  kForkDone = 0x81,
  kForkChildExited = 0x82,
  kFrameReady = 0x81,
  kFrameFatal = 0x83,
  kControlBuffer = 256 * 1024,  // larger than the engine's 128 KiB control-message bound
  kMaxFds = 8,
};
static const uint64_t kRlimInfinityWire = UINT64_MAX;

// ---- the FORK request --------------------------------------------------------------------

typedef struct {
  const uint8_t* data;
  size_t size, pos;
  int ok;
} Reader;

static const uint8_t* take(Reader* r, size_t n) {
  if (!r->ok || r->size - r->pos < n) {
    r->ok = 0;
    return NULL;
  }
  const uint8_t* at = r->data + r->pos;
  r->pos += n;
  return at;
}

static uint64_t take_uint(Reader* r, size_t n) {  // little-endian, n <= 8
  const uint8_t* at = take(r, n);
  uint64_t value = 0;
  for (size_t i = 0; at && i < n; ++i) value |= (uint64_t)at[i] << (8 * i);
  return value;
}

static void skip_str(Reader* r) { take(r, take_uint(r, 4)); }

static PyObject* take_str(Reader* r) {
  size_t n = take_uint(r, 4);
  const uint8_t* at = take(r, n);
  return at ? PyUnicode_DecodeUTF8((const char*)at, (Py_ssize_t)n, "surrogateescape") : NULL;
}

typedef struct {
  uint32_t id;
  int nrlimits;
  struct {
    int resource;
    uint64_t limit;
  } rlimits[RLIM_NLIMITS];
} ForkRequest;

// What the C side needs: the request id and the rlimits. The Python side re-reads the rest
// (environment, seed) from the same bytes when the branch gets its first frame.
static int parse_request(const uint8_t* msg, size_t size, ForkRequest* req) {
  Reader r = {msg, size, 0, 1};
  take_uint(&r, 1);
  req->id = (uint32_t)take_uint(&r, 4);
  skip_str(&r);  // sandbox id
  skip_str(&r);  // workdir: a branch's is the snapshot's, which the template knows
  for (uint64_t n = take_uint(&r, 4); r.ok && n > 0; --n) {
    skip_str(&r);
    skip_str(&r);
  }
  uint64_t n = take_uint(&r, 4);
  if (n > RLIM_NLIMITS) return 0;
  req->nrlimits = (int)n;
  for (int i = 0; i < req->nrlimits; ++i) {
    req->rlimits[i].resource = (int)take_uint(&r, 4);
    req->rlimits[i].limit = take_uint(&r, 8);
  }
  take(&r, 1 + 8 + 1);  // seed flag, seed, flags
  return r.ok;
}

// What the Python side needs, at the branch's first frame: (sandbox id, [(name, value)], seed
// or None). The message was checked by parse_request.
static PyObject* request_for_python(const uint8_t* msg, size_t size) {
  Reader r = {msg, size, 1 + 4, 1};
  PyObject* sandbox_id = take_str(&r);
  skip_str(&r);
  PyObject* env = PyList_New(0);
  for (uint64_t n = take_uint(&r, 4); sandbox_id && env && n > 0; --n) {
    PyObject* name = take_str(&r);
    PyObject* value = name ? take_str(&r) : NULL;
    PyObject* pair = value ? PyTuple_Pack(2, name, value) : NULL;
    Py_XDECREF(name);
    Py_XDECREF(value);
    if (!pair || PyList_Append(env, pair) < 0) Py_CLEAR(env);
    Py_XDECREF(pair);
  }
  for (uint64_t n = take_uint(&r, 4); r.ok && n > 0; --n) take(&r, 4 + 8);  // rlimits: C's
  int has_seed = (int)take_uint(&r, 1);
  uint64_t seed = take_uint(&r, 8);
  PyObject* result = NULL;
  if (sandbox_id && env)
    result = Py_BuildValue("(OON)", sandbox_id, env, has_seed ? PyLong_FromUnsignedLongLong(seed) : Py_NewRef(Py_None));
  Py_XDECREF(sandbox_id);
  Py_XDECREF(env);
  return result;
}

// ---- replies to the engine ---------------------------------------------------------------

static size_t put_uint(uint8_t* at, uint64_t value, size_t n) {
  for (size_t i = 0; i < n; ++i) at[i] = (uint8_t)(value >> (8 * i));
  return n;
}

static size_t put_str(uint8_t* at, const char* s) {
  size_t n = strlen(s);
  put_uint(at, n, 4);
  memcpy(at + 4, s, n);
  return 4 + n;
}

// One message with `nfds` descriptors (0 to kMaxFds) attached; 0 when it was sent whole.
static int send_message(int sock, const uint8_t* data, size_t size, const int* fds, int nfds) {
  struct iovec iov = {(void*)data, size};
  union {
    struct cmsghdr header;
    char space[CMSG_SPACE(kMaxFds * sizeof(int))];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.space;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
  }
  ssize_t n;
  while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return n == (ssize_t)size ? 0 : -1;
}

static void send_done(int ctrl, uint32_t id, int pid, int err, const char* message,
                      const char* private_dir, int pidfd) {
  uint8_t buf[1 + 4 + 4 + 4 + 4 + 512 + 4 + 4096];
  size_t n = put_uint(buf, kForkDone, 1);
  n += put_uint(buf + n, id, 4);
  n += put_uint(buf + n, (uint32_t)pid, 4);
  n += put_uint(buf + n, (uint32_t)err, 4);
  n += put_str(buf + n, message);
  n += put_str(buf + n, private_dir);
  send_message(ctrl, buf, n, &pidfd, pidfd >= 0);
}

static void send_frame(int fd, int type, const uint8_t* payload, size_t size) {
  uint8_t header[8];
  put_uint(header, size, 4);
  header[4] = (uint8_t)type;
  header[5] = header[6] = header[7] = 0;
  struct iovec iov[2] = {{header, sizeof header}, {(void*)payload, size}};
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
  while (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// ---- the server --------------------------------------------------------------------------

typedef struct {
  int ctrl, sigfd;
  sigset_t saved_mask;
  const char *private_root, *workdir, *lower;
  int isolated;
  // The branches' layers are on a tmpfs of this template's own mount namespace: only it (and
  // its branches) can see them, so it removes each one when it reaps the branch.
  int owns_layers;
  int* files;  // the template's regular files, for its branches to reopen (fixed while serving)
  int nfiles;
  // A child forked ahead, its workdir view in place, waiting on `spare_link` for a request
  // (templates that have served a branch; see serve_forks).
  pid_t spare;
  int spare_link;
  int wants_spare;
} Server;

static int remove_entry(const char* path, const struct stat* st, int type, struct FTW* walk) {
  (void)st, (void)walk;
  if (type == FTW_DP ? rmdir(path) : unlink(path)) {
  }
  return 0;
}

static void drop_spare(Server* server) {
  if (server->spare_link >= 0) close(server->spare_link);
  server->spare_link = -1;
  server->spare = 0;
}

static void report_exits(Server* server) {
  struct signalfd_siginfo info;
  while (read(server->sigfd, &info, sizeof info) == sizeof info) {
  }
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == server->spare) {
      // It never served: nothing to report. No other until the next request, so a spare that
      // cannot start is not forked again and again.
      drop_spare(server);
      server->wants_spare = 0;
    } else {
      uint8_t msg[9];
      put_uint(msg, kForkChildExited, 1);
      put_uint(msg + 1, (uint32_t)pid, 4);
      put_uint(msg + 5, (uint32_t)status, 4);
      send_message(server->ctrl, msg, sizeof msg, NULL, 0);
    }
    if (server->owns_layers) {
      char layer[4096];
      snprintf(layer, sizeof layer, "%s/%d", server->private_root, (int)pid);
      nftw(layer, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    }
  }
}

// ---- the child: a branch -----------------------------------------------------------------

static int apply_rlimits(const ForkRequest* req) {
  for (int i = 0; i < req->nrlimits; ++i) {
    uint64_t value = req->rlimits[i].limit;
    struct rlimit limit = {value == kRlimInfinityWire ? RLIM_INFINITY : value, 0};
    limit.rlim_max = limit.rlim_cur;
    // CPU time: the hard limit one second later, so the soft limit's SIGXCPU (not a bare
    // SIGKILL) tells the user which limit ended the sandbox.
    if (req->rlimits[i].resource == RLIMIT_CPU && limit.rlim_cur != RLIM_INFINITY) ++limit.rlim_max;
    if (setrlimit(req->rlimits[i].resource, &limit) < 0) return -1;
  }
  return 0;
}

// Tells the engine why this branch cannot start (on the data socket, fd 3), then exits.
static void die(int rc, const char* step, int err) {
  char text[4096];
  int n = rc == FAAS_STEP_FAILED_DESCRIBED
              ? snprintf(text, sizeof text, "%s", step)
              : snprintf(text, sizeof text, "OSError: %s: %s", step, strerror(err));
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof text) n = sizeof text - 1;
  uint8_t payload[4 + sizeof text];
  put_uint(payload, (uint64_t)n, 4);
  memcpy(payload + 4, text, (size_t)n);
  send_frame(3, kFrameFatal, payload, 4 + (size_t)n);
  _exit(71);
}

// First steps of every child: its own session, and none of the template's own descriptors.
static void leave_template(const Server* server) {
  close(server->sigfd);
  close(server->ctrl);
  if (server->spare_link >= 0) close(server->spare_link);
  sigprocmask(SIG_SETMASK, &server->saved_mask, NULL);
  if (setsid() < 0) _exit(70);
}

static int enter_layer(const Server* server, const char** step) {
  char own_dir[4096];
  snprintf(own_dir, sizeof own_dir, "%s/%d", server->private_root, (int)getpid());
  return faas_enter_branch_layer(server->workdir, server->lower, own_dir, server->files, server->nfiles, step);
}

// A branch with its channels in place: its limits, READY, then idle until the first frame (or
// the engine closing the channel). The rest of becoming a branch is Python's, and Python would
// copy pages an idle branch never needs.
static void serve_as_branch(const ForkRequest* req) {
  if (apply_rlimits(req) < 0) die(FAAS_STEP_FAILED, "setrlimit", errno);
  uint8_t ready[8];
  put_uint(ready, (uint32_t)getpid(), 4);
  put_uint(ready + 4, (uint32_t)-1, 4);  // no seccomp listener: the kernel's was handed over
  send_frame(3, kFrameReady, ready, sizeof ready);
  struct pollfd channel = {3, POLLIN, 0};
  while (poll(&channel, 1, -1) < 0 && errno == EINTR) {
  }
}

// A child forked for a request.
static void become_branch(const Server* server, const ForkRequest* req, const int fds[3]) {
  leave_template(server);
  if (faas_install_channels(fds[0], fds[1], fds[2]) < 0) _exit(70);
  const char* step = NULL;
  int rc = server->isolated ? faas_enter_isolated_branch(server->workdir, &step) : enter_layer(server, &step);
  if (rc < 0) die(rc, step, errno);
  serve_as_branch(req);
}

// ---- the loop ----------------------------------------------------------------------------

static void close_all(const int* fds, int n) {
  for (int i = 0; i < n; ++i) close(fds[i]);
}

// Receives one message; returns its size, 0 at end of stream, -1 on EINTR/EAGAIN.
static ssize_t receive(int fd, uint8_t* buf, int* fds, int* nfds) {
  struct iovec iov = {buf, kControlBuffer};
  union {
    struct cmsghdr header;
    char space[CMSG_SPACE(kMaxFds * sizeof(int))];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                       .msg_controllen = sizeof control.space};
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  *nfds = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count && *nfds < kMaxFds; ++i) memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  if (n < 0) return (errno == EINTR || errno == EAGAIN) ? -1 : 0;
  return n;
}

// The spare, in the child: set up all but the channels, then wait for a request. Returns with
// the request in buf once it is a branch; exits if the template goes away first.
static ssize_t become_spare(const Server* server, int link, uint8_t* buf, ForkRequest* req) {
  leave_template(server);
  const char* step;
  int rc = server->isolated ? faas_enter_isolated_branch(server->workdir, &step) : enter_layer(server, &step);
  if (rc < 0) _exit(70);  // the template forks the next branch itself, which reports the error
  // The interpreter's after-fork repair, while idle: a branch would pay for it at its first
  // frame (see the end of serve_forks).
  PyOS_AfterFork_Child();
  int fds[kMaxFds], nfds;
  ssize_t size;
  while ((size = receive(link, buf, fds, &nfds)) < 0) {
  }
  if (size == 0 || nfds != 3 || !parse_request(buf, (size_t)size, req)) _exit(0);
  close(link);
  if (faas_install_channels(fds[0], fds[1], fds[2]) < 0) _exit(70);
  serve_as_branch(req);
  return size;
}

// Forks the spare. Returns its request's size in the spare (once it is a branch), else 0.
static ssize_t fork_spare(Server* server, uint8_t* buf, ForkRequest* req) {
  int link[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, link) < 0) return 0;
  pid_t pid = fork();
  if (pid == 0) {
    close(link[0]);
    return become_spare(server, link[1], buf, req);
  }
  close(link[1]);
  if (pid < 0) {
    close(link[0]);
    return 0;
  }
  server->spare = pid;
  server->spare_link = link[0];
  return 0;
}

// The branch's layer directory, for the engine to remove with it; "" when it is ours.
static const char* layer_for_engine(const Server* server, pid_t pid) {
  static char dir[4096];
  dir[0] = '\0';
  if (!server->owns_layers) snprintf(dir, sizeof dir, "%s/%d", server->private_root, (int)pid);
  return dir;
}

// Hands the request to the spare: 0 when it took it (FORK_DONE sent), -1 to fork instead.
static int hand_to_spare(Server* server, const uint8_t* buf, size_t size, const ForkRequest* req, const int* fds) {
  if (!server->spare || send_message(server->spare_link, buf, size, fds, 3) < 0) return -1;
  pid_t pid = server->spare;
  drop_spare(server);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  send_done(server->ctrl, req->id, pid, 0, "", layer_for_engine(server, pid), pidfd);
  if (pidfd >= 0) close(pidfd);
  return 0;
}

// serve_forks(ctrl, private_root, workdir, lower, isolated) -> (sandbox_id, env, seed): see its
// doc in module.c.
PyObject* faas_native_serve_forks(PyObject* self, PyObject* args) {
  Server server;
  memset(&server, 0, sizeof server);
  if (!PyArg_ParseTuple(args, "isssp", &server.ctrl, &server.private_root, &server.workdir,
                        &server.lower, &server.isolated))
    return NULL;
  uint8_t* buf = PyMem_RawMalloc(kControlBuffer);
  if (!buf) return PyErr_NoMemory();
  server.spare_link = -1;
  server.nfiles = server.isolated ? 0 : faas_list_regular_files(&server.files);
  // An unisolated template's mount namespace is its own (see _faas_branch.py): a tmpfs there
  // makes a branch's layer (three directories and the overlay's own set-up) ~3x cheaper than
  // on a disk file system, and vanishes with the last branch. An isolated template's branches
  // get theirs from the engine (core/sandbox/branch_supervisor.hpp).
  server.owns_layers = !server.isolated &&
                       mount("tmpfs", server.private_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") == 0;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &server.saved_mask);
  server.sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (server.sigfd < 0) {
    PyMem_RawFree(buf);
    free(server.files);
    sigprocmask(SIG_SETMASK, &server.saved_mask, NULL);
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  ForkRequest req;
  ssize_t size = 0;
  int repaired = 0;  // PyOS_AfterFork_Child has run in this child
  for (;;) {
    // Requests first; when there is none, a template that has served a branch keeps a spare
    // forked ahead (the fork and the workdir view are most of a lone branch's start). Only
    // then, and only once asked, so a burst of requests and a template never branched pay
    // nothing.
    int idle_for_spare = server.wants_spare && !server.spare;
    struct pollfd watched[2] = {{server.ctrl, POLLIN, 0}, {server.sigfd, POLLIN, 0}};
    int ready = poll(watched, 2, idle_for_spare ? 0 : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      _exit(70);
    }
    if (ready == 0) {
      if ((size = fork_spare(&server, buf, &req)) > 0) {
        repaired = 1;
        break;  // in the spare, now a branch
      }
      server.wants_spare = 0;  // until the next request, if the fork failed
      continue;
    }
    if (watched[0].revents) {
      int fds[kMaxFds], nfds;
      size = receive(server.ctrl, buf, fds, &nfds);
      if (size == 0) _exit(0);  // the engine released us or is gone
      if (size > 0 && buf[0] == kForkRequest) {
        memset(&req, 0, sizeof req);
        if (!parse_request(buf, (size_t)size, &req) || nfds != 3) {
          send_done(server.ctrl, req.id, -1, EINVAL,
                    nfds != 3 ? "FORK needs three descriptors" : "malformed FORK request", "", -1);
        } else if (hand_to_spare(&server, buf, (size_t)size, &req, fds) < 0) {
          pid_t pid = fork();
          if (pid == 0) {
            become_branch(&server, &req, fds);
            break;
          }
          if (pid < 0) {
            int err = errno;
            char message[128];
            snprintf(message, sizeof message, "fork: %s", strerror(err));
            send_done(server.ctrl, req.id, -1, err, message, "", -1);
          } else {
            int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
            send_done(server.ctrl, req.id, pid, 0, "", layer_for_engine(&server, pid), pidfd);
            if (pidfd >= 0) close(pidfd);
          }
        }
        server.wants_spare = 1;
      }
      close_all(fds, nfds);
    }
    if (watched[1].revents) report_exits(&server);
  }
  // In a branch, at its first frame: the interpreter's own after-fork repair (its locks,
  // threading's state, the at-fork hooks such as random's reseed), only now that it has work.
  if (!repaired) PyOS_AfterFork_Child();
  PyObject* request = request_for_python(buf, (size_t)size);
  PyMem_RawFree(buf);
  free(server.files);
  return request;
}
