// mkdir -p for the mount steps: each missing component made with `mode`.
#pragma once

#include <errno.h>
#include <sys/stat.h>

#include <string>

namespace faas::isolation {

inline bool make_directories(const std::string& path, mode_t mode) {
  for (size_t slash = 1; slash != std::string::npos;) {
    slash = path.find('/', slash + 1);
    std::string prefix = path.substr(0, slash);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) return false;
  }
  return true;
}

}  // namespace faas::isolation
