// explore_parallel: each code runs in its own branch of one snapshot, at most `max_parallel`
// at a time. Branches are forked in batches and their executions are driven by the reactor;
// the caller's thread only launches work and waits (no thread per branch).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/sandbox/sandbox.hpp"
#include "core/snapshot/snapshot.hpp"

namespace faas::engine {

class Engine;

class Exploration {
 public:
  struct Item {
    std::shared_ptr<sandbox::Sandbox> sandbox;      // null if the branch could not be made
    std::shared_ptr<sandbox::Execution> execution;  // null if it could not run
    std::string error;                              // why, when either is null
  };

  Exploration(Engine& engine, std::shared_ptr<snapshot::Snapshot> base, std::vector<std::string> codes,
              size_t max_parallel, std::optional<double> timeout, std::optional<uint64_t> seed);

  // Launches what it may and waits up to `slice` for progress. True once every item is done.
  bool step(std::chrono::milliseconds slice);
  // Interrupts every running execution (host Ctrl-C).
  void interrupt();
  std::vector<Item>& items() { return items_; }

 private:
  struct Progress {
    std::mutex mu;
    std::condition_variable cv;
    size_t finished = 0;
  };
  void launch_batch();

  Engine& engine_;
  std::shared_ptr<snapshot::Snapshot> base_;
  std::vector<std::string> codes_;
  const size_t max_parallel_;
  const std::optional<double> timeout_;
  const std::optional<uint64_t> seed_;
  std::vector<Item> items_;
  size_t launched_ = 0;
  size_t failed_to_launch_ = 0;
  std::shared_ptr<Progress> progress_ = std::make_shared<Progress>();
};

}  // namespace faas::engine
