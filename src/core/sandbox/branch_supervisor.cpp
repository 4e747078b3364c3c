#include "core/sandbox/branch_supervisor.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <tuple>

#include "core/engine/reactor.hpp"
#include "core/isolation/seccomp_policy.hpp"
#include "core/log/logging.hpp"

namespace faas::sandbox {
namespace {

constexpr int kLetItRun = 1;

// Fields 4 (parent pid) and 22 (start time) of /proc/<pid>/stat; false if it is gone.
bool read_stat(pid_t pid, pid_t& parent, unsigned long long& start_time) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int index = 3; fields >> field; ++index) {
    if (index == 4) parent = static_cast<pid_t>(std::stol(field));
    if (index == 22) {
      start_time = std::stoull(field);
      return true;
    }
  }
  return false;
}

// The pid a process has in its own (innermost) pid namespace: the last field of NSpid.
pid_t innermost_pid(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    pid_t last = -1, value;
    while (fields >> value) last = value;
    return last;
  }
  return -1;
}

// The id `host_id` has inside the user namespace of `pid`, from that process's map (as this
// process reads it: "inside outside count" lines, outside in our terms); -1 if unmapped.
long long id_inside(pid_t pid, const char* map, unsigned long long host_id) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + map);
  unsigned long long inside, outside, count;
  while (in >> inside >> outside >> count)
    if (host_id >= outside && host_id - outside < count) return static_cast<long long>(inside + (host_id - outside));
  return -1;
}

// Field `key` ("Uid:", "Gid:") of /proc/<pid>/status: the real id, in our terms.
unsigned long long status_id(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::string(key).size()));
  return ~0ULL;
}

// The exit status of child `pid` as an errno (EIO if it was killed).
int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
}

// Whether processes `a` and `b` share namespace `kind` ("mnt", "user"); true when unsure.
bool same_namespace(pid_t a, pid_t b, const char* kind) {
  struct stat first{}, second{};
  if (::stat(("/proc/" + std::to_string(a) + "/ns/" + kind).c_str(), &first) < 0 ||
      ::stat(("/proc/" + std::to_string(b) + "/ns/" + kind).c_str(), &second) < 0)
    return true;
  return first.st_ino == second.st_ino && first.st_dev == second.st_dev;
}

// What a branch's new user namespace maps: its uid and gid, to the numbers they have in the
// namespace above (the template's), so getuid() does not change and a branch of this branch
// can make a user namespace in turn (the kernel refuses that to an unmapped id).
struct IdMaps {
  std::string uid_line, gid_line;
  int proc_dir = -1;       // /proc/<branch>, to open the map files in the writer's namespace
  int parent_userns = -1;  // to enter first: only a process there (or in the branch's) may write
};

int prepare_id_maps(pid_t branch, pid_t parent, IdMaps& maps) {
  struct stat ours{}, theirs{};
  std::string parent_ns = "/proc/" + std::to_string(parent) + "/ns/user";
  if (::stat("/proc/self/ns/user", &ours) < 0 || ::stat(parent_ns.c_str(), &theirs) < 0) return -errno;
  bool same = ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev;
  for (auto [map, key, line] :
       {std::tuple{"uid_map", "Uid:", &maps.uid_line}, std::tuple{"gid_map", "Gid:", &maps.gid_line}}) {
    unsigned long long host_id = status_id(branch, key);
    long long inside = id_inside(parent, map, host_id);
    if (inside < 0) return -EPERM;
    // The outside id is read in the writer's namespace: ours, or (entered) the parent's.
    unsigned long long outside = same ? host_id : static_cast<unsigned long long>(inside);
    *line = std::to_string(inside) + " " + std::to_string(outside) + " 1\n";
  }
  maps.proc_dir = ::open(("/proc/" + std::to_string(branch)).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (maps.proc_dir < 0) return -errno;
  if (!same) {
    maps.parent_userns = ::open(parent_ns.c_str(), O_RDONLY | O_CLOEXEC);
    if (maps.parent_userns < 0) return -errno;
  }
  return 0;
}

// In the helper: nothing but system calls. 0 or an errno.
int write_id_map(int proc_dir, const char* name, const std::string& line) {
  int fd = ::openat(proc_dir, name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int error = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) ? 0 : errno;
  ::close(fd);
  return error;
}

int fs_string(int fs, const char* key, const char* value) {
  return static_cast<int>(::syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0));
}

// A detached mount of file system `type` configured with `options` (key, value pairs).
int detached_mount(const char* type, const char* const* options, unsigned attributes) {
  int fs = static_cast<int>(::syscall(SYS_fsopen, type, FSOPEN_CLOEXEC));
  if (fs < 0) return -1;
  for (const char* const* o = options; *o; o += 2) {
    long rc = o[1] ? fs_string(fs, o[0], o[1]) : ::syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, o[0], nullptr, 0);
    if (rc < 0) return -1;
  }
  if (::syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) return -1;
  return static_cast<int>(::syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attributes));
}

}  // namespace

