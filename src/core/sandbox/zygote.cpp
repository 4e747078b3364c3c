#include "core/sandbox/zygote.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "core/engine/reactor.hpp"
#include "core/errors.hpp"
#include "core/log/logging.hpp"
#include "core/protocol/codec.hpp"
#include "core/protocol/messages.hpp"
#include "core/sandbox/broker_client.hpp"
#include "core/sandbox/sandbox.hpp"
#include "core/util/syscalls.hpp"

extern char** environ;

namespace faas::sandbox {

using namespace faas::protocol;

// The host's environment, plus glibc's transparent-huge-page malloc (design.md §7): large
// allocations then sit in 2 MiB pages, so fork() -- every snapshot and branch -- copies far
// fewer page-table entries. A write in a branch still copies 4 KiB (the kernel splits shared
// huge pages on COW since 5.8). FAAS_SDK_HUGE_PAGES=0 in the host turns it off.
std::vector<std::string> Zygote::zygote_environment() {
  const char* opt_out = ::getenv("FAAS_SDK_HUGE_PAGES");
  bool huge_pages = !(opt_out && std::string(opt_out) == "0");
  std::vector<std::string> env;
  bool tunables_seen = false;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    if (huge_pages && entry.rfind("GLIBC_TUNABLES=", 0) == 0) {
      tunables_seen = true;
      if (entry.find("glibc.malloc.hugetlb") == std::string::npos) entry += ":glibc.malloc.hugetlb=1";
    }
    env.push_back(std::move(entry));
  }
  if (huge_pages && !tunables_seen) env.emplace_back("GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
  return env;
}

// An isolated zygote gets a clean, explicit environment: nothing of the host's leaks in.
std::vector<std::string> Zygote::isolated_environment() {
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8",
                                  "PYTHONDONTWRITEBYTECODE=1"};
  for (const std::string& entry : zygote_environment())
    if (entry.rfind("GLIBC_TUNABLES=", 0) == 0) env.push_back(entry);
  return env;
}

std::vector<std::string> Zygote::command_line(const std::string& native_dir) const {
  // -u: unbuffered stdio, so output interleaves in order with os.write() and child processes.
  std::vector<std::string> kernel = {python_, "-u", kernel_script_, "zygote", cwd_, native_dir};
  if (!isolation_) return kernel;
  std::vector<std::string> argv = {isolation_->isolate_path};
  if (::geteuid() != 0) argv.emplace_back("--user-namespace");
  if (isolation_->container) argv.emplace_back("--container");
  if (!isolation_->rootfs.empty()) argv.insert(argv.end(), {"--rootfs", isolation_->rootfs});
  for (const auto& path : isolation_->readonly_paths) argv.insert(argv.end(), {"--ro", path});
  for (const auto& path : isolation_->writable_paths) argv.insert(argv.end(), {"--rw", path});
  argv.emplace_back("--");
  argv.insert(argv.end(), kernel.begin(), kernel.end());
  return argv;
}

Zygote::Zygote(engine::Reactor& reactor, std::string python, std::string kernel_script, std::string cwd,
               std::string native_dir)
    : reactor_(reactor), python_(std::move(python)), kernel_script_(std::move(kernel_script)), cwd_(std::move(cwd)),
      native_dir_(std::move(native_dir)),
      label_("the zygote for " + python_) {}

Zygote::~Zygote() { shutdown(); }

