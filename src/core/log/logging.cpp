#include "core/log/logging.hpp"

#include <spdlog/sinks/base_sink.h>

#include <condition_variable>
#include <deque>
#include <mutex>

namespace faas::log {
namespace {

// Bounded: if Python stops draining, the engine drops records instead of growing or blocking.
constexpr size_t kMaxQueued = 10000;

struct RecordQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Record> records;
  bool closed = false;
};

RecordQueue& queue() {
  static auto* q = new RecordQueue();  // leaked: must outlive static destruction
  return *q;
}

int to_python_level(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 10;
    case spdlog::level::info: return 20;
    case spdlog::level::warn: return 30;
    case spdlog::level::err: return 40;
    default: return 50;
  }
}

class QueueSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto& q = queue();
    {
      std::lock_guard lock(q.mu);
      if (q.closed || q.records.size() >= kMaxQueued) return;
      q.records.push_back({to_python_level(msg.level), std::string(msg.payload.data(), msg.payload.size())});
    }
    q.cv.notify_one();
  }
  void flush_() override {}
};

}  // namespace

std::shared_ptr<spdlog::logger> logger() {
  static auto* instance = [] {
    auto l = std::make_shared<spdlog::logger>("faas_sdk", std::make_shared<QueueSink>());
    l->set_level(spdlog::level::warn);
    return new std::shared_ptr<spdlog::logger>(l);
  }();
  return *instance;
}

void set_python_level(int level) {
  spdlog::level::level_enum l = spdlog::level::critical;
  if (level <= 10) l = spdlog::level::debug;
  else if (level <= 20) l = spdlog::level::info;
  else if (level <= 30) l = spdlog::level::warn;
  else if (level <= 40) l = spdlog::level::err;
  logger()->set_level(l);
}

std::optional<Record> pop_record(std::chrono::milliseconds timeout) {
  auto& q = queue();
  std::unique_lock lock(q.mu);
  q.cv.wait_for(lock, timeout, [&] { return q.closed || !q.records.empty(); });
  if (q.records.empty()) return std::nullopt;
  Record r = std::move(q.records.front());
  q.records.pop_front();
  return r;
}

void close_queue() {
  auto& q = queue();
  {
    std::lock_guard lock(q.mu);
    q.closed = true;
  }
  q.cv.notify_all();
}

}  // namespace faas::log
