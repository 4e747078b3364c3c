#include "core/sandbox/sandbox.hpp"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "core/engine/reactor.hpp"
#include "core/errors.hpp"
#include "core/log/logging.hpp"
#include "core/protocol/codec.hpp"
#include "core/protocol/messages.hpp"
#include "core/sandbox/branch_supervisor.hpp"
#include "core/util/syscalls.hpp"

namespace faas::sandbox {
namespace {

using Clock = std::chrono::steady_clock;
using namespace faas::protocol;

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxReadPerEvent = 1 << 20;     // fairness between sandboxes
constexpr size_t kMaxDrainAfterExit = 16u << 20;  // a grandchild may keep the pipe busy
constexpr auto kMarkerGrace = std::chrono::seconds(2);
constexpr auto kSpinBeforeBlock = std::chrono::microseconds(50);
// Waiting only matters when no status ever comes (the parent zygote or template died): a status
// that arrives finalizes at once. Generous, because a busy zygote can be slow to report.
constexpr auto kExitStatusGrace = std::chrono::milliseconds(500);
constexpr const char* kExitedReason = "the sandbox process exited";

std::string random_token() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string token(kMarkerTokenSize, '\0');
  for (size_t i = 0; i < kMarkerTokenSize; i += 8) {
    uint64_t v = rng();
    std::memcpy(token.data() + i, &v, 8);
  }
  return token;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

Clock::time_point after_seconds(double s) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

Sandbox::Sandbox(SandboxHost& host, std::string id, SandboxSpec spec, std::shared_ptr<OwnedDirectory> workdir,
                 std::vector<std::shared_ptr<OwnedDirectory>> pinned, std::string origin_snapshot)
    : host_(host), id_(std::move(id)), spec_(std::move(spec)), workdir_(std::move(workdir)),
      pinned_(std::move(pinned)), origin_snapshot_(std::move(origin_snapshot)), created_at_(Clock::now()),
      owner_pid_(::getpid()) {
  host_.metrics().sandboxes_live.fetch_add(1, std::memory_order_relaxed);
}

Sandbox::~Sandbox() = default;

std::vector<std::shared_ptr<OwnedDirectory>> Sandbox::release_directories() {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<OwnedDirectory>> dirs = std::move(pinned_);
  pinned_.clear();
  // The workdir path itself stays referenced (workdir() must keep answering); only our share
  // of ownership moves, through a fresh holder of the same path.
  if (workdir_) {
    dirs.push_back(workdir_);
    workdir_ = std::make_shared<OwnedDirectory>(workdir_->path(), false);
  }
  return dirs;
}

pid_t Sandbox::pid() {
  std::lock_guard lock(mu_);
  return pid_;
}

Sandbox::State Sandbox::state() {
  std::lock_guard lock(mu_);
  return state_;
}

bool Sandbox::alive() {
  std::lock_guard lock(mu_);
  return state_ != State::kDead;
}

bool Sandbox::closed() {
  std::lock_guard lock(mu_);
  return close_requested_;
}

std::string Sandbox::death_reason() {
  std::lock_guard lock(mu_);
  return death_reason_;
}

void Sandbox::attach_channels(UniqueFd socket, UniqueFd stdout_read, UniqueFd stderr_read) {
  std::lock_guard lock(mu_);
  socket_ = std::move(socket);
  stdout_ = std::move(stdout_read);
  stderr_ = std::move(stderr_read);
  auto& reactor = host_.reactor();
  std::weak_ptr<Sandbox> weak = weak_from_this();
  socket_token_ = reactor.watch(socket_.get(), EPOLLIN | EPOLLRDHUP, [weak](uint32_t ev) {
    if (auto self = weak.lock()) self->on_socket_event(ev);
  });
  stdout_token_ = reactor.watch(stdout_.get(), EPOLLIN, [weak](uint32_t ev) {
    if (auto self = weak.lock()) self->on_output_event(1, ev);
  });
  stderr_token_ = reactor.watch(stderr_.get(), EPOLLIN, [weak](uint32_t ev) {
    if (auto self = weak.lock()) self->on_output_event(2, ev);
  });
}

void Sandbox::attach_process(pid_t pid, UniqueFd pidfd, const std::string& private_dir) {
  std::lock_guard lock(mu_);
  if (!private_dir.empty()) pinned_.push_back(std::make_shared<OwnedDirectory>(private_dir, true));
  pid_ = pid;
  pidfd_ = std::move(pidfd);
  adopt_listener_locked();
  cv_.notify_all();
  std::weak_ptr<Sandbox> weak = weak_from_this();
  pidfd_token_ = host_.reactor().watch(pidfd_.get(), EPOLLIN, [weak](uint32_t) {
    if (auto self = weak.lock()) self->on_process_exit();
  });
  if (kill_requested_) kill_locked(death_reason_.empty() ? "closed" : death_reason_);
}

void Sandbox::adopt_listener_locked() {
  if (kernel_listener_ < 0 || !pidfd_ || supervisor_) return;
  int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd_.get(), kernel_listener_, 0));
  kernel_listener_ = -1;
  if (fd < 0) {
    log::logger()->warn("sandbox {}: cannot take its seccomp listener: {}", id_, std::strerror(errno));
    return;
  }
  supervisor_ = BranchSupervisor::start(host_.reactor(), UniqueFd(fd), pid_);
}

