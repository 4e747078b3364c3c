// The engine's named histograms and counters, shared by every ExecutionPlatform in a process.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/metrics/histogram.hpp"

namespace faas::metrics {

struct EngineMetrics {
  Histogram sandbox_start;  // fork request sent -> kernel READY received
  Histogram execute;        // EXEC frame sent -> result complete (engine clock)
  Histogram snapshot;       // snapshot() requested -> template adopted (includes workdir copy)
  Histogram branch_start;   // branch fork requested -> branch kernel READY
  std::atomic<uint64_t> sandboxes_started{0};
  std::atomic<uint64_t> sandboxes_live{0};
  std::atomic<uint64_t> executions{0};
  std::atomic<uint64_t> executions_failed{0};
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> sandbox_deaths{0};
  std::atomic<uint64_t> snapshots_created{0};
  std::atomic<uint64_t> branches_created{0};
};

}  // namespace faas::metrics
