#include "core/sandbox/execution.hpp"

namespace faas::sandbox {

size_t utf8_complete_prefix(std::string_view s) {
  size_t n = s.size();
  // Walk back over at most three continuation bytes to the lead byte of the last sequence.
  size_t i = n;
  int continuation = 0;
  while (i > 0 && continuation < 4) {
    unsigned char c = static_cast<unsigned char>(s[i - 1]);
    if ((c & 0xC0) != 0x80) {
      size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
      return (static_cast<size_t>(continuation) + 1 >= need) ? n : i - 1;
    }
    ++continuation;
    --i;
  }
  return n;  // not UTF-8 anyway; let the decoder replace it
}

Execution::Execution(uint64_t seq, size_t output_limit, bool streaming)
    : seq_(seq), output_limit_(output_limit), streaming_(streaming),
      started_at_(std::chrono::steady_clock::now()) {}

void Execution::append_output(int stream, std::string_view data) {
  if (data.empty()) return;
  std::lock_guard lock(mu_);
  if (done_) return;
  size_t room = output_limit_ > total_bytes_ ? output_limit_ - total_bytes_ : 0;
  if (data.size() > room) {
    truncated_ = true;
    data = data.substr(0, room);
  }
  if (data.empty()) return;
  total_bytes_ += data.size();
  int idx = stream == 2 ? 1 : 0;
  out_[idx].append(data);
  if (streaming_) {
    std::string pending = std::move(utf8_tail_[idx]);
    pending.append(data);
    size_t complete = utf8_complete_prefix(pending);
    utf8_tail_[idx] = pending.substr(complete);
    pending.resize(complete);
    if (!pending.empty()) {
      chunks_.push_back({stream, std::move(pending)});
      cv_.notify_all();
    }
  }
}

void Execution::set_on_complete(std::function<void()> fn) {
  std::unique_lock lock(mu_);
  if (done_) {
    lock.unlock();
    fn();
    return;
  }
  on_complete_ = std::move(fn);
}

void Execution::complete(Outcome outcome) {
  std::function<void()> callback;
  {
    std::lock_guard lock(mu_);
    if (done_) return;
    outcome.stdout_text = std::move(out_[0]);
    outcome.stderr_text = std::move(out_[1]);
    outcome.output_truncated = truncated_;
    outcome.engine_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started_at_).count());
    for (int i = 0; i < 2; ++i) {
      if (streaming_ && !utf8_tail_[i].empty()) chunks_.push_back({i + 1, std::move(utf8_tail_[i])});
    }
    outcome_ = std::move(outcome);
    done_ = true;
    callback = std::move(on_complete_);
  }
  cv_.notify_all();
  if (callback) callback();
}

bool Execution::wait(std::chrono::milliseconds slice, std::vector<StreamChunk>& chunks) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, slice, [&] { return done_ || !chunks_.empty(); });
  if (!chunks_.empty()) {
    for (auto& c : chunks_) chunks.push_back(std::move(c));
    chunks_.clear();
  }
  return done_;
}

void Execution::set_fds(std::vector<UniqueFd> fds) {
  std::lock_guard lock(mu_);
  fds_ = std::move(fds);
}

std::vector<UniqueFd> Execution::take_fds() {
  std::lock_guard lock(mu_);
  return std::move(fds_);
}

bool Execution::done() {
  std::lock_guard lock(mu_);
  return done_;
}

}  // namespace faas::sandbox
