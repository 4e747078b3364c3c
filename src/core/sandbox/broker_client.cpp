#include "core/sandbox/broker_client.hpp"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstring>

#include "core/engine/reactor.hpp"
#include "core/errors.hpp"
#include "core/log/logging.hpp"
#include "core/protocol/codec.hpp"
#include "core/protocol/messages.hpp"
#include "core/util/syscalls.hpp"

extern char** environ;

namespace faas::sandbox {

using namespace faas::protocol;

BrokerClient::BrokerClient(engine::Reactor& reactor, std::string broker_path, std::string temp_root)
    : reactor_(reactor), broker_path_(std::move(broker_path)), temp_root_(std::move(temp_root)) {}

BrokerClient::~BrokerClient() { shutdown(); }

void BrokerClient::start() {
  auto [ours, theirs] = sys::socket_pair(SOCK_SEQPACKET, false);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), 3);  // dup2 clears CLOEXEC
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string arg0 = broker_path_, arg1 = temp_root_;
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid;
  int rc = posix_spawn(&pid, broker_path_.c_str(), &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw Error(ErrorKind::kFaas, "cannot start the broker " + broker_path_ + ": " + std::strerror(rc));

  std::lock_guard lock(mu_);
  pid_ = pid;
  pidfd_.reset(sys::pidfd_open(pid));
  control_ = std::move(ours);
  alive_ = true;
  token_ = reactor_.watch(control_.get(), EPOLLIN | EPOLLRDHUP, [this](uint32_t) { on_readable(); });
  log::logger()->debug("broker started (pid {})", pid);
}

bool BrokerClient::alive() {
  std::lock_guard lock(mu_);
  return alive_;
}

void BrokerClient::spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         const std::array<int, 4>& fds, SpawnCallback on_spawned) {
  ByteWriter out;
  uint32_t request;
  {
    std::lock_guard lock(mu_);
    if (!alive_) throw Error(ErrorKind::kFaas, "the sandbox broker is not running");
    request = next_request_++;
    pending_.emplace(request, std::move(on_spawned));
  }
  out.u8(kBrokerSpawn);
  out.u32(request);
  out.u32(static_cast<uint32_t>(argv.size()));
  for (const auto& a : argv) out.str(a);
  out.u32(static_cast<uint32_t>(env.size()));
  for (const auto& e : env) out.str(e);
  if (out.buffer().size() > sys::kMaxControlMessage) {
    std::lock_guard lock(mu_);
    pending_.erase(request);
    throw Error(ErrorKind::kFaas, "the host environment is too large to pass to a sandbox (" +
                                      std::to_string(out.buffer().size()) + " bytes)");
  }
  if (!sys::send_message(control_.get(), out.buffer(), fds)) {
    std::lock_guard lock(mu_);
    pending_.erase(request);
    throw Error(ErrorKind::kFaas, "the sandbox broker is gone");
  }
}

void BrokerClient::on_readable() {
  std::vector<char> buf;
  for (;;) {
    std::vector<UniqueFd> fds;
    ssize_t n = sys::recv_message(control_.get(), buf, fds);
    if (n < 0) return;
    if (n == 0) {
      log::logger()->error("the sandbox broker exited unexpectedly");
      {
        std::lock_guard lock(mu_);
        alive_ = false;
        reactor_.unwatch(token_, control_.get());
        token_ = 0;
      }
      fail_pending(EPIPE);
      return;
    }
    try {
      ByteReader in(buf.data(), static_cast<size_t>(n));
      uint8_t type = in.u8();
      if (type == kBrokerSpawned) {
        uint32_t request = in.u32();
        pid_t pid = in.i32();
        int err = in.i32();
        SpawnCallback cb;
        {
          std::lock_guard lock(mu_);
          auto it = pending_.find(request);
          if (it == pending_.end()) continue;
          cb = std::move(it->second);
          pending_.erase(it);
        }
        UniqueFd pidfd = fds.empty() ? UniqueFd() : std::move(fds.front());
        cb(pid, std::move(pidfd), err);
      } else if (type == kBrokerExited) {
        pid_t pid = in.i32();
        int status = in.i32();
        log::logger()->debug("zygote {} {}", pid, sys::describe_wait_status(status));
      }
    } catch (const DecodeError& e) {
      log::logger()->error("malformed broker message: {}", e.what());
    }
  }
}

void BrokerClient::fail_pending(int error) {
  std::unordered_map<uint32_t, SpawnCallback> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(pending_);
  }
  for (auto& [request, cb] : pending) cb(-1, UniqueFd(), error);
}

void BrokerClient::shutdown() {
  pid_t pid;
  UniqueFd pidfd;
  {
    std::lock_guard lock(mu_);
    if (pid_ == 0) return;
    if (token_) reactor_.unwatch(token_, control_.get());
    token_ = 0;
    control_.reset();  // EOF tells the broker to kill everything and exit
    alive_ = false;
    pid = std::exchange(pid_, 0);
    pidfd = std::move(pidfd_);
  }
  if (pidfd) {
    struct pollfd p{pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, 15000) == 0) {
      log::logger()->error("broker {} did not exit within 15 s; killing it", pid);
      ::kill(pid, SIGKILL);
    }
  }
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  fail_pending(EPIPE);
}

}  // namespace faas::sandbox
