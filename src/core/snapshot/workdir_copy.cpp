#include "core/snapshot/workdir_copy.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace faas::snapshot {

namespace fs = std::filesystem;

namespace {
// An isolated sandbox's files belong to its own uid, and so must its branches' (the engine,
// as root, would otherwise own the copy). Best effort: an unprivileged engine owns them all.
void keep_owner(const fs::path& from, const fs::path& to) {
  struct stat st;
  if (::lstat(from.c_str(), &st) == 0 && st.st_uid != ::geteuid()) (void)::lchown(to.c_str(), st.st_uid, st.st_gid);
}
}  // namespace

std::string copy_tree(const std::string& from, const std::string& to) noexcept try {
  std::error_code ec;
  fs::create_directory(to, ec);
  if (ec) return "cannot create " + to + ": " + ec.message();
  fs::permissions(to, fs::status(from, ec).permissions(), ec);
  keep_owner(from, to);
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
    keep_owner(it->path(), target);
  }
  if (ec) return "cannot copy " + from + ": " + ec.message();
  return "";
} catch (const std::exception& e) {
  return std::string("cannot copy ") + from + ": " + e.what();
}

}  // namespace faas::snapshot