std::shared_ptr<BranchSupervisor> Sandbox::branch_supervisor() {
  std::lock_guard lock(mu_);
  return supervisor_;
}

void Sandbox::set_branch_supervisor(std::shared_ptr<BranchSupervisor> supervisor) {
  std::lock_guard lock(mu_);
  supervisor_ = std::move(supervisor);
}

void Sandbox::fail_start(const std::string& reason) {
  std::lock_guard lock(mu_);
  if (finalized_) return;
  mark_dead_locked(reason);
  exited_ = true;
  finalize_exit_locked();
}

void Sandbox::on_exit_status(int status) {
  std::lock_guard lock(mu_);
  exit_status_ = status;
  if (finalized_ && death_reason_ == kExitedReason) death_reason_ = "the sandbox process " + sys::describe_wait_status(status);
  if (exited_ && !finalized_) {
    host_.reactor().cancel_timer(exit_grace_timer_);
    finalize_exit_locked();
  }
}

bool Sandbox::wait_ready(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  // READY (data socket) and FORKED (fork server socket) may arrive in either order; ready
  // means both, so pid() is known.
  auto ready = [&] { return state_ == State::kDead || (state_ != State::kStarting && pid_ > 0); };
  cv_.wait_for(lock, timeout, ready);
  if (state_ == State::kDead)
    throw Error(start_failure_kind(death_reason_, ErrorKind::kSandboxDead),
                "sandbox " + id_ + " failed to start: " + death_reason_);
  return ready();
}

std::shared_ptr<Execution> Sandbox::submit(const std::string& code, std::optional<double> timeout_s,
                                           bool streaming, bool direct, uint8_t frame_type,
                                           const std::function<std::string()>& before_send) {
  if (::getpid() != owner_pid_)
    throw Error(ErrorKind::kFaas, "sandbox " + id_ + " belongs to process " + std::to_string(owner_pid_) +
                                      "; sandboxes cannot be used across fork()");
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return state_ != State::kStarting; }))
    throw Error(ErrorKind::kFaas, "sandbox " + id_ + " did not become ready within 60 s");
  cv_.wait(lock, [&] { return state_ != State::kBusy; });
  if (state_ == State::kDead) throw Error(ErrorKind::kSandboxDead, "sandbox " + id_ + " is dead: " + death_reason_);

  auto exec = std::make_shared<Execution>(next_seq_++, spec_.output_limit, streaming);
  current_ = exec;
  request_type_ = frame_type;
  state_ = State::kBusy;
  result_received_ = false;
  pending_ = Outcome{};
  std::string token = random_token();
  std::string marker = std::string(kMarkerPrefix, kMarkerPrefixSize) + token;
  for (int i = 0; i < 2; ++i) {
    capture_[i].arm(marker);
    if (!idle_output_[i].empty()) {
      exec->append_output(i + 1, idle_output_[i]);
      idle_output_[i].clear();
    }
  }
  if (timeout_s) {
    current_timeout_s_ = *timeout_s;
    std::weak_ptr<Sandbox> weak = weak_from_this();
    uint64_t seq = exec->seq();
    deadline_timer_ = host_.reactor().add_timer(after_seconds(*timeout_s), [weak, seq] {
      if (auto self = weak.lock()) self->on_deadline(seq);
    });
  }
  host_.metrics().executions.fetch_add(1, std::memory_order_relaxed);
  if (direct) set_direct_locked(true);

  FrameHeader header{static_cast<uint32_t>(kMarkerTokenSize + code.size()), frame_type, 0, 0};
  std::string frame;
  frame.reserve(sizeof header + header.length);
  frame.append(reinterpret_cast<const char*>(&header), sizeof header);
  frame.append(token);
  frame.append(code);
  int fd = socket_.get();  // stays open for the sandbox's lifetime (closed in the destructor)
  lock.unlock();

  if (before_send) {
    std::string error;
    try {
      error = before_send();
    } catch (const std::exception& e) {
      error = e.what();  // never leave the sandbox busy with a request that was not sent
    }
    if (!error.empty()) {
      std::lock_guard relock(mu_);
      if (current_ == exec) {
        Outcome o;
        o.error_type = "SnapshotError";
        o.error_message = error;
        finish_locked(std::move(o));
      }
      return exec;
    }
  }

  // Written outside the lock so the reactor keeps draining output meanwhile. If the kernel is
  // gone the write fails and the exit path completes the execution.
  size_t off = 0;
  while (off < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      if (exec->done()) break;
      continue;
    }
    break;  // EPIPE and friends: the process is dying; on_process_exit finishes the execution
  }
  return exec;
}

