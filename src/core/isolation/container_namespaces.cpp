#include "core/isolation/container_namespaces.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/isolation/user_namespace.hpp"

namespace faas::isolation {
namespace {

constexpr const char* kStep = "container namespaces";
constexpr int kIsolationFailed = 121;

// The host range behind the sandbox ids: above 2^30, far from any distribution's uids, one
// block per container (picked by the waiter's pid) so live containers rarely share one.
long host_range_for(pid_t waiter, int size) { return (1L << 30) + static_cast<long>(waiter % 16384) * size; }

StepResult write_id_maps(pid_t child, const ContainerIds& ids) {
  std::string proc = "/proc/" + std::to_string(child);
  std::string uid_map, gid_map;
  if (ids.host_is_root) {
    std::string block = std::to_string(ids.first_sandbox_id) + " " +
                        std::to_string(host_range_for(::getpid(), ids.sandbox_ids)) + " " +
                        std::to_string(ids.sandbox_ids) + "\n";
    uid_map = gid_map = "0 0 1\n" + block;
  } else {
    // An unprivileged process may map only itself, and its gid only once setgroups is denied.
    if (!write_proc_file(proc + "/setgroups", "deny") && errno != ENOENT)
      return StepResult::fail(kStep, "write(/proc/<pid>/setgroups)", errno);
    uid_map = "0 " + std::to_string(::geteuid()) + " 1\n";
    gid_map = "0 " + std::to_string(::getegid()) + " 1\n";
  }
  if (!write_proc_file(proc + "/uid_map", uid_map)) return StepResult::fail(kStep, "write(/proc/<pid>/uid_map)", errno);
  if (!write_proc_file(proc + "/gid_map", gid_map)) return StepResult::fail(kStep, "write(/proc/<pid>/gid_map)", errno);
  return StepResult::success();
}

[[noreturn]] void wait_and_pass_on(pid_t child) {
  // Hold none of the zygote's descriptors: its control socket must close when it exits.
  ::syscall(SYS_close_range, 0U, ~0U, 0U);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) _exit(128 + WTERMSIG(status));
  _exit(WEXITSTATUS(status));
}

}  // namespace

StepResult enter_container_namespaces(const ContainerIds& ids) {
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return StepResult::fail(kStep, "pipe2", errno);
  // The waiter dies with the broker, and the container (its pid 1) with the waiter.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  const long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_NEWNET;
  pid_t child = static_cast<pid_t>(::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (child < 0)
    return StepResult::fail(kStep, "clone(CLONE_NEWUSER|CLONE_NEWPID|...)", errno,
                            "user namespaces may be disabled (sysctl user.max_user_namespaces)");
  if (child == 0) {
    ::close(go[1]);
    // (getppid() is 0 here: the waiter lives outside our pid namespace. If it died before
    // this prctl, the read below sees end-of-file.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    char byte;
    ssize_t n;
    while ((n = ::read(go[0], &byte, 1)) < 0 && errno == EINTR) {
    }
    ::close(go[0]);
    if (n != 1) _exit(kIsolationFailed);  // the waiter could not map our ids and said why
    return StepResult::success();
  }
  ::close(go[0]);
  if (auto r = write_id_maps(child, ids); !r.ok) {
    fprintf(stderr, "IsolationError: %s\n", r.failure.describe().c_str());
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    _exit(kIsolationFailed);
  }
  ::signal(SIGPIPE, SIG_IGN);  // a child that died early must not kill us before we report it
  if (::write(go[1], "g", 1) != 1) {
    ::kill(child, SIGKILL);
    _exit(kIsolationFailed);
  }
  ::close(go[1]);
  wait_and_pass_on(child);
}

StepResult set_container_hostname(const std::string& name) {
  if (::sethostname(name.data(), name.size()) != 0) return StepResult::fail("hostname", "sethostname", errno);
  return StepResult::success();
}

StepResult limit_container_pids(const std::string& proc, int limit) {
  if (!write_proc_file(proc + "/sys/kernel/pid_max", std::to_string(limit)))
    return StepResult::fail("pid namespace", "write(/proc/sys/kernel/pid_max)", errno,
                            "a pid namespace of its own pid_max needs Linux 6.14 or later");
  return StepResult::success();
}

}  // namespace faas::isolation
