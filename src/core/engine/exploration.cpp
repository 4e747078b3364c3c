#include "core/engine/exploration.hpp"

#include "core/engine/engine.hpp"
#include "core/errors.hpp"

namespace faas::engine {

Exploration::Exploration(Engine& engine, std::shared_ptr<snapshot::Snapshot> base, std::vector<std::string> codes,
                         size_t max_parallel, std::optional<double> timeout, std::optional<uint64_t> seed)
    : engine_(engine), base_(std::move(base)), codes_(std::move(codes)),
      max_parallel_(std::max<size_t>(1, max_parallel)), timeout_(timeout), seed_(seed), items_(codes_.size()) {}

void Exploration::launch_batch() {
  size_t running;
  {
    std::lock_guard lock(progress_->mu);
    running = launched_ - failed_to_launch_ - progress_->finished;
  }
  size_t room = max_parallel_ > running ? max_parallel_ - running : 0;
  size_t first = launched_, last = std::min(codes_.size(), launched_ + room);
  if (first == last) return;
  launched_ = last;
  // Ask for every fork of the batch first: the template forks while we wait for the first.
  for (size_t i = first; i < last; ++i) {
    try {
      std::optional<uint64_t> seed = seed_ ? std::optional<uint64_t>(*seed_ + i) : std::nullopt;
      items_[i].sandbox = engine_.branch(base_, seed, false);
    } catch (const std::exception& e) {
      items_[i].error = e.what();
    }
  }
  for (size_t i = first; i < last; ++i) {
    Item& item = items_[i];
    if (item.sandbox) {
      try {
        if (!item.sandbox->wait_ready(std::chrono::seconds(60))) throw Error(ErrorKind::kSnapshot, "not ready within 60 s");
        item.execution = item.sandbox->submit(codes_[i], timeout_, false, false);
        auto progress = progress_;
        item.execution->set_on_complete([progress] {
          {
            std::lock_guard lock(progress->mu);
            ++progress->finished;
          }
          progress->cv.notify_all();
        });
        continue;
      } catch (const std::exception& e) {
        item.error = std::string("branch failed: ") + e.what();
      }
    }
    std::lock_guard lock(progress_->mu);
    ++failed_to_launch_;
  }
}

bool Exploration::step(std::chrono::milliseconds slice) {
  launch_batch();
  std::unique_lock lock(progress_->mu);
  auto all_done = [&] { return failed_to_launch_ + progress_->finished == codes_.size(); };
  auto can_launch = [&] {
    return launched_ < codes_.size() && launched_ - failed_to_launch_ - progress_->finished < max_parallel_;
  };
  progress_->cv.wait_for(lock, slice, [&] { return all_done() || can_launch(); });
  return all_done();
}

void Exploration::interrupt() {
  for (auto& item : items_) {
    if (item.sandbox && item.execution && !item.execution->done()) item.sandbox->interrupt(item.execution);
  }
}

}  // namespace faas::engine
