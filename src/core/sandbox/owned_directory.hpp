// A directory whose lifetime is shared: a sandbox's workdir (which its branches mount over,
// so the path must outlive them), a snapshot's frozen layer (the lower layer of its branches'
// overlays), a branch's own upper layer. Removed when the last holder lets go.
#pragma once

#include <filesystem>
#include <string>

namespace faas::sandbox {

class OwnedDirectory {
 public:
  OwnedDirectory(std::string path, bool remove_when_released)
      : path_(std::move(path)), remove_(remove_when_released) {}
  ~OwnedDirectory() {
    if (!remove_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  OwnedDirectory(const OwnedDirectory&) = delete;
  OwnedDirectory& operator=(const OwnedDirectory&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool remove_;
};

}  // namespace faas::sandbox
