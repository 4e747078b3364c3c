// Freezes a workdir for a snapshot: a recursive copy (ext4 here has no reflink) of regular
// files, directories and symlinks. Sockets, FIFOs and devices are skipped.
#pragma once

#include <string>

namespace faas::snapshot {

// Copies `from` to the new directory `to`. Returns "" or an error message.
std::string copy_tree(const std::string& from, const std::string& to) noexcept;

}  // namespace faas::snapshot
