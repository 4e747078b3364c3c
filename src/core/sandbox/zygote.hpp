// The engine's end of a fork server (python/faas_sdk/_kernel/_faas_fork_server.py): either a
// zygote, a warm interpreter that forks a fresh kernel per sandbox (so a sandbox costs a fork,
// not an interpreter start), or a snapshot template, a frozen copy of a kernel that forks one
// branch per request. It reaps the children it forks and reports their wait status.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/util/unique_fd.hpp"

namespace faas::engine {
class Reactor;
}

namespace faas::sandbox {

class BrokerClient;
class Sandbox;

// How to start an isolated zygote: through faas-isolate (src/tools/isolate_main.cpp).
struct IsolationLaunch {
  std::string isolate_path;
  bool container = false;  // CONTAINER: its own pid namespace (kernels report namespaced pids)
  std::string rootfs;      // CONTAINER: the user's base system instead of the host's
  std::vector<std::string> readonly_paths;
  std::vector<std::string> writable_paths;
};

class Zygote : public std::enable_shared_from_this<Zygote> {
 public:
  Zygote(engine::Reactor& reactor, std::string python, std::string kernel_script, std::string cwd,
         std::string native_dir = {});
  ~Zygote();
  // A snapshot template: already running, reached through `control`.
  // `namespaced_pids`: it lives in a pid namespace of its own (CONTAINER) and reports its
  // children's pids there.
  static std::shared_ptr<Zygote> adopt(engine::Reactor& reactor, std::string label, pid_t pid, UniqueFd control,
                                       UniqueFd pidfd, bool namespaced_pids = false);

  const std::string& python() const { return python_; }
  // Before start(): run the interpreter inside an isolated root (an isolated profile's zygote).
  void isolate(IsolationLaunch launch) {
    namespaced_pids_ = launch.container;
    isolation_ = std::move(launch);
  }
  pid_t pid();
  void start(BrokerClient& broker);
  // Waits for READY; throws Error when the zygote could not start. False on timeout.
  bool wait_ready(std::chrono::milliseconds timeout);
  bool alive();
  // Asks for a fork; the sandbox receives attach_process() or fail_start() on the reactor thread.
  void fork_sandbox(const std::shared_ptr<Sandbox>& sandbox, UniqueFd socket, UniqueFd stdout_write,
                    UniqueFd stderr_write);
  void shutdown();

 private:
  static std::vector<std::string> zygote_environment();
  static std::vector<std::string> isolated_environment();
  std::vector<std::string> command_line(const std::string& native_dir) const;
  void on_control_readable();
  void on_stderr_readable();
  void fail(const std::string& reason);

  engine::Reactor& reactor_;
  const std::string python_;
  const std::string kernel_script_;
  const std::string cwd_;
  const std::string native_dir_;  // where _faas_native is (the kernel's optional C helper)
  std::optional<IsolationLaunch> isolation_;
  bool namespaced_pids_ = false;  // children's pids come from a pid namespace of its own
  std::string label_;  // names it in errors: "the zygote for X", "the template of snapshot Y"

  std::mutex mu_;
  std::condition_variable cv_;
  enum class State { kStarting, kReady, kDead } state_ = State::kStarting;
  std::string error_;
  pid_t pid_ = 0;
  UniqueFd control_, stderr_, pidfd_;
  uint64_t control_token_ = 0, stderr_token_ = 0;
  std::string stderr_tail_;  // last lines the zygote printed, for error messages
  uint32_t next_request_ = 1;
  std::unordered_map<uint32_t, std::weak_ptr<Sandbox>> pending_;
  std::unordered_map<pid_t, std::weak_ptr<Sandbox>> children_;
};

}  // namespace faas::sandbox
