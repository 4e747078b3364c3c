#include "core/isolation/private_mounts.hpp"

#include "core/isolation/directories.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace faas::isolation {
namespace {

constexpr const char* kStep = "mounts";
// From <linux/mount.h>, which clashes with glibc's <sys/mount.h>.
constexpr unsigned kOpenTreeClone = 1;
constexpr unsigned kMoveMountEmptyPath = 0x00000004;
constexpr unsigned kAtRecursive = 0x8000;


// A detached copy of the mount at `path` (and any mounts below it), to be moved elsewhere.
int clone_mount(const std::string& path) {
  return static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, path.c_str(), kOpenTreeClone | kAtRecursive | O_CLOEXEC));
}

StepResult attach(int mount, const std::string& path, bool directory) {
  std::string parent = path.substr(0, path.rfind('/'));
  if (!parent.empty() && !make_directories(parent, 0755))
    return StepResult::fail(kStep, "mkdir(" + parent + ")", errno, "the path must be under /tmp or the engine's temp root");
  if (directory) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return StepResult::fail(kStep, "mkdir(" + path + ")", errno);
  } else {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return StepResult::fail(kStep, "create(" + path + ")", errno);
    ::close(fd);
  }
  if (::syscall(SYS_move_mount, mount, "", AT_FDCWD, path.c_str(), kMoveMountEmptyPath) != 0)
    return StepResult::fail(kStep, "move_mount(" + path + ")", errno);
  return StepResult::success();
}

}  // namespace

StepResult enter_private_mounts(const PrivateMounts& m) {
  if (::unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0)
    return StepResult::fail(kStep, "unshare(CLONE_NEWNS|CLONE_NEWIPC)", errno);
  // Detached copies of what must stay visible, taken before the tmpfs mounts below hide it.
  struct Kept {
    std::string path;
    int mount;
    bool directory;
  };
  std::vector<Kept> kept;
  auto close_all = [&] {
    for (auto& k : kept) ::close(k.mount);
  };
  for (const std::string& path : m.under_tmp) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    int mount = clone_mount(path);
    if (mount < 0) {
      int err = errno;
      close_all();
      return StepResult::fail(kStep, "open_tree(" + path + ")", err);
    }
    kept.push_back({path, mount, S_ISDIR(st.st_mode)});
  }
  int workdir = clone_mount(m.workdir);
  if (workdir < 0) {
    int err = errno;
    close_all();
    return StepResult::fail(kStep, "open_tree(" + m.workdir + ")", err);
  }
  kept.push_back({m.workdir, workdir, true});
  std::string tmp_options = "mode=1777,size=" + m.tmp_size;
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp_options.c_str()) != 0) {
    int err = errno;
    close_all();
    return StepResult::fail(kStep, "mount(tmpfs, /tmp)", err);
  }
  std::string parent = m.workdir.substr(0, m.workdir.rfind('/'));
  struct stat st;
  if (::stat(parent.c_str(), &st) == 0) {
    // The directory of workdirs is still visible (it is not under /tmp): cover it.
    if (::mount("tmpfs", parent.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
      int err = errno;
      close_all();
      return StepResult::fail(kStep, "mount(tmpfs, " + parent + ")", err);
    }
  }
  StepResult result = StepResult::success();
  for (const Kept& k : kept)
    if (result.ok) result = attach(k.mount, k.path, k.directory);
  close_all();
  if (!result.ok) return result;
  if (::chown(m.workdir.c_str(), m.owner, m.group) != 0) return StepResult::fail(kStep, "chown(workdir)", errno);
  return StepResult::success();
}

}  // namespace faas::isolation