void Sandbox::set_direct_locked(bool on) {
  if (direct_ == on || finalized_) return;
  direct_ = on;
  uint32_t events = on ? 0 : EPOLLIN;
  auto& reactor = host_.reactor();
  reactor.modify(socket_token_, socket_.get(), on ? 0 : (EPOLLIN | EPOLLRDHUP));
  reactor.modify(stdout_token_, stdout_.get(), events);
  reactor.modify(stderr_token_, stderr_.get(), events);
}

bool Sandbox::pump(const std::shared_ptr<Execution>& exec, std::chrono::milliseconds max_wait,
                   std::vector<StreamChunk>& chunks) {
  struct pollfd fds[3];
  {
    std::lock_guard lock(mu_);
    // Completed, dying, or handed back to the reactor: just wait for the outcome.
    if (finalized_ || current_ != exec || !direct_) return exec->wait(max_wait, chunks);
    fds[0] = {socket_token_ ? socket_.get() : -1, POLLIN, 0};
    fds[1] = {stdout_token_ ? stdout_.get() : -1, POLLIN, 0};
    fds[2] = {stderr_token_ ? stderr_.get() : -1, POLLIN, 0};
  }
  // The descriptors stay open while the sandbox exists except on finalisation, which is
  // re-checked under the lock before anything is read.
  // Spin briefly before sleeping: a short execution's reply then finds this thread on-CPU,
  // which saves a cross-CPU wake-up (tens of microseconds on these VMs).
  // At most half the CPUs spin at once, so many waiting threads never starve the kernels.
  int n = 0;
  static const int max_spinners = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2);
  static std::atomic<int> spinners{0};
  if (spinners.fetch_add(1, std::memory_order_relaxed) < max_spinners) {
    auto spin_until = Clock::now() + kSpinBeforeBlock;
    while ((n = ::poll(fds, 3, 0)) == 0 && Clock::now() < spin_until) {
    }
  }
  spinners.fetch_sub(1, std::memory_order_relaxed);
  if (n == 0) n = ::poll(fds, 3, static_cast<int>(max_wait.count()));
  if (n > 0) {
    std::lock_guard lock(mu_);
    if (!finalized_ && current_ == exec) {
      if (fds[1].revents) read_output_locked(1);
      if (fds[2].revents) read_output_locked(2);
      if (fds[0].revents) read_socket_locked();
      if (!finalized_) try_finish_locked();
    }
  }
  return exec->wait(std::chrono::milliseconds(0), chunks);
}

void Sandbox::interrupt(const std::shared_ptr<Execution>& exec) {
  std::lock_guard lock(mu_);
  if (!current_ || current_ != exec || exited_) return;
  host_interrupted_ = true;
  if (pidfd_) sys::pidfd_send_signal(pidfd_.get(), SIGINT);
  std::weak_ptr<Sandbox> weak = weak_from_this();
  uint64_t seq = exec->seq();
  if (kill_timer_) host_.reactor().cancel_timer(kill_timer_);
  kill_timer_ = host_.reactor().add_timer(after_seconds(spec_.interrupt_grace_s), [weak, seq] {
    if (auto self = weak.lock()) self->on_kill_deadline(seq);
  });
}

