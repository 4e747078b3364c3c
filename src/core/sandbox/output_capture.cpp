#include "core/sandbox/output_capture.hpp"

#include <algorithm>

namespace faas::sandbox {

void OutputCapture::arm(std::string marker) {
  marker_ = std::move(marker);
  held_.clear();
  armed_ = true;
}

void OutputCapture::disarm(std::string& execution) {
  if (!armed_) return;
  execution += held_;
  held_.clear();
  armed_ = false;
}

void OutputCapture::feed(std::string_view data, std::string& execution, std::string& idle) {
  if (!armed_) {
    idle.append(data);
    return;
  }
  std::string joined;
  std::string_view s = data;
  if (!held_.empty()) {
    joined = held_;
    joined.append(data);
    held_.clear();
    s = joined;
  }
  size_t pos = s.find(marker_);
  if (pos != std::string_view::npos) {
    execution.append(s.substr(0, pos));
    idle.append(s.substr(pos + marker_.size()));
    armed_ = false;
    return;
  }
  // Hold back the longest suffix that could begin the marker; emit the rest.
  size_t keep = 0;
  for (size_t k = std::min(marker_.size() - 1, s.size()); k > 0; --k) {
    if (s.substr(s.size() - k) == std::string_view(marker_).substr(0, k)) {
      keep = k;
      break;
    }
  }
  execution.append(s.substr(0, s.size() - keep));
  held_.assign(s.substr(s.size() - keep));
}

}  // namespace faas::sandbox