void Zygote::start(BrokerClient& broker) {
  auto [ours, theirs] = sys::socket_pair(SOCK_SEQPACKET, false);
  auto [err_read, err_write] = sys::make_pipe(true);
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) sys::throw_errno("open(/dev/null)");
  {
    std::lock_guard lock(mu_);
    control_ = std::move(ours);
    stderr_ = std::move(err_read);
    std::weak_ptr<Zygote> weak = weak_from_this();
    control_token_ = reactor_.watch(control_.get(), EPOLLIN | EPOLLRDHUP, [weak](uint32_t) {
      if (auto self = weak.lock()) self->on_control_readable();
    });
    stderr_token_ = reactor_.watch(stderr_.get(), EPOLLIN, [weak](uint32_t) {
      if (auto self = weak.lock()) self->on_stderr_readable();
    });
  }
  // The native helper (_faas_native) sits next to the broker; the kernel loads it if it can.
  // FAAS_SDK_NATIVE=0 in the host keeps kernels on their pure-Python steps (LOCAL only:
  // isolation needs it).
  const char* native = ::getenv("FAAS_SDK_NATIVE");
  std::string native_dir = native && std::string(native) == "0" && !isolation_ ? "" : native_dir_;
  std::vector<std::string> argv = command_line(native_dir);
  std::vector<std::string> env = isolation_ ? isolated_environment() : zygote_environment();
  std::weak_ptr<Zygote> weak = weak_from_this();
  std::string python = python_;
  broker.spawn(argv, env, {devnull.get(), devnull.get(), err_write.get(), theirs.get()},
               [weak, python](pid_t pid, UniqueFd pidfd, int error) {
                 auto self = weak.lock();
                 if (!self) return;
                 if (pid <= 0) {
                   self->fail("cannot start interpreter " + python + ": " + std::strerror(error));
                   return;
                 }
                 std::lock_guard lock(self->mu_);
                 self->pid_ = pid;
                 self->pidfd_ = std::move(pidfd);
               });
}

std::shared_ptr<Zygote> Zygote::adopt(engine::Reactor& reactor, std::string label, pid_t pid, UniqueFd control,
                                      UniqueFd pidfd, bool namespaced_pids) {
  auto zygote = std::make_shared<Zygote>(reactor, "", "", "");
  std::lock_guard lock(zygote->mu_);
  zygote->namespaced_pids_ = namespaced_pids;
  zygote->label_ = std::move(label);
  zygote->pid_ = pid;
  zygote->pidfd_ = std::move(pidfd);
  zygote->control_ = std::move(control);
  // Ready once it announces itself: by then it has left the kernel's process group.
  std::weak_ptr<Zygote> weak = zygote;
  zygote->control_token_ = reactor.watch(zygote->control_.get(), EPOLLIN | EPOLLRDHUP, [weak](uint32_t) {
    if (auto self = weak.lock()) self->on_control_readable();
  });
  return zygote;
}

pid_t Zygote::pid() {
  std::lock_guard lock(mu_);
  return pid_;
}

bool Zygote::wait_ready(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return state_ != State::kStarting; });
  if (state_ == State::kDead) throw Error(start_failure_kind(error_, ErrorKind::kFaas), error_);
  return state_ == State::kReady;
}

bool Zygote::alive() {
  std::lock_guard lock(mu_);
  return state_ != State::kDead;
}

void Zygote::fork_sandbox(const std::shared_ptr<Sandbox>& sandbox, UniqueFd socket, UniqueFd stdout_write,
                          UniqueFd stderr_write) {
  const SandboxSpec& spec = sandbox->spec();
  ByteWriter out;
  uint32_t request;
  {
    std::lock_guard lock(mu_);
    if (state_ == State::kDead) throw Error(ErrorKind::kFaas, error_);
    request = next_request_++;
    pending_.emplace(request, sandbox);
  }
  out.u8(kZygoteFork);
  out.u32(request);
  out.str(sandbox->id());
  out.str(sandbox->workdir());
  out.u32(static_cast<uint32_t>(spec.env.size()));
  for (const auto& [k, v] : spec.env) {
    out.str(k);
    out.str(v);
  }
  out.u32(static_cast<uint32_t>(spec.rlimits.size()));
  for (const auto& [resource, value] : spec.rlimits) {
    out.u32(static_cast<uint32_t>(resource));
    out.u64(value);
  }
  out.u8(spec.seed ? 1 : 0);
  out.u64(spec.seed.value_or(0));
  out.u8(spec.loopback ? kForkLoopback : 0);
  if (out.buffer().size() > sys::kMaxControlMessage) {
    {
      std::lock_guard lock(mu_);
      pending_.erase(request);
    }
    throw Error(ErrorKind::kFaas, "the sandbox's environment and limits take " + std::to_string(out.buffer().size()) +
                                      " bytes; at most " + std::to_string(sys::kMaxControlMessage) + " fit");
  }
  int fds[3] = {socket.get(), stdout_write.get(), stderr_write.get()};
  if (!sys::send_message(control_.get(), out.buffer(), fds)) {
    {
      std::lock_guard lock(mu_);
      pending_.erase(request);
    }
    throw Error(ErrorKind::kFaas, label_ + " is gone");
  }
}