void Sandbox::kill(const std::string& reason) {
  std::lock_guard lock(mu_);
  kill_locked(reason);
}

void Sandbox::close() {
  if (::getpid() != owner_pid_) return;  // inherited through fork(): the parent owns it
  std::unique_lock lock(mu_);
  if (close_requested_ && finished_reported_) return;
  close_requested_ = true;
  if (!finalized_) kill_locked("closed");
  cv_.wait_for(lock, std::chrono::seconds(10), [&] { return finalized_; });
  if (!finalized_) {
    log::logger()->error("sandbox {} (pid {}) did not exit within 10 s of SIGKILL", id_, pid_);
    return;
  }
  if (!finished_reported_) {
    finished_reported_ = true;
    lock.unlock();
    host_.sandbox_finished(shared_from_this());
  }
}

void Sandbox::close_async() {
  if (::getpid() != owner_pid_) return;
  std::unique_lock lock(mu_);
  if (close_requested_) return;
  close_requested_ = true;
  async_close_ = true;
  if (!finalized_) {
    kill_locked("closed");
    return;
  }
  finished_reported_ = true;
  lock.unlock();
  host_.sandbox_finished(shared_from_this());
}

// ---- reactor side ----------------------------------------------------------------------

void Sandbox::on_socket_event(uint32_t events) {
  std::lock_guard lock(mu_);
  if (finalized_) return;
  read_socket_locked();
}

void Sandbox::read_socket_locked() {
  size_t total = 0;
  while (total < kMaxReadPerEvent) {
    if (rx_.size() - rx_end_ < kReadChunk) {
      if (rx_begin_ > 0) {
        std::memmove(rx_.data(), rx_.data() + rx_begin_, rx_end_ - rx_begin_);
        rx_end_ -= rx_begin_;
        rx_begin_ = 0;
      }
      if (rx_.size() - rx_end_ < kReadChunk) rx_.resize(std::max(rx_.size() * 2, rx_end_ + kReadChunk));
    }
    // recvmsg, not read: a snapshot reply carries descriptors.
    struct iovec iov{rx_.data() + rx_end_, rx_.size() - rx_end_};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    struct msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        rx_fds_.emplace_back(received);
      }
    }
    if (rx_fds_.size() > 8) {
      rx_fds_.clear();
      kill_locked("protocol violation: unexpected descriptors");
      return;
    }
    if (n < 0) break;  // EAGAIN: drained
    if (n == 0) {
      host_.reactor().unwatch(socket_token_, socket_.get());
      socket_token_ = 0;
      // Usually the process is dying; the pidfd path then reports how. A kernel that
      // closed its channel but lives on is useless: kill it if it has not exited soon.
      std::weak_ptr<Sandbox> weak = weak_from_this();
      host_.reactor().add_timer(Clock::now() + std::chrono::milliseconds(100), [weak] {
        auto self = weak.lock();
        if (!self) return;
        std::lock_guard lock(self->mu_);
        if (!self->exited_) self->kill_locked("the kernel closed its channel");
      });
      break;
    }
    rx_end_ += static_cast<size_t>(n);
    total += static_cast<size_t>(n);
    // Parse every complete frame.
    while (rx_end_ - rx_begin_ >= sizeof(FrameHeader)) {
      FrameHeader h;
      std::memcpy(&h, rx_.data() + rx_begin_, sizeof h);
      if (h.length > kMaxKernelFrame) {
        if (current_) {
          Outcome o;
          o.kind = OutcomeKind::kProtocolError;
          o.error_type = "ProtocolError";
          o.error_message = "the kernel sent a frame of " + std::to_string(h.length) + " bytes (limit " +
                            std::to_string(kMaxKernelFrame) + ")";
          finish_locked(std::move(o));
        }
        kill_locked("protocol violation: oversized frame");
        rx_begin_ = rx_end_ = 0;
        return;
      }
      if (rx_end_ - rx_begin_ < sizeof h + h.length) break;
      std::string_view payload(rx_.data() + rx_begin_ + sizeof h, h.length);
      handle_frame(h.type, h.flags, payload);
      rx_begin_ += sizeof h + h.length;
      if (finalized_) return;
    }
    if (rx_begin_ == rx_end_) rx_begin_ = rx_end_ = 0;
  }
}