std::shared_ptr<BranchSupervisor> BranchSupervisor::start(engine::Reactor& reactor, UniqueFd listener,
                                                          pid_t sandbox_pid) {
  std::shared_ptr<BranchSupervisor> self(new BranchSupervisor(reactor, std::move(listener)));
  unsigned long long start_time = 0;
  read_stat(sandbox_pid, self->zygote_pid_, start_time);  // the sandbox's parent: its zygote
  std::weak_ptr<BranchSupervisor> weak = self;
  self->token_ = reactor.watch(self->listener_.get(), EPOLLIN, [weak](uint32_t) {
    if (auto supervisor = weak.lock()) supervisor->on_readable();
  });
  return self;
}

BranchSupervisor::BranchSupervisor(engine::Reactor& reactor, UniqueFd listener)
    : reactor_(reactor), listener_(std::move(listener)) {}

BranchSupervisor::~BranchSupervisor() {
  if (token_) reactor_.unwatch(token_, listener_.get());
}

void BranchSupervisor::add_template(pid_t host_pid, Layout layout) {
  std::lock_guard lock(mu_);
  templates_[host_pid] = std::move(layout);
}

void BranchSupervisor::remove_template(pid_t host_pid) {
  std::lock_guard lock(mu_);
  templates_.erase(host_pid);
}

void BranchSupervisor::on_readable() {
  seccomp_notif request{};
  if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_RECV, &request) < 0) return;  // e.g. the caller died
  int verdict = answer(request);
  seccomp_notif_resp response{};
  response.id = request.id;
  if (verdict == kLetItRun) {
    response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  } else {
    response.error = verdict;
  }
  ::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_SEND, &response);  // ENOENT: the caller is gone
}

int BranchSupervisor::answer(const seccomp_notif& request) {
  if (request.data.args[0] != isolation::kBranchNamespaceFlags) return -EPERM;
  pid_t pid = static_cast<pid_t>(request.pid), parent = 0;
  unsigned long long start_time = 0;
  if (!read_stat(pid, parent, start_time)) return -EPERM;
  // The /proc reads above must be about the process that asked, not a reuse of its pid.
  if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_ID_VALID, &request.id) < 0) return -EPERM;
  Layout layout;
  int calls;
  {
    std::lock_guard lock(mu_);
    auto it = templates_.find(parent);
    if (it == templates_.end()) return -EPERM;  // not a fresh child of one of our templates
    auto& [seen_start, answered] = branches_[pid];
    if (seen_start != start_time) seen_start = start_time, answered = 0;
    calls = ++answered;
    layout = it->second;
  }
  if (calls == 1) return kLetItRun;
  if (calls != 2) return -EPERM;
  if (int error = set_up_branch(pid, parent, layout)) return error;
  reopen_workdir_files(request.id, pid, layout.workdir);
  return 0;
}

// What the helper needs, all prepared before it starts: it may call nothing but the kernel.
struct HelperPlan {
  const char* const* overlay;  // the overlay's options
  int zygote_userns = -1, zygote_mntns = -1;  // for an unprivileged engine
  const char* workdir;
  int branch_pidfd;
  const IdMaps* maps;
};

int move_to_workdir(int mount, const char* workdir) {
  return ::syscall(SYS_move_mount, mount, "", AT_FDCWD, workdir, MOVE_MOUNT_F_EMPTY_PATH) < 0 ? errno : 0;
}

