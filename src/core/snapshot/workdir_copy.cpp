#include "core/snapshot/workdir_copy.hpp"

#include <filesystem>

namespace faas::snapshot {

namespace fs = std::filesystem;

std::string copy_tree(const std::string& from, const std::string& to) noexcept try {
  std::error_code ec;
  fs::create_directory(to, ec);
  if (ec) return "cannot create " + to + ": " + ec.message();
  fs::permissions(to, fs::status(from, ec).permissions(), ec);
  for (auto it = fs::recursive_directory_iterator(from, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    // Lexical: fs::relative() would resolve symlinks, and a link is copied as a link.
    const fs::path target = fs::path(to) / it->path().lexically_relative(from);
    fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_symlink(st)) {
      fs::copy_symlink(it->path(), target, ec);
    } else if (fs::is_directory(st)) {
      fs::create_directory(target, it->path(), ec);
    } else if (fs::is_regular_file(st)) {
      fs::copy_file(it->path(), target, fs::copy_options::none, ec);
    }
    if (ec) return "cannot copy " + it->path().string() + ": " + ec.message();
  }
  if (ec) return "cannot copy " + from + ": " + ec.message();
  return "";
} catch (const std::exception& e) {
  return std::string("cannot copy ") + from + ": " + e.what();
}

}  // namespace faas::snapshot
