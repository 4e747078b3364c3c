#include "core/snapshot/snapshot.hpp"

#include "core/errors.hpp"

namespace faas::snapshot {

Snapshot::Snapshot(std::string id, std::string parent_id, std::string source_sandbox_id,
                   std::shared_ptr<sandbox::Zygote> template_process, std::shared_ptr<sandbox::OwnedDirectory> workdir,
                   std::shared_ptr<sandbox::OwnedDirectory> layer, std::shared_ptr<sandbox::OwnedDirectory> scratch,
                   sandbox::SandboxSpec source_spec)
    : id_(std::move(id)), parent_id_(std::move(parent_id)), source_sandbox_id_(std::move(source_sandbox_id)),
      source_spec_(std::move(source_spec)),
      created_at_(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()),
      template_pid_(template_process->pid()), template_(std::move(template_process)), workdir_(std::move(workdir)),
      layer_(std::move(layer)), scratch_(std::move(scratch)) {}

bool Snapshot::released() {
  std::lock_guard lock(mu_);
  return released_;
}

bool Snapshot::usable() {
  std::lock_guard lock(mu_);
  return !released_ && template_ && template_->alive();
}

void Snapshot::release() {
  std::shared_ptr<sandbox::Zygote> process;
  std::shared_ptr<sandbox::OwnedDirectory> workdir, layer;
  {
    std::lock_guard lock(mu_);
    if (released_) return;
    released_ = true;
    process = std::move(template_);
    workdir = std::move(workdir_);
    layer = std::move(layer_);
    scratch_.reset();
    if (supervisor_) supervisor_->remove_template(template_pid_);
  }
  if (process) process->shutdown();  // EOF on its channel: the template exits
  // The directories are removed here unless live branches still hold them.
}

std::shared_ptr<sandbox::Zygote> Snapshot::template_process() {
  std::lock_guard lock(mu_);
  if (released_) throw Error(ErrorKind::kSnapshot, "snapshot " + id_ + " has been released");
  if (!template_->alive())
    throw Error(ErrorKind::kSnapshot, "snapshot " + id_ + " is unusable: its template process (pid " +
                                          std::to_string(template_pid_) + ") is gone");
  return template_;
}

void Snapshot::supervise(std::shared_ptr<sandbox::BranchSupervisor> supervisor,
                         sandbox::BranchSupervisor::Layout layout) {
  std::lock_guard lock(mu_);
  supervisor_ = std::move(supervisor);
  supervisor_->add_template(template_pid_, std::move(layout));
}

std::shared_ptr<sandbox::BranchSupervisor> Snapshot::supervisor() {
  std::lock_guard lock(mu_);
  return supervisor_;
}

std::shared_ptr<sandbox::OwnedDirectory> Snapshot::workdir() {
  std::lock_guard lock(mu_);
  return workdir_;
}

std::shared_ptr<sandbox::OwnedDirectory> Snapshot::scratch() {
  std::lock_guard lock(mu_);
  return scratch_;
}

std::shared_ptr<sandbox::OwnedDirectory> Snapshot::layer() {
  std::lock_guard lock(mu_);
  return layer_;
}

}  // namespace faas::snapshot
