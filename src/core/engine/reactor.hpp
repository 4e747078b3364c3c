// The engine's single I/O thread: one epoll set multiplexing every sandbox, zygote and broker
// descriptor, plus deadline timers and tasks posted from other threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/util/unique_fd.hpp"

namespace faas::engine {

class Reactor {
 public:
  using Clock = std::chrono::steady_clock;
  using Handler = std::function<void(uint32_t events)>;

  Reactor();
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  void start();
  void stop();  // joins the thread; handlers are not called afterwards
  bool in_reactor_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

  // Thread-safe. The handler runs on the reactor thread for each readiness event (level
  // triggered) until unwatch(); events already fetched for an unwatched token are dropped.
  uint64_t watch(int fd, uint32_t events, Handler handler);
  void unwatch(uint64_t token, int fd);
  // Pauses (events = 0) or resumes a watch without dropping its handler.
  void modify(uint64_t token, int fd, uint32_t events);

  // Thread-safe one-shot timers; cancelled timers never run.
  uint64_t add_timer(Clock::time_point when, std::function<void()> fn);
  void cancel_timer(uint64_t id);

  // Runs fn on the reactor thread soon.
  void post(std::function<void()> fn);

 private:
  void run();
  void wake();
  void run_due_timers();
  void run_posted();
  Clock::time_point next_deadline();

  UniqueFd epoll_;
  UniqueFd wake_fd_;
  std::thread thread_;
  bool running_ = false;

  std::mutex handlers_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Handler>> handlers_;
  uint64_t next_token_ = 1;  // 0 is the wake eventfd

  std::mutex timers_mu_;
  std::map<std::pair<Clock::time_point, uint64_t>, std::function<void()>> timers_;
  std::unordered_map<uint64_t, Clock::time_point> timer_index_;
  uint64_t next_timer_ = 1;

  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
};

}  // namespace faas::engine
