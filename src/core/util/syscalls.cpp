#include "core/util/syscalls.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

namespace faas::sys {

SyscallError::SyscallError(std::string call, int err)
    : std::runtime_error(call + ": " + std::strerror(err)), call_(std::move(call)), errno_(err) {}

void throw_errno(const std::string& call) { throw SyscallError(call, errno); }

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

pid_t pid_of_pidfd(int pidfd) {
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(pidfd));
  std::string line;
  while (std::getline(info, line))
    if (line.rfind("Pid:", 0) == 0) return static_cast<pid_t>(std::stol(line.substr(4)));
  return -1;
}

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

void set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw_errno("fcntl(F_GETFL)");
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) < 0) throw_errno("fcntl(F_SETFL)");
}

std::pair<UniqueFd, UniqueFd> socket_pair(int type, bool nonblock_first) {
  int fds[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0) throw_errno("socketpair");
  UniqueFd a(fds[0]), b(fds[1]);
  if (nonblock_first) set_nonblocking(a.get(), true);
  return {std::move(a), std::move(b)};
}

std::pair<UniqueFd, UniqueFd> make_pipe(bool nonblock_read) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe2");
  UniqueFd r(fds[0]), w(fds[1]);
  if (nonblock_read) set_nonblocking(r.get(), true);
  return {std::move(r), std::move(w)};
}

bool send_message(int sock, std::span<const char> data, std::span<const int> fds) {
  struct iovec iov{const_cast<char*>(data.data()), data.size()};
  struct msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return true;
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) return false;
    throw_errno("sendmsg");
  }
}

ssize_t recv_message(int sock, std::vector<char>& buf, std::vector<UniqueFd>& fds) {
  if (buf.size() < kMaxControlMessage) buf.resize(kMaxControlMessage);
  struct iovec iov{buf.data(), buf.size()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  struct msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    if (errno == ECONNRESET) return 0;
    throw_errno("recvmsg");
  }
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* received = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; ++i) fds.emplace_back(received[i]);
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) throw SyscallError("recvmsg (message truncated)", EMSGSIZE);
  return n;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "stopped (status " + std::to_string(status) + ")";
}

}  // namespace faas::sys
