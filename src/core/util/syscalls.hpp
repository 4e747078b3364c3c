// Thin, error-checked wrappers over the Linux calls the engine and broker share
// (pidfds, socketpairs, fd passing). Failures throw SyscallError naming the call.
#pragma once

#include <sys/types.h>

#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/util/unique_fd.hpp"

namespace faas::sys {

class SyscallError : public std::runtime_error {
 public:
  SyscallError(std::string call, int err);
  int error_number() const { return errno_; }
  const std::string& call() const { return call_; }

 private:
  std::string call_;
  int errno_;
};

[[noreturn]] void throw_errno(const std::string& call);

int pidfd_open(pid_t pid);
int pidfd_send_signal(int pidfd, int sig);
// The process id, as this process sees it, of the process a pidfd refers to (from
// /proc/self/fdinfo): how the engine learns the host pid of a kernel whose zygote lives in a
// pid namespace of its own (CONTAINER). -1 if it cannot be read or the process is gone.
pid_t pid_of_pidfd(int pidfd);

// AF_UNIX socketpair, both ends close-on-exec; `nonblock_first` makes the first end non-blocking.
std::pair<UniqueFd, UniqueFd> socket_pair(int type, bool nonblock_first);
// pipe2 with O_CLOEXEC; the read end is made non-blocking when asked.
std::pair<UniqueFd, UniqueFd> make_pipe(bool nonblock_read);

void set_nonblocking(int fd, bool on);

// Largest control datagram either side sends or accepts; senders check it first.
constexpr size_t kMaxControlMessage = 128 * 1024;

// One datagram (SOCK_SEQPACKET) with optional descriptors attached (SCM_RIGHTS).
// Returns false when the peer is gone (EPIPE/ECONNRESET).
bool send_message(int sock, std::span<const char> data, std::span<const int> fds);
// Receives one datagram; received fds are appended to `fds`. Returns the byte count,
// 0 on orderly shutdown, -1 with errno EAGAIN when nothing is pending.
ssize_t recv_message(int sock, std::vector<char>& buf, std::vector<UniqueFd>& fds);

// "exited with status N" or "was killed by signal N (SIGNAME)", to follow "the process".
std::string describe_wait_status(int status);

}  // namespace faas::sys
