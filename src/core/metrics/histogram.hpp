// Lock-free log-linear latency histogram: 16 sub-buckets per power of two (about 6% relative
// error), nanosecond samples from 1 ns to about 18 minutes. Safe to record from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace faas::metrics {

struct Summary {
  uint64_t count = 0;
  double mean_s = 0, min_s = 0, max_s = 0;
  double p50_s = 0, p95_s = 0, p99_s = 0, p999_s = 0;
};

class Histogram {
 public:
  void record_ns(uint64_t ns);
  Summary summary() const;
  double quantile_s(double q) const;
  void reset();

  static constexpr int kSubBits = 4;
  static constexpr int kBuckets = (64 - kSubBits + 1) << kSubBits;
  static int bucket_of(uint64_t ns);
  static uint64_t bucket_upper_ns(int index);  // inclusive upper bound of a bucket

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> min_ns_{UINT64_MAX};
  std::atomic<uint64_t> max_ns_{0};
};

}  // namespace faas::metrics
