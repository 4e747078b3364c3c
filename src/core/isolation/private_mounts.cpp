#include "core/isolation/private_mounts.hpp"

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

bool make_directories(const std::string& path, mode_t mode) {
  for (size_t slash = 1; slash != std::string::npos;) {
    slash = path.find('/', slash + 1);
    std::string prefix = path.substr(0, slash);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) return false;
  }
  return true;
}

}  // namespace

StepResult enter_private_mounts(const PrivateMounts& m) {
  if (::unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0)
    return StepResult::fail(kStep, "unshare(CLONE_NEWNS|CLONE_NEWIPC)", errno);
  // A detached copy of the workdir's mount, taken before the tmpfs mounts below hide it.
  int workdir = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, m.workdir.c_str(), kOpenTreeClone | O_CLOEXEC));
  if (workdir < 0) return StepResult::fail(kStep, "open_tree(" + m.workdir + ")", errno);
  std::string tmp_options = "mode=1777,size=" + m.tmp_size;
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp_options.c_str()) != 0) {
    int err = errno;
    ::close(workdir);
    return StepResult::fail(kStep, "mount(tmpfs, /tmp)", err);
  }
  std::string parent = m.workdir.substr(0, m.workdir.rfind('/'));
  struct stat st;
  if (::stat(parent.c_str(), &st) == 0) {
    // The directory of workdirs is still visible (it is not under /tmp): cover it.
    if (::mount("tmpfs", parent.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
      int err = errno;
      ::close(workdir);
      return StepResult::fail(kStep, "mount(tmpfs, " + parent + ")", err);
    }
  } else if (!make_directories(parent, 0755)) {
    int err = errno;
    ::close(workdir);
    return StepResult::fail(kStep, "mkdir(" + parent + ")", err, "the workdir must be under /tmp or the engine's temp root");
  }
  if (::mkdir(m.workdir.c_str(), 0700) != 0 && errno != EEXIST) {
    int err = errno;
    ::close(workdir);
    return StepResult::fail(kStep, "mkdir(" + m.workdir + ")", err);
  }
  int rc = static_cast<int>(::syscall(SYS_move_mount, workdir, "", AT_FDCWD, m.workdir.c_str(), kMoveMountEmptyPath));
  int err = errno;
  ::close(workdir);
  if (rc != 0) return StepResult::fail(kStep, "move_mount(" + m.workdir + ")", err);
  if (::chown(m.workdir.c_str(), m.owner, m.group) != 0) return StepResult::fail(kStep, "chown(workdir)", errno);
  return StepResult::success();
}

}  // namespace faas::isolation
