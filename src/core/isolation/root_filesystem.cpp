#include "core/isolation/root_filesystem.hpp"

#include "core/isolation/container_namespaces.hpp"
#include "core/isolation/directories.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dirent.h>

#include <climits>

namespace faas::isolation {
namespace {

constexpr const char* kStep = "mounts";

std::string parent_of(const std::string& path) { return path.substr(0, path.rfind('/')); }

// Binds host path `host_path` (seen under /oldroot) at `path` under /newroot.
StepResult bind_at(const std::string& host_path, const std::string& path, bool writable) {
  std::string source = "/oldroot" + host_path;
  std::string target = "/newroot" + path;
  struct stat st;
  if (::lstat(source.c_str(), &st) != 0) return StepResult::success();  // absent on this host
  // Each missing component 0755: the unprivileged sandbox user must traverse it.
  if (!make_directories(parent_of(target), 0755))
    return StepResult::fail(kStep, "mkdir(" + parent_of(target) + ")", errno);
  if (S_ISLNK(st.st_mode)) {  // e.g. /lib -> usr/lib on merged-/usr systems: keep the link
    char link[PATH_MAX];
    ssize_t n = ::readlink(source.c_str(), link, sizeof link - 1);
    if (n < 0) return StepResult::fail(kStep, "readlink(" + path + ")", errno);
    link[n] = '\0';
    if (::symlink(link, target.c_str()) != 0 && errno != EEXIST)
      return StepResult::fail(kStep, "symlink(" + path + ")", errno);
    return StepResult::success();
  }
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST)
      return StepResult::fail(kStep, "mkdir(" + path + ")", errno);
  } else {
    int fd = ::open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return StepResult::fail(kStep, "create(" + path + ")", errno);
    ::close(fd);
  }
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    return StepResult::fail(kStep, "mount(MS_BIND " + path + ")", errno);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (writable ? 0 : MS_RDONLY);
  if (!S_ISCHR(st.st_mode)) flags |= MS_NODEV;
  if (::mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0)
    return StepResult::fail(kStep, "mount(MS_REMOUNT " + path + ")", errno);
  return StepResult::success();
}

// Binds host path `path` at the same path.
StepResult bind(const std::string& path, bool writable) { return bind_at(path, path, writable); }

bool kept_out_of_rootfs(const std::string& name) {
  return name == "." || name == ".." || name == "proc" || name == "dev" || name == "sys" || name == "tmp" ||
         name == "run";
}

StepResult mount_proc(int pid_max) {
  if (::mkdir("/newroot/proc", 0555) != 0) return StepResult::fail(kStep, "mkdir(/proc)", errno);
  unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (::mount("proc", "/newroot/proc", "proc", flags, "hidepid=invisible") != 0)
    return StepResult::fail(kStep, "mount(proc)", errno, "needs a pid namespace of the caller's own");
  if (pid_max > 0)
    if (auto r = limit_container_pids("/newroot/proc", pid_max); !r.ok) return r;
  if (::mount(nullptr, "/newroot/proc", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, nullptr) != 0)
    return StepResult::fail(kStep, "mount(/proc, MS_REMOUNT|MS_RDONLY)", errno);
  return StepResult::success();
}

}  // namespace

std::vector<std::string> rootfs_entries(const std::string& rootfs) {
  std::vector<std::string> entries;
  DIR* dir = ::opendir(rootfs.c_str());
  if (!dir) return entries;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    struct stat st;
    if (kept_out_of_rootfs(name) || ::lstat((rootfs + "/" + name).c_str(), &st) != 0 || S_ISLNK(st.st_mode)) continue;
    entries.push_back("/" + name);
  }
  ::closedir(dir);
  return entries;
}

const std::vector<std::string>& sandbox_devices() {
  static const std::vector<std::string> devices = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                                   "/dev/urandom"};
  return devices;
}

StepResult enter_new_root(const RootLayout& layout) {
  if (::unshare(CLONE_NEWNS) != 0)
    return StepResult::fail(kStep, "unshare(CLONE_NEWNS)", errno, "needs CAP_SYS_ADMIN or a user namespace");
  // Nothing we mount may propagate back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return StepResult::fail(kStep, "mount(/, MS_PRIVATE)", errno);
  // A scratch tmpfs to build in; the host root stays reachable as /oldroot until the end.
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
    return StepResult::fail(kStep, "mount(tmpfs, /tmp)", errno);
  if (::chdir("/tmp") != 0) return StepResult::fail(kStep, "chdir(/tmp)", errno);
  if (::mkdir("newroot", 0755) != 0 || ::mkdir("oldroot", 0755) != 0)
    return StepResult::fail(kStep, "mkdir(newroot)", errno);
  if (::syscall(SYS_pivot_root, ".", "oldroot") != 0) return StepResult::fail(kStep, "pivot_root(scratch)", errno);
  if (::chdir("/") != 0) return StepResult::fail(kStep, "chdir(/)", errno);
  if (::mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
    return StepResult::fail(kStep, "mount(tmpfs, newroot)", errno);

  if (!layout.rootfs.empty()) {
    DIR* dir = ::opendir(("/oldroot" + layout.rootfs).c_str());
    if (!dir) return StepResult::fail(kStep, "opendir(" + layout.rootfs + ")", errno, "the rootfs must be a directory");
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(dir))
      if (!kept_out_of_rootfs(entry->d_name)) names.emplace_back(entry->d_name);
    ::closedir(dir);
    for (const std::string& name : names)
      if (auto r = bind_at(layout.rootfs + "/" + name, "/" + name, false); !r.ok) return r;
  }
  for (const std::string& path : layout.readonly_paths)
    if (auto r = bind(path, false); !r.ok) return r;
  for (const std::string& path : layout.writable_paths)
    if (auto r = bind(path, true); !r.ok) return r;
  for (const std::string& path : sandbox_devices())
    if (auto r = bind(path, true); !r.ok) return r;
  if (layout.mount_proc)
    if (auto r = mount_proc(layout.proc_pid_max); !r.ok) return r;
  // Sandboxes mount their own private tmpfs here.
  if (::mkdir("/newroot/tmp", 01777) != 0 && errno != EEXIST) return StepResult::fail(kStep, "mkdir(/tmp)", errno);
  ::chmod("/newroot/tmp", 01777);

  if (::umount2("/oldroot", MNT_DETACH) != 0) return StepResult::fail(kStep, "umount2(oldroot)", errno);
  // pivot_root(".", ".") stacks the old root under the new one; detaching "." then drops it.
  if (::chdir("/newroot") != 0) return StepResult::fail(kStep, "chdir(newroot)", errno);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return StepResult::fail(kStep, "pivot_root(newroot)", errno);
  if (::umount2(".", MNT_DETACH) != 0) return StepResult::fail(kStep, "umount2(scratch)", errno);
  if (::chdir("/") != 0) return StepResult::fail(kStep, "chdir(/)", errno);
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
    return StepResult::fail(kStep, "mount(/, MS_REMOUNT|MS_RDONLY)", errno);
  return StepResult::success();
}

}  // namespace faas::isolation
