// A snapshot: a frozen template process holding a kernel's memory (shared copy-on-write with
// every branch), plus a frozen copy of the sandbox's workdir that branches overlay. Branches
// never depend on the template process: releasing the snapshot ends the template at once.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "core/sandbox/branch_supervisor.hpp"
#include "core/sandbox/owned_directory.hpp"
#include "core/sandbox/sandbox_spec.hpp"
#include "core/sandbox/zygote.hpp"

namespace faas::snapshot {

class Snapshot {
 public:
  Snapshot(std::string id, std::string parent_id, std::string source_sandbox_id,
           std::shared_ptr<sandbox::Zygote> template_process, std::shared_ptr<sandbox::OwnedDirectory> workdir,
           std::shared_ptr<sandbox::OwnedDirectory> layer, std::shared_ptr<sandbox::OwnedDirectory> scratch,
           sandbox::SandboxSpec source_spec);

  const std::string& id() const { return id_; }
  const std::string& parent_id() const { return parent_id_; }
  const std::string& source_sandbox_id() const { return source_sandbox_id_; }
  // The spec of the sandbox it was taken from: branches keep its interpreter and output limit.
  const sandbox::SandboxSpec& source_spec() const { return source_spec_; }
  double created_at() const { return created_at_; }  // seconds since the epoch
  pid_t template_pid() const { return template_pid_; }

  bool released();
  // True while branches can be made: not released and the template process is alive.
  bool usable();
  // Ends the template process and drops this snapshot's hold on its directories. Idempotent.
  void release();

  // For the engine's branch creation. Throw Error(kSnapshot) when unusable.
  std::shared_ptr<sandbox::Zygote> template_process();
  std::shared_ptr<sandbox::OwnedDirectory> workdir();
  std::shared_ptr<sandbox::OwnedDirectory> layer();
  std::shared_ptr<sandbox::OwnedDirectory> scratch();  // where branches' own layers live
  std::atomic<uint64_t> branches_made{0};
  // Isolated snapshots: the lineage's supervisor, which mounts each branch's layers (null for
  // LOCAL ones, whose branches mount their own). Set once, before any branch.
  void supervise(std::shared_ptr<sandbox::BranchSupervisor> supervisor, sandbox::BranchSupervisor::Layout layout);
  std::shared_ptr<sandbox::BranchSupervisor> supervisor();

 private:
  const std::string id_, parent_id_, source_sandbox_id_;
  const sandbox::SandboxSpec source_spec_;
  const double created_at_;
  const pid_t template_pid_;
  std::mutex mu_;
  bool released_ = false;
  std::shared_ptr<sandbox::Zygote> template_;
  std::shared_ptr<sandbox::OwnedDirectory> workdir_, layer_, scratch_;
  std::shared_ptr<sandbox::BranchSupervisor> supervisor_;
};

}  // namespace faas::snapshot
