// The engine's side of a branch of an isolated (SECURE, CONTAINER) sandbox.
//
// A confined kernel can never mount (Landlock refuses it) nor create namespaces (seccomp), yet
// each branch of its snapshots needs files of its own at the workdir's path. So the filter
// turns unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC) into a user notification, and the
// engine, holding the filter's listener, answers it:
//   1st call of a fresh child of a known template: granted (the call runs; the branch gets
//       user, mount and IPC namespaces of its own, and the capabilities of its new user
//       namespace, which it drops right after);
//   2nd call, the branch's doorbell: the engine maps the branch's uid and gid in its new user
//       namespace, mounts the branch's overlay at the workdir into its mount namespace from
//       outside, where Landlock does not apply, reopens the workdir files the branch holds
//       open on its own copy, and answers success without running the call;
//   any other call, from anyone: EPERM, as the policy says for every other namespace flag.
// One supervisor serves a sandbox's whole lineage: the sandbox, its snapshots' templates and
// their branches (of branches...) all inherit the one filter the sandbox loaded.
// Code in the sandbox can tamper with its template (it is a fork of the same interpreter) and
// make it fork children that ask too. They get what a branch gets and no more: namespaces
// owned by a user namespace that maps only their own uid, so its capabilities cover nothing
// but their own files and processes, and they stay under the sandbox's Landlock domain and
// seccomp filter, which refuse every mount and every other namespace call.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/util/unique_fd.hpp"

namespace faas::engine {
class Reactor;
}

struct seccomp_notif;

namespace faas::sandbox {

class BranchSupervisor : public std::enable_shared_from_this<BranchSupervisor> {
 public:
  // What a template's branches mount: host paths, and the owner of the branch's own layer.
  struct Layout {
    std::string workdir;  // where the overlay goes (the same path inside and outside)
    std::string lower;    // the snapshot's frozen copy of the workdir
    std::string scratch;  // branches' own layers: scratch/<pid in the template's namespace>
    uid_t owner_uid = 0;
    gid_t owner_gid = 0;
  };

  // `sandbox_pid`: the kernel that loaded the filter (its parent, the zygote, is remembered:
  // an unprivileged engine builds branches' mounts inside the zygote's namespaces).
  static std::shared_ptr<BranchSupervisor> start(engine::Reactor& reactor, UniqueFd listener, pid_t sandbox_pid);
  ~BranchSupervisor();
  BranchSupervisor(const BranchSupervisor&) = delete;
  BranchSupervisor& operator=(const BranchSupervisor&) = delete;

  void add_template(pid_t host_pid, Layout layout);
  void remove_template(pid_t host_pid);

 private:
  BranchSupervisor(engine::Reactor& reactor, UniqueFd listener);
  void on_readable();
  // The reply's error: 0 success, a negative errno, or 1 for "let the call run".
  int answer(const seccomp_notif& request);
  // The doorbell's work: the branch's id maps and its workdir overlay; 0 or a negative errno.
  int set_up_branch(pid_t branch, pid_t parent, const Layout& layout);
  // Gives each regular file under the workdir that the branch inherited open an open file
  // description of its own, on its own copy, at the same offset (SECCOMP_IOCTL_NOTIF_ADDFD):
  // otherwise it would write through the sandbox's. Done here because a SECURE branch has no
  // /proc to find its files' paths.
  void reopen_workdir_files(uint64_t request_id, pid_t branch, const std::string& workdir);

  engine::Reactor& reactor_;
  UniqueFd listener_;
  pid_t zygote_pid_ = 0;
  uint64_t token_ = 0;
  std::mutex mu_;
  std::unordered_map<pid_t, Layout> templates_;
  // Branch pid -> (its start time, calls answered): a pid reused later is a new process.
  std::unordered_map<pid_t, std::pair<unsigned long long, int>> branches_;
};

}  // namespace faas::sandbox
