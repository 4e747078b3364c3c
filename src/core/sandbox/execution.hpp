// One execution in flight: the output collected so far (capped), streamed chunks for a waiting
// caller, and the outcome once the sandbox completes it. Written by the reactor thread, read
// by the caller's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/util/unique_fd.hpp"

namespace faas::sandbox {

enum class OutcomeKind { kCompleted, kTimeout, kDied, kInterrupted, kProtocolError };

struct Outcome {
  OutcomeKind kind = OutcomeKind::kCompleted;
  bool success = false;
  bool has_value = false;
  std::string value;
  std::string error_type, error_message, traceback;
  std::string stdout_text, stderr_text;
  bool output_truncated = false;
  uint64_t kernel_ns = 0;  // measured inside the sandbox around exec()
  uint64_t engine_ns = 0;  // EXEC frame written -> outcome complete
};

struct StreamChunk {
  int stream;  // 1 stdout, 2 stderr
  std::string data;
};

class Execution {
 public:
  Execution(uint64_t seq, size_t output_limit, bool streaming);

  uint64_t seq() const { return seq_; }
  std::chrono::steady_clock::time_point started_at() const { return started_at_; }

  // Reactor side.
  void append_output(int stream, std::string_view data);
  void complete(Outcome outcome);  // output collected so far is moved into the outcome
  void set_on_complete(std::function<void()> fn);

  // Caller side. Waits up to `slice`; returns true when complete. Streamed chunks that
  // arrived meanwhile are moved into `chunks`.
  bool wait(std::chrono::milliseconds slice, std::vector<StreamChunk>& chunks);
  bool done();
  const Outcome& outcome() const { return outcome_; }  // valid once done()
  // Descriptors the kernel sent with the reply (a snapshot's template channel and pidfd).
  void set_fds(std::vector<UniqueFd> fds);
  std::vector<UniqueFd> take_fds();

 private:
  const uint64_t seq_;
  const size_t output_limit_;
  const bool streaming_;
  const std::chrono::steady_clock::time_point started_at_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string out_[2];
  std::string utf8_tail_[2];  // streaming: an incomplete UTF-8 sequence waiting for its rest
  size_t total_bytes_ = 0;
  bool truncated_ = false;
  std::vector<StreamChunk> chunks_;
  std::function<void()> on_complete_;
  Outcome outcome_;
  std::vector<UniqueFd> fds_;
};

// Length of the longest prefix of `s` that does not end inside a UTF-8 multi-byte sequence.
size_t utf8_complete_prefix(std::string_view s);

}  // namespace faas::sandbox
