#include "core/isolation/user_namespace.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <string>

namespace faas::isolation {

bool write_proc_file(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

StepResult enter_user_namespace() {
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  if (::unshare(CLONE_NEWUSER) != 0)
    return StepResult::fail("user namespace", "unshare(CLONE_NEWUSER)", errno,
                            "unprivileged user namespaces may be disabled "
                            "(sysctl user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns)");
  // An unprivileged process must deny setgroups before it may write its gid map.
  if (!write_proc_file("/proc/self/setgroups", "deny") && errno != ENOENT)
    return StepResult::fail("user namespace", "write(/proc/self/setgroups)", errno);
  if (!write_proc_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n"))
    return StepResult::fail("user namespace", "write(/proc/self/uid_map)", errno);
  if (!write_proc_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n"))
    return StepResult::fail("user namespace", "write(/proc/self/gid_map)", errno);
  return StepResult::success();
}

}  // namespace faas::isolation
