// The engine's end of the broker (src/broker/broker_main.cpp): starts it, asks it to spawn
// zygote processes, and shuts it down, which kills every sandbox process that remains.
#pragma once

#include <sys/types.h>

#include <array>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/util/unique_fd.hpp"

namespace faas::engine {
class Reactor;
}

namespace faas::sandbox {

class BrokerClient {
 public:
  using SpawnCallback = std::function<void(pid_t pid, UniqueFd pidfd, int error)>;

  BrokerClient(engine::Reactor& reactor, std::string broker_path, std::string temp_root);
  ~BrokerClient();

  void start();
  bool alive();
  // `fds` become the child's descriptors 0..3. The callback runs on the reactor thread.
  void spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
             const std::array<int, 4>& fds, SpawnCallback on_spawned);
  // Closes the control socket; the broker kills what is left, removes the temp root and exits.
  void shutdown();

 private:
  void on_readable();
  void fail_pending(int error);

  engine::Reactor& reactor_;
  const std::string broker_path_;
  const std::string temp_root_;
  std::mutex mu_;
  pid_t pid_ = 0;
  UniqueFd control_;
  UniqueFd pidfd_;
  uint64_t token_ = 0;
  bool alive_ = false;
  uint32_t next_request_ = 1;
  std::unordered_map<uint32_t, SpawnCallback> pending_;
};

}  // namespace faas::sandbox