void Sandbox::handle_frame(uint8_t type, uint8_t flags, std::string_view payload) {
  switch (type) {
    case kFrameReady:
      if (state_ == State::kStarting) {
        if (payload.size() >= 8 && !spec_.isolation.empty() && !is_branch()) {
          int32_t listener;
          std::memcpy(&listener, payload.data() + 4, sizeof listener);
          kernel_listener_ = listener;
          adopt_listener_locked();
        }
        state_ = State::kIdle;
        auto& m = host_.metrics();
        (is_branch() ? m.branch_start : m.sandbox_start)
            .record_ns(static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - created_at_).count()));
        (is_branch() ? m.branches_created : m.sandboxes_started).fetch_add(1, std::memory_order_relaxed);
        cv_.notify_all();
      }
      return;
    case kFrameResult:
      // A hostile kernel must not answer a snapshot with a result, or slip descriptors in.
      if (request_type_ != kFrameExec || !rx_fds_.empty()) {
        kill_locked("protocol violation: unexpected result frame");
        return;
      }
      handle_result(flags, payload);
      return;
    case kFrameSnapshotDone: {
      if (request_type_ != kFrameSnapshot) {
        kill_locked("protocol violation: unexpected snapshot reply");
        return;
      }
      std::shared_ptr<Execution> exec = current_;
      std::vector<UniqueFd> fds;
      while (!rx_fds_.empty()) {
        fds.push_back(std::move(rx_fds_.front()));
        rx_fds_.pop_front();
      }
      if (exec) exec->set_fds(std::move(fds));  // before completion, so the waiter sees them
      handle_result(flags, payload);
      return;
    }
    case kFrameFatal: {
      std::string message = "kernel failed to start";
      try {
        ByteReader in(payload);
        message += ": " + std::string(in.str(4096));
      } catch (const DecodeError&) {
      }
      kill_locked(message);
      return;
    }
    default:
      kill_locked("protocol violation: unknown frame type " + std::to_string(type));
  }
}

void Sandbox::handle_result(uint8_t flags, std::string_view payload) {
  if (!current_ || result_received_) {
    kill_locked("protocol violation: unexpected result frame");
    return;
  }
  uint8_t markers = 0;
  try {
    ByteReader in(payload);
    uint8_t status = in.u8();
    markers = in.u8();
    in.u16();
    pending_.kernel_ns = in.u64();
    pending_.value = in.str();
    pending_.error_type = in.str(4096);
    pending_.error_message = in.str();
    pending_.traceback = in.str();
    pending_.success = status == kStatusOk;
    pending_.has_value = (flags & kFlagHasValue) != 0;
  } catch (const DecodeError& e) {
    Outcome o;
    o.kind = OutcomeKind::kProtocolError;
    o.error_type = "ProtocolError";
    o.error_message = std::string("malformed result frame: ") + e.what();
    finish_locked(std::move(o));
    kill_locked("protocol violation: malformed result frame");
    return;
  }
  result_received_ = true;
  for (int i = 0; i < 2; ++i) {
    if (markers & (1 << i)) continue;
    std::string held;
    capture_[i].disarm(held);
    current_->append_output(i + 1, held);
  }
  try_finish_locked();
}

void Sandbox::on_output_event(int stream, uint32_t events) {
  std::lock_guard lock(mu_);
  if (finalized_) return;
  read_output_locked(stream);
  try_finish_locked();
}

void Sandbox::read_output_locked(int stream) {
  int fd = stream == 1 ? stdout_.get() : stderr_.get();
  char buf[kReadChunk];
  size_t total = 0;
  while (total < kMaxReadPerEvent) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) {  // every writer closed: stop watching, the exit path does the rest
        uint64_t& token = stream == 1 ? stdout_token_ : stderr_token_;
        host_.reactor().unwatch(token, fd);
        token = 0;
      }
      break;
    }
    total += static_cast<size_t>(n);
    route_output(stream, std::string_view(buf, static_cast<size_t>(n)));
  }
}

