#include "core/metrics/histogram.hpp"

#include <algorithm>
#include <bit>

namespace faas::metrics {

int Histogram::bucket_of(uint64_t ns) {
  constexpr uint64_t kLinear = 1u << kSubBits;
  if (ns < kLinear) return static_cast<int>(ns);
  int exponent = 63 - std::countl_zero(ns);  // >= kSubBits
  int sub = static_cast<int>((ns >> (exponent - kSubBits)) & (kLinear - 1));
  return ((exponent - kSubBits + 1) << kSubBits) + sub;
}

uint64_t Histogram::bucket_upper_ns(int index) {
  constexpr int kLinear = 1 << kSubBits;
  if (index < kLinear) return static_cast<uint64_t>(index);
  int exponent = (index >> kSubBits) + kSubBits - 1;
  uint64_t sub = static_cast<uint64_t>(index & (kLinear - 1));
  uint64_t width = uint64_t{1} << (exponent - kSubBits);
  return (uint64_t{1} << exponent) + (sub + 1) * width - 1;
}

void Histogram::record_ns(uint64_t ns) {
  buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  uint64_t prev = min_ns_.load(std::memory_order_relaxed);
  while (ns < prev && !min_ns_.compare_exchange_weak(prev, ns, std::memory_order_relaxed)) {
  }
  prev = max_ns_.load(std::memory_order_relaxed);
  while (ns > prev && !max_ns_.compare_exchange_weak(prev, ns, std::memory_order_relaxed)) {
  }
}

double Histogram::quantile_s(double q) const {
  uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total - 1)) + 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= rank) {
      // Report the bucket's upper bound, clamped to the true maximum: never optimistic.
      uint64_t upper = std::min(bucket_upper_ns(i), max_ns_.load(std::memory_order_relaxed));
      return static_cast<double>(upper) * 1e-9;
    }
  }
  return static_cast<double>(max_ns_.load(std::memory_order_relaxed)) * 1e-9;
}

Summary Histogram::summary() const {
  Summary s;
  s.count = count_.load(std::memory_order_relaxed);
  if (s.count == 0) return s;
  s.mean_s = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9 / static_cast<double>(s.count);
  s.min_s = static_cast<double>(min_ns_.load(std::memory_order_relaxed)) * 1e-9;
  s.max_s = static_cast<double>(max_ns_.load(std::memory_order_relaxed)) * 1e-9;
  s.p50_s = quantile_s(0.50);
  s.p95_s = quantile_s(0.95);
  s.p99_s = quantile_s(0.99);
  s.p999_s = quantile_s(0.999);
  return s;
}

void Histogram::reset() {
  for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
  count_.store(0);
  sum_ns_.store(0);
  min_ns_.store(UINT64_MAX);
  max_ns_.store(0);
}

}  // namespace faas::metrics