void Zygote::on_control_readable() {
  std::vector<char> buf;
  for (;;) {
    std::vector<UniqueFd> fds;
    ssize_t n;
    {
      std::lock_guard lock(mu_);
      if (!control_) return;
      n = sys::recv_message(control_.get(), buf, fds);
    }
    if (n < 0) return;
    if (n == 0) {
      on_stderr_readable();  // collect its last words for the error message
      std::string tail;
      {
        std::lock_guard lock(mu_);
        tail = stderr_tail_;
      }
      fail(label_ + " exited" + (tail.empty() ? "" : ": " + tail));
      return;
    }
    try {
      ByteReader in(buf.data(), static_cast<size_t>(n));
      uint8_t type = in.u8();
      if (type == kZygoteReady) {
        std::lock_guard lock(mu_);
        if (state_ == State::kStarting) state_ = State::kReady;
        cv_.notify_all();
      } else if (type == kZygoteForked) {
        uint32_t request = in.u32();
        pid_t pid = in.i32();
        int err = in.i32();
        std::string message(in.str(4096));
        std::string private_dir(in.remaining() ? in.str(4096) : std::string_view());
        std::shared_ptr<Sandbox> sandbox;
        {
          std::lock_guard lock(mu_);
          auto it = pending_.find(request);
          if (it == pending_.end()) continue;
          sandbox = it->second.lock();
          pending_.erase(it);
          if (sandbox && pid > 0) children_[pid] = sandbox;
        }
        if (!sandbox) continue;
        if (pid > 0 && !fds.empty()) {
          // A containerised zygote reports pids of its own namespace; the pidfd tells ours.
          pid_t host_pid = namespaced_pids_ ? sys::pid_of_pidfd(fds.front().get()) : pid;
          if (host_pid <= 0) {
            sandbox->fail_start("the new kernel exited before it could be attached");
            continue;
          }
          sandbox->attach_process(host_pid, std::move(fds.front()), private_dir);
        } else {
          sandbox->fail_start("fork failed: " + (message.empty() ? std::string(std::strerror(err)) : message));
        }
      } else if (type == kZygoteExited) {
        pid_t pid = in.i32();
        int status = in.i32();
        std::shared_ptr<Sandbox> sandbox;
        {
          std::lock_guard lock(mu_);
          auto it = children_.find(pid);
          if (it == children_.end()) continue;
          sandbox = it->second.lock();
          children_.erase(it);
        }
        if (sandbox) sandbox->on_exit_status(status);
      }
    } catch (const DecodeError& e) {
      log::logger()->error("malformed zygote message: {}", e.what());
    }
  }
}

void Zygote::on_stderr_readable() {
  std::lock_guard lock(mu_);
  if (!stderr_) return;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(stderr_.get(), buf, sizeof buf)) > 0) {
    std::string_view text(buf, static_cast<size_t>(n));
    log::logger()->warn("zygote {}: {}", pid_, text);
    stderr_tail_.append(text);
    if (stderr_tail_.size() > 2048) stderr_tail_.erase(0, stderr_tail_.size() - 2048);
  }
  if (n == 0) {
    reactor_.unwatch(stderr_token_, stderr_.get());
    stderr_token_ = 0;
    stderr_.reset();
  }
}

void Zygote::fail(const std::string& reason) {
  std::unordered_map<uint32_t, std::weak_ptr<Sandbox>> pending;
  {
    std::lock_guard lock(mu_);
    if (state_ == State::kDead) return;
    state_ = State::kDead;
    error_ = reason;
    pending.swap(pending_);
    if (control_token_) reactor_.unwatch(control_token_, control_.get());
    control_token_ = 0;
    cv_.notify_all();
  }
  log::logger()->warn("{}", reason);
  for (auto& [request, weak] : pending) {
    if (auto sandbox = weak.lock()) sandbox->fail_start(reason);
  }
}

void Zygote::shutdown() {
  std::lock_guard lock(mu_);
  if (control_token_) reactor_.unwatch(control_token_, control_.get());
  if (stderr_token_) reactor_.unwatch(stderr_token_, stderr_.get());
  control_token_ = stderr_token_ = 0;
  control_.reset();  // EOF: the zygote exits; its kernels die with it (PDEATHSIG)
  stderr_.reset();
  state_ = State::kDead;
  if (error_.empty()) error_ = label_ + " was shut down";
  cv_.notify_all();
}

}  // namespace faas::sandbox