void Sandbox::route_output(int stream, std::string_view data) {
  std::string for_execution, after;
  int i = stream - 1;
  capture_[i].feed(data, for_execution, after);
  if (current_ && !for_execution.empty()) current_->append_output(stream, for_execution);
  if (!after.empty()) {
    size_t room = spec_.output_limit > idle_output_[i].size() ? spec_.output_limit - idle_output_[i].size() : 0;
    idle_output_[i].append(after.substr(0, room));
  }
}

void Sandbox::try_finish_locked() {
  if (!current_ || !result_received_) return;
  if (capture_[0].awaiting_marker() || capture_[1].awaiting_marker()) {
    if (marker_timer_ == 0) {
      std::weak_ptr<Sandbox> weak = weak_from_this();
      uint64_t seq = current_->seq();
      marker_timer_ = host_.reactor().add_timer(Clock::now() + kMarkerGrace, [weak, seq] {
        auto self = weak.lock();
        if (!self) return;
        std::lock_guard lock(self->mu_);
        if (!self->current_ || self->current_->seq() != seq) return;
        log::logger()->warn("sandbox {}: end-of-output marker missing after 2 s; completing", self->id_);
        for (int i = 0; i < 2; ++i) {
          std::string held;
          self->capture_[i].disarm(held);
          self->current_->append_output(i + 1, held);
        }
        self->try_finish_locked();
      });
    }
    return;
  }
  Outcome o = std::move(pending_);
  bool timed_out = timed_out_;
  if (timed_out) {
    o.kind = OutcomeKind::kTimeout;
    o.success = false;
    o.has_value = false;
    o.value.clear();
    o.error_type = "ExecutionTimeout";
    o.error_message = "execution exceeded its timeout of " + seconds_text(current_timeout_s_) +
                      " s; the sandbox was interrupted and is now dead";
  } else if (host_interrupted_) {
    o.kind = OutcomeKind::kInterrupted;
  }
  finish_locked(std::move(o));
  if (timed_out) kill_locked("killed after an execution timed out");
}

void Sandbox::finish_locked(Outcome outcome) {
  auto& reactor = host_.reactor();
  for (uint64_t* t : {&deadline_timer_, &kill_timer_, &marker_timer_}) {
    if (*t) reactor.cancel_timer(*t);
    *t = 0;
  }
  auto exec = std::move(current_);
  current_.reset();
  result_received_ = false;
  timed_out_ = false;
  host_interrupted_ = false;
  pending_ = Outcome{};
  for (auto& c : capture_) {
    std::string held;
    c.disarm(held);
  }
  if (state_ == State::kBusy) state_ = State::kIdle;
  set_direct_locked(false);
  if (!outcome.success) host_.metrics().executions_failed.fetch_add(1, std::memory_order_relaxed);
  if (outcome.kind == OutcomeKind::kTimeout) host_.metrics().timeouts.fetch_add(1, std::memory_order_relaxed);
  host_.metrics().execute.record_ns(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - exec->started_at()).count()));
  exec->complete(std::move(outcome));
  cv_.notify_all();
}

void Sandbox::on_deadline(uint64_t seq) {
  std::lock_guard lock(mu_);
  deadline_timer_ = 0;
  if (!current_ || current_->seq() != seq || exited_) return;
  timed_out_ = true;
  if (pidfd_) sys::pidfd_send_signal(pidfd_.get(), SIGINT);
  std::weak_ptr<Sandbox> weak = weak_from_this();
  if (kill_timer_) host_.reactor().cancel_timer(kill_timer_);
  kill_timer_ = host_.reactor().add_timer(after_seconds(spec_.interrupt_grace_s), [weak, seq] {
    if (auto self = weak.lock()) self->on_kill_deadline(seq);
  });
}

void Sandbox::on_kill_deadline(uint64_t seq) {
  std::lock_guard lock(mu_);
  kill_timer_ = 0;
  if (!current_ || current_->seq() != seq) return;
  kill_locked(timed_out_ ? "killed after an execution timed out"
                         : "killed: the execution did not stop after an interrupt");
}

void Sandbox::mark_dead_locked(const std::string& reason) {
  if (state_ == State::kDead) return;
  state_ = State::kDead;
  death_reason_ = reason;
  cv_.notify_all();
}

