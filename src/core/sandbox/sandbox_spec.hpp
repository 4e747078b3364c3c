// What a caller asks of a new sandbox.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace faas::sandbox {

struct SandboxSpec {
  std::string python;     // interpreter; one zygote per interpreter and isolation profile
  std::string isolation;  // "" (LOCAL), "secure", "container" or "container:<rootfs>"
  std::string workdir;  // empty: the engine creates (and later removes) a private one
  std::vector<std::pair<std::string, std::string>> env;  // added to the inherited environment
  std::vector<std::pair<int, uint64_t>> rlimits;         // RLIMIT_* -> value (soft = hard)
  size_t output_limit = 10u << 20;                       // bytes per execution, both streams
  double interrupt_grace_s = 0.2;  // SIGINT -> SIGKILL on timeout or host Ctrl-C
  std::optional<uint64_t> seed;  // branches only: deterministic randomness
  bool loopback = false;         // isolated only: a network namespace of its own with lo up

};

}  // namespace faas::sandbox
