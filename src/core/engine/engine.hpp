// One engine per process, created lazily and shared by every ExecutionPlatform: the reactor,
// the broker, one zygote per interpreter, warm pools, the registry of live sandboxes, a TBB
// arena for background work, and the metrics.
#pragma once

#include <tbb/task_arena.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/engine/reactor.hpp"
#include "core/metrics/engine_metrics.hpp"
#include "core/sandbox/broker_client.hpp"
#include "core/sandbox/sandbox.hpp"
#include "core/sandbox/zygote.hpp"
#include "core/snapshot/snapshot.hpp"

namespace faas::engine {

struct EngineConfig {
  std::string kernel_script;  // python/faas_sdk/_kernel/kernel.py
  std::string broker_path;    // the faas-broker executable
  std::string temp_parent;    // where the engine's private temporary root is made
  std::string isolate_path;   // the faas-isolate executable (isolated profiles)
  std::vector<std::string> isolation_readonly_paths;  // what an isolated interpreter may read
};

class Engine final : public sandbox::SandboxHost {
 public:
  static void configure(EngineConfig config);
  static Engine& instance();  // creates the engine on first use
  static bool running();
  static void shutdown_instance();  // idempotent; a later instance() starts a new engine

  std::shared_ptr<sandbox::Sandbox> create_sandbox(sandbox::SandboxSpec spec, bool wait_ready);
  // A ready sandbox with default options from the warm pool (or a new one if it is empty).
  std::shared_ptr<sandbox::Sandbox> take_warm(const std::string& python, const std::string& isolation);
  void set_pool_size(size_t size);
  // Starts the zygote for `python` and `isolation` and fills its pool in the background.
  void prewarm(const std::string& python, const std::string& isolation);
  // Freezes `sandbox` (idle, single-threaded) into a snapshot: memory by fork, files by copy.
  std::shared_ptr<snapshot::Snapshot> snapshot(const std::shared_ptr<sandbox::Sandbox>& sandbox);
  // A new live sandbox with the snapshot's exact state. With wait_ready=false the fork is
  // requested and the sandbox returned at once (it is ready when Sandbox::wait_ready says so).
  std::shared_ptr<sandbox::Sandbox> branch(const std::shared_ptr<snapshot::Snapshot>& snapshot,
                                           std::optional<uint64_t> seed, bool wait_ready);
  std::vector<std::shared_ptr<snapshot::Snapshot>> live_snapshots();
  void forget_snapshot(const std::string& id);
  size_t live_branch_count();
  std::vector<std::shared_ptr<sandbox::Sandbox>> live_sandboxes();

  // Blocks until sandboxes closed so far are fully disposed of (workdirs removed).
  void wait_disposals();
  size_t live_sandbox_count();
  const std::string& temp_root() const { return temp_root_; }

  Reactor& reactor() override { return reactor_; }
  metrics::EngineMetrics& metrics() override { return metrics_; }
  void sandbox_finished(std::shared_ptr<sandbox::Sandbox> sandbox) override;

 private:
  explicit Engine(EngineConfig config);
  void shutdown();
  std::shared_ptr<sandbox::Zygote> zygote_for(const std::string& python, const std::string& isolation);
  void refill_pool(const std::string& python, const std::string& isolation);
  sandbox::IsolationLaunch isolation_launch(const std::string& isolation) const;
  // Registers `sb`, creates its channels and asks `server` (a zygote or a template) to fork it.
  void start_from(sandbox::Zygote& server, const std::shared_ptr<sandbox::Sandbox>& sb);
  // Runs fn off the caller's and the reactor's threads: in the TBB arena, or on a plain
  // thread in a process forked from one that had already started TBB (TBB is not fork-safe).
  void run_in_background(std::function<void()> fn);

  const EngineConfig config_;
  std::string temp_root_;
  Reactor reactor_;
  metrics::EngineMetrics metrics_;
  sandbox::BrokerClient broker_;
  tbb::task_arena arena_;
  const bool tbb_usable_;

  std::mutex mu_;
  bool shut_down_ = false;
  std::unordered_map<std::string, std::shared_ptr<sandbox::Zygote>> zygotes_;
  std::unordered_map<std::string, std::shared_ptr<sandbox::Sandbox>> registry_;
  std::unordered_map<std::string, std::deque<std::shared_ptr<sandbox::Sandbox>>> pools_;
  std::unordered_map<std::string, std::shared_ptr<snapshot::Snapshot>> snapshots_;
  size_t pool_size_ = 2;

  std::mutex disposal_mu_;
  std::condition_variable disposal_cv_;
  size_t background_pending_ = 0;
};

}  // namespace faas::engine