void Sandbox::kill_locked(const std::string& reason) {
  if (::getpid() != owner_pid_) return;  // a copy inherited through fork(): not ours
  mark_dead_locked(reason);
  if (exited_) return;
  if (pid_ <= 0) {
    kill_requested_ = true;  // attach_process() kills it as soon as the pid is known
    return;
  }
  // The kernel leads its own session and process group: take its children down with it.
  ::kill(-pid_, SIGKILL);
  if (pidfd_) sys::pidfd_send_signal(pidfd_.get(), SIGKILL);
}

void Sandbox::on_process_exit() {
  std::lock_guard lock(mu_);
  if (exited_) return;
  exited_ = true;
  host_.reactor().unwatch(pidfd_token_, pidfd_.get());
  pidfd_token_ = 0;
  if (!exit_status_ && (current_ || state_ != State::kDead)) {
    // The zygote reports the wait status a moment later; wait for it (briefly) so the result,
    // or the death reason, can say how the process died. Not needed when the engine killed
    // an idle sandbox itself: it knows why.
    std::weak_ptr<Sandbox> weak = weak_from_this();
    exit_grace_timer_ = host_.reactor().add_timer(Clock::now() + kExitStatusGrace, [weak] {
      auto self = weak.lock();
      if (!self) return;
      std::lock_guard lock(self->mu_);
      self->finalize_exit_locked();
    });
    return;
  }
  finalize_exit_locked();
}

void Sandbox::drain_output_locked() {
  for (int stream = 1; stream <= 2; ++stream) {
    UniqueFd& fd = stream == 1 ? stdout_ : stderr_;
    if (!fd) continue;
    char buf[kReadChunk];
    size_t total = 0;
    while (total < kMaxDrainAfterExit) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      total += static_cast<size_t>(n);
      route_output(stream, std::string_view(buf, static_cast<size_t>(n)));
    }
  }
}

void Sandbox::finalize_exit_locked() {
  if (finalized_) return;
  // A result sent just before death is still in the socket; read it first.
  if (socket_ && socket_token_) {
    read_socket_locked();
    if (finalized_) return;
  }
  drain_output_locked();
  try_finish_locked();
  finalized_ = true;
  auto& reactor = host_.reactor();
  reactor.unwatch(socket_token_, socket_.get());
  reactor.unwatch(stdout_token_, stdout_.get());
  reactor.unwatch(stderr_token_, stderr_.get());
  if (pidfd_token_) reactor.unwatch(pidfd_token_, pidfd_.get());
  socket_token_ = stdout_token_ = stderr_token_ = pidfd_token_ = 0;
  stdout_.reset();
  stderr_.reset();
  pidfd_.reset();

  std::string how = exit_status_ ? sys::describe_wait_status(*exit_status_) : "exited";
  if (state_ != State::kDead) {
    // Without a status yet, on_exit_status() refines this reason when it arrives.
    mark_dead_locked(exit_status_ ? "the sandbox process " + how : kExitedReason);
    host_.metrics().sandbox_deaths.fetch_add(1, std::memory_order_relaxed);
  }
  if (current_) {
    Outcome o;
    o.success = false;
    if (timed_out_) {
      o.kind = OutcomeKind::kTimeout;
      o.error_type = "ExecutionTimeout";
      o.error_message = "execution exceeded its timeout of " + seconds_text(current_timeout_s_) +
                        " s and did not stop after SIGINT; the sandbox was killed";
    } else {
      o.kind = OutcomeKind::kDied;
      o.error_type = "SandboxDead";
      o.error_message = "the sandbox process died during the execution (" + how + ")";
      // Say why when the engine itself killed it (e.g. it closed its channel).
      if (death_reason_.rfind("the sandbox process", 0) != 0) o.error_message += ": " + death_reason_;
    }
    finish_locked(std::move(o));
  }
  host_.metrics().sandboxes_live.fetch_sub(1, std::memory_order_relaxed);
  cv_.notify_all();
  if (async_close_ && !finished_reported_) {
    finished_reported_ = true;
    // Reported from a posted task: sandbox_finished() takes this sandbox's lock again.
    auto self = shared_from_this();
    host_.reactor().post([self] { self->host_.sandbox_finished(self); });
  }
}

}  // namespace faas::sandbox
