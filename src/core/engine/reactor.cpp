#include "core/engine/reactor.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <cstring>

#include "core/log/logging.hpp"
#include "core/util/syscalls.hpp"

namespace faas::engine {

Reactor::Reactor() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) sys::throw_errno("epoll_create1");
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) sys::throw_errno("eventfd");
  struct epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev) < 0)
    sys::throw_errno("epoll_ctl(ADD eventfd)");
}

Reactor::~Reactor() { stop(); }

void Reactor::start() {
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void Reactor::stop() {
  if (!thread_.joinable()) return;
  post([this] { running_ = false; });
  thread_.join();
}

uint64_t Reactor::watch(int fd, uint32_t events, Handler handler) {
  uint64_t token;
  {
    std::lock_guard lock(handlers_mu_);
    token = next_token_++;
    handlers_.emplace(token, std::make_shared<Handler>(std::move(handler)));
  }
  struct epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
    std::lock_guard lock(handlers_mu_);
    handlers_.erase(token);
    sys::throw_errno("epoll_ctl(ADD)");
  }
  return token;
}

void Reactor::unwatch(uint64_t token, int fd) {
  if (token == 0) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  std::lock_guard lock(handlers_mu_);
  handlers_.erase(token);
}

void Reactor::modify(uint64_t token, int fd, uint32_t events) {
  if (token == 0) return;
  struct epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
}

uint64_t Reactor::add_timer(Clock::time_point when, std::function<void()> fn) {
  bool earliest;
  uint64_t id;
  {
    std::lock_guard lock(timers_mu_);
    id = next_timer_++;
    earliest = timers_.empty() || when < timers_.begin()->first.first;
    timers_.emplace(std::make_pair(when, id), std::move(fn));
    timer_index_.emplace(id, when);
  }
  if (earliest && !in_reactor_thread()) wake();
  return id;
}

void Reactor::cancel_timer(uint64_t id) {
  std::lock_guard lock(timers_mu_);
  auto it = timer_index_.find(id);
  if (it == timer_index_.end()) return;
  timers_.erase({it->second, id});
  timer_index_.erase(it);
}

void Reactor::post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  wake();
}

void Reactor::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

Reactor::Clock::time_point Reactor::next_deadline() {
  std::lock_guard lock(timers_mu_);
  return timers_.empty() ? Clock::time_point::max() : timers_.begin()->first.first;
}

void Reactor::run_due_timers() {
  for (;;) {
    std::function<void()> fn;
    {
      std::lock_guard lock(timers_mu_);
      if (timers_.empty() || timers_.begin()->first.first > Clock::now()) return;
      auto it = timers_.begin();
      fn = std::move(it->second);
      timer_index_.erase(it->first.second);
      timers_.erase(it);
    }
    try {
      fn();
    } catch (const std::exception& e) {
      log::logger()->error("timer task failed: {}", e.what());
    }
  }
}

void Reactor::run_posted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(posted_mu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) {
    try {
      task();
    } catch (const std::exception& e) {
      log::logger()->error("posted task failed: {}", e.what());
    }
  }
}

void Reactor::run() {
  constexpr int kMaxEvents = 128;
  struct epoll_event events[kMaxEvents];
  while (running_) {
    auto deadline = next_deadline();
    struct timespec ts{};
    struct timespec* timeout = nullptr;
    if (deadline != Clock::time_point::max()) {
      auto wait = std::max(deadline - Clock::now(), Clock::duration::zero());
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
      ts.tv_sec = ns / 1'000'000'000;
      ts.tv_nsec = ns % 1'000'000'000;
      timeout = &ts;
    }
    int n = ::epoll_pwait2(epoll_.get(), events, kMaxEvents, timeout, nullptr);
    if (n < 0 && errno != EINTR) {
      log::logger()->critical("epoll_pwait2 failed: {}", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      uint64_t token = events[i].data.u64;
      if (token == 0) {
        uint64_t count;
        (void)!::read(wake_fd_.get(), &count, sizeof count);
        continue;
      }
      std::shared_ptr<Handler> handler;
      {
        std::lock_guard lock(handlers_mu_);
        auto it = handlers_.find(token);
        if (it == handlers_.end()) continue;
        handler = it->second;
      }
      try {
        (*handler)(events[i].events);
      } catch (const std::exception& e) {
        log::logger()->error("reactor handler failed: {}", e.what());
      }
    }
    run_due_timers();
    run_posted();
  }
}

}  // namespace faas::engine