// The helper: mounts the overlay at the workdir in the branch's mount namespace, then (from
// inside the parent user namespace when that is not ours) writes the branch's id maps. It
// runs in our memory (CLONE_VM | CLONE_VFORK: no page tables to copy, which a fork of the host
// process would) with a namespace context of its own, since setns() of a mount or user
// namespace needs a caller that shares neither its file-system context nor its thread group.
int run_helper(void* argument) {
  const auto& plan = *static_cast<const HelperPlan*>(argument);
  int workdir_mount = detached_mount("overlay", plan.overlay, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (workdir_mount < 0 || ::setns(plan.branch_pidfd, CLONE_NEWNS) < 0) return errno;
  if (int error = move_to_workdir(workdir_mount, plan.workdir)) return error;
  if (plan.maps->parent_userns >= 0 && ::setns(plan.maps->parent_userns, CLONE_NEWUSER) < 0) return errno;
  if (int error = write_id_map(plan.maps->proc_dir, "uid_map", plan.maps->uid_line)) return error;
  return write_id_map(plan.maps->proc_dir, "gid_map", plan.maps->gid_line);
}

// The same for an unprivileged engine, which has capabilities only in the user namespaces it
// made. It builds the overlay inside the zygote's namespaces, where the layers' paths are
// visible (not in the branch's: its sandbox sees only its own workdir), keeping the overlay's
// metadata in user.* extended attributes (userxattr, as a user namespace requires); then it
// enters the parent's user namespace to write the maps, and the branch's mount namespace.
int run_unprivileged_helper(void* argument) {
  const auto& plan = *static_cast<const HelperPlan*>(argument);
  if (::setns(plan.zygote_userns, CLONE_NEWUSER) < 0 || ::setns(plan.zygote_mntns, CLONE_NEWNS) < 0) return errno;
  int workdir_mount = detached_mount("overlay", plan.overlay, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (workdir_mount < 0) return errno;
  if (plan.maps->parent_userns >= 0 && ::setns(plan.maps->parent_userns, CLONE_NEWUSER) < 0 && errno != EINVAL)
    return errno;  // EINVAL: the parent's is the zygote's, entered already
  if (int error = write_id_map(plan.maps->proc_dir, "uid_map", plan.maps->uid_line)) return error;
  if (int error = write_id_map(plan.maps->proc_dir, "gid_map", plan.maps->gid_line)) return error;
  if (::setns(plan.branch_pidfd, CLONE_NEWNS) < 0) return errno;
  return move_to_workdir(workdir_mount, plan.workdir);
}

int BranchSupervisor::set_up_branch(pid_t branch, pid_t parent, const Layout& layout) {
  // The first call may have failed (a namespace limit, say): then the caller still shares its
  // template's mount namespace, and a mount there would land in the sandbox's and every
  // sibling's view. Mount only into a namespace of its own.
  for (const char* ns : {"mnt", "user"})
    if (same_namespace(branch, parent, ns)) return -EPERM;
  pid_t own_pid = innermost_pid(branch);
  if (own_pid <= 0) return -ESRCH;
  std::string own = layout.scratch + "/" + std::to_string(own_pid);
  std::string upper = own + "/upper", work = own + "/work";
  for (const std::string& dir : {own, upper, work}) {
    if (::mkdir(dir.c_str(), 0700) < 0) return -errno;
    if (::chown(dir.c_str(), layout.owner_uid, layout.owner_gid) < 0) return -errno;
  }
  IdMaps maps;
  int error = prepare_id_maps(branch, parent, maps);
  int pidfd = error ? -1 : static_cast<int>(::syscall(SYS_pidfd_open, branch, 0));
  if (!error && pidfd < 0) error = -errno;
  if (!error) {
    const char* overlay[] = {"lowerdir", layout.lower.c_str(), "upperdir", upper.c_str(), "workdir", work.c_str(),
                             nullptr, nullptr, nullptr};
    bool unprivileged = ::geteuid() != 0;
    if (unprivileged) overlay[6] = "userxattr";  // a flag: no value
    std::string zygote = "/proc/" + std::to_string(zygote_pid_) + "/ns/";
    HelperPlan plan{overlay, -1, -1, layout.workdir.c_str(), pidfd, &maps};
    if (unprivileged) {
      plan.zygote_userns = ::open((zygote + "user").c_str(), O_RDONLY | O_CLOEXEC);
      plan.zygote_mntns = ::open((zygote + "mnt").c_str(), O_RDONLY | O_CLOEXEC);
    }
    std::vector<char> stack(64 * 1024);
    pid_t helper = ::clone(unprivileged ? run_unprivileged_helper : run_helper, stack.data() + stack.size(),
                           CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
    error = helper < 0 ? -errno : -wait_for(helper);
    for (int fd : {plan.zygote_userns, plan.zygote_mntns})
      if (fd >= 0) ::close(fd);
    if (error) log::logger()->warn("setting up branch {} (workdir overlay, id maps) failed: errno {}", branch, -error);
  }
  for (int fd : {pidfd, maps.proc_dir, maps.parent_userns})
    if (fd >= 0) ::close(fd);
  return error;
}

void BranchSupervisor::reopen_workdir_files(uint64_t request_id, pid_t branch, const std::string& workdir) {
  std::string proc = "/proc/" + std::to_string(branch);
  DIR* dir = ::opendir((proc + "/fd").c_str());
  if (!dir) return;
  while (dirent* entry = ::readdir(dir)) {
    char* end;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || fd <= 3) continue;  // 0-3: the engine's channels
    char target[4096];
    ssize_t n = ::readlink((proc + "/fd/" + entry->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    std::string path(target, static_cast<size_t>(n));
    if (path.rfind(workdir + "/", 0) != 0) continue;  // only the workdir's files have a copy
    std::ifstream info(proc + "/fdinfo/" + entry->d_name);
    long long position = 0;
    int flags = -1;
    std::string key;
    while (info >> key) {
      if (key == "pos:") info >> position;
      else if (key == "flags:") info >> std::oct >> flags >> std::dec;
    }
    if (flags < 0) continue;
    // Opened through the branch's root, so in its mount namespace: its own copy.
    int fresh = ::open((proc + "/root" + path).c_str(), flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY));
    if (fresh < 0) continue;
    struct stat st;
    if (::fstat(fresh, &st) == 0 && S_ISREG(st.st_mode)) {
      ::lseek(fresh, position, SEEK_SET);
      seccomp_notif_addfd add{};
      add.id = request_id;
      add.flags = SECCOMP_ADDFD_FLAG_SETFD;
      add.srcfd = static_cast<uint32_t>(fresh);
      add.newfd = static_cast<uint32_t>(fd);
      add.newfd_flags = static_cast<uint32_t>(flags & O_CLOEXEC);
      ::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_ADDFD, &add);
    }
    ::close(fresh);
  }
  ::closedir(dir);
}

}  // namespace faas::sandbox
