// faas-broker: the one process that spawns zygotes on the engine's behalf and outlives them.
// It is a child subreaper, so every sandbox descendant that loses its parent is re-parented
// here and reaped (no zombies). When the host process dies (control socket EOF or re-parenting
// of the broker), it kills every descendant, removes the engine's temporary directory and exits
// (no orphans). It links nothing but libc so it starts in well under a millisecond.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/protocol/codec.hpp"
#include "core/protocol/messages.hpp"
#include "core/util/syscalls.hpp"

namespace {

using faas::UniqueFd;
using namespace faas::protocol;
namespace sys = faas::sys;

constexpr int kControlFd = 3;
constexpr int kChildFdCount = 4;  // stdin, stdout, stderr, control socket of the child

std::set<pid_t> g_spawned;

[[noreturn]] void exec_child(int error_pipe, const std::vector<UniqueFd>& fds,
                             std::vector<char*>& argv, std::vector<char*>& envp, pid_t broker) {
  // Between fork and exec: async-signal-safe calls only.
  ::setsid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != broker) ::_exit(127);
  sigset_t all;
  ::sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  for (int i = 0; i < kChildFdCount; ++i) {
    if (::dup2(fds[i].get(), i) < 0) {
      int err = errno;
      (void)!::write(error_pipe, &err, sizeof err);
      ::_exit(127);
    }
  }
  // Everything above the child's four descriptors closes at exec; the error pipe stays
  // open until then so a failed exec can still report its errno.
  ::syscall(SYS_close_range, kChildFdCount, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
  ::execve(argv[0], argv.data(), envp.data());
  int err = errno;
  (void)!::write(error_pipe, &err, sizeof err);
  ::_exit(127);
}

void handle_spawn(ByteReader& in, std::vector<UniqueFd>& fds) {
  uint32_t request = in.u32();
  std::vector<std::string> args, env;
  for (uint32_t n = in.u32(); n > 0; --n) args.emplace_back(in.str());
  for (uint32_t n = in.u32(); n > 0; --n) env.emplace_back(in.str());

  int32_t pid = -1, err = 0;
  UniqueFd pidfd;
  if (args.empty() || fds.size() != kChildFdCount) {
    err = EINVAL;
  } else {
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) < 0) {
      err = errno;
    } else {
      UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
      pid_t self = ::getpid();
      pid_t child = ::fork();
      if (child == 0) exec_child(write_end.get(), fds, argv, envp, self);
      if (child < 0) {
        err = errno;
      } else {
        write_end.reset();
        int child_err = 0;
        ssize_t n;
        do {
          n = ::read(read_end.get(), &child_err, sizeof child_err);
        } while (n < 0 && errno == EINTR);
        if (n == sizeof child_err) {
          err = child_err;  // exec failed; the child is reaped by the SIGCHLD loop
        } else {
          pid = child;
          pidfd.reset(sys::pidfd_open(child));
          g_spawned.insert(child);
        }
      }
    }
  }
  ByteWriter out;
  out.u8(kBrokerSpawned);
  out.u32(request);
  out.i32(pid);
  out.i32(err);
  std::vector<int> send_fds;
  if (pidfd) send_fds.push_back(pidfd.get());
  sys::send_message(kControlFd, out.buffer(), send_fds);
}

void reap_children() {
  int status;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (g_spawned.erase(pid) == 0) continue;  // an adopted orphan: reaping is all it needs
    ByteWriter out;
    out.u8(kBrokerExited);
    out.i32(pid);
    out.i32(status);
    sys::send_message(kControlFd, out.buffer(), {});
  }
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> result;
  DIR* proc = ::opendir("/proc");
  if (!proc) return result;
  while (struct dirent* entry = ::readdir(proc)) {
    char* end;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    char path[64], buf[512];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    const char* paren = std::strrchr(buf, ')');  // comm may itself contain ')'
    char state;
    int ppid;
    if (paren && std::sscanf(paren + 1, " %c %d", &state, &ppid) == 2 && ppid == parent)
      result.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return result;
}

// Kill every descendant. As each dies its own children are re-parented to us (subreaper),
// so repeat until nothing is left to wait for.
void kill_everything() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  pid_t self = ::getpid();
  while (std::chrono::steady_clock::now() < deadline) {
    for (pid_t pid : children_of(self)) ::kill(pid, SIGKILL);
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    }
    if (pid < 0 && errno == ECHILD) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

void remove_tree(const std::string& dir) {
  if (!dir.empty()) ::nftw(dir.c_str(), remove_entry, 64, FTW_DEPTH | FTW_PHYS);
}

}  // namespace

int main(int argc, char** argv) {
  // argv[1]: the engine's temporary root, removed on exit (may be empty).
  std::string temp_root = argc > 1 ? argv[1] : "";
  pid_t host = ::getppid();
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::setpgid(0, 0);  // a Ctrl-C aimed at the host's process group must not reach us
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  ::sigemptyset(&chld);
  ::sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (::getppid() != host) return 0;

  std::vector<char> buf;
  std::vector<UniqueFd> fds;
  bool running = true;
  while (running) {
    struct pollfd pfds[2] = {{kControlFd, POLLIN, 0}, {sfd, POLLIN, 0}};
    int ready = ::poll(pfds, 2, 1000);
    if (ready < 0 && errno != EINTR) break;
    if (::getppid() != host) break;  // host died and we were re-parented
    if (pfds[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (::read(sfd, &info, sizeof info) == sizeof info) {
      }
      try {
        reap_children();
      } catch (const std::exception&) {
        running = false;
      }
    }
    if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      try {
        for (;;) {
          fds.clear();
          ssize_t n = sys::recv_message(kControlFd, buf, fds);
          if (n < 0) break;  // drained
          if (n == 0) {
            running = false;
            break;
          }
          ByteReader in(buf.data(), static_cast<size_t>(n));
          if (in.u8() == kBrokerSpawn) handle_spawn(in, fds);
        }
      } catch (const std::exception&) {
        running = false;  // a malformed request means the host is broken: shut down
      }
    }
  }
  kill_everything();
  remove_tree(temp_root);
  return 0;
}
