// Splits one output pipe of a kernel (stdout or stderr) into "this execution's output" and
// "after it". The kernel ends an execution's output with a marker carrying a per-execution
// random token, written only when the pipe still held unread bytes (docs/protocol.md).
#pragma once

#include <string>
#include <string_view>

namespace faas::sandbox {

class OutputCapture {
 public:
  // Bytes fed from now on belong to an execution whose end is `marker`.
  void arm(std::string marker);
  // Routes `data`: bytes before the marker to `execution`, bytes after it (and bytes fed while
  // no execution is armed) to `idle`.
  void feed(std::string_view data, std::string& execution, std::string& idle);
  // The kernel said it wrote no marker: whatever was held back belongs to the execution.
  void disarm(std::string& execution);
  bool awaiting_marker() const { return armed_; }

 private:
  bool armed_ = false;
  std::string marker_;
  std::string held_;  // a tail that might be the start of the marker
};

}  // namespace faas::sandbox
