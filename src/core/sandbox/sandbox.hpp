// A live kernel process and its three channels (data socket, stdout and stderr pipes) plus a
// pidfd. Callers submit executions from any thread; the reactor thread feeds it I/O, exits and
// deadlines. One execution runs at a time; further submitters wait their turn.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/metrics/engine_metrics.hpp"
#include "core/sandbox/execution.hpp"
#include "core/sandbox/output_capture.hpp"
#include "core/sandbox/owned_directory.hpp"
#include "core/sandbox/sandbox_spec.hpp"
#include "core/util/unique_fd.hpp"

namespace faas::engine {
class Reactor;
}

namespace faas::sandbox {

class BranchSupervisor;
class Sandbox;

// What a sandbox needs from the engine that owns it.
class SandboxHost {
 public:
  virtual ~SandboxHost() = default;
  virtual engine::Reactor& reactor() = 0;
  virtual metrics::EngineMetrics& metrics() = 0;
  // Called once per sandbox, from any thread, when a closed sandbox's process is gone.
  virtual void sandbox_finished(std::shared_ptr<Sandbox> sandbox) = 0;
};

class Sandbox : public std::enable_shared_from_this<Sandbox> {
 public:
  enum class State { kStarting, kIdle, kBusy, kDead };

  // `pinned`: directories that must outlive this sandbox's process (a branch's own layer and
  // the snapshot layer under it). `origin_snapshot`: the snapshot a branch came from.
  Sandbox(SandboxHost& host, std::string id, SandboxSpec spec, std::shared_ptr<OwnedDirectory> workdir,
          std::vector<std::shared_ptr<OwnedDirectory>> pinned = {}, std::string origin_snapshot = {});
  ~Sandbox();

  const std::string& id() const { return id_; }
  const std::string& workdir() const { return workdir_->path(); }
  const std::shared_ptr<OwnedDirectory>& workdir_directory() const { return workdir_; }
  const std::string& origin_snapshot() const { return origin_snapshot_; }
  bool is_branch() const { return !origin_snapshot_.empty(); }
  // Hands over the directories this sandbox holds, for the engine to drop where removing
  // them does no harm (never on the reactor thread).
  std::vector<std::shared_ptr<OwnedDirectory>> release_directories();
  const SandboxSpec& spec() const { return spec_; }
  // Isolated sandboxes: the supervisor of their lineage's seccomp notifications (null until the
  // kernel is ready, and for LOCAL ones). A branch gets its snapshot's.
  std::shared_ptr<BranchSupervisor> branch_supervisor();
  void set_branch_supervisor(std::shared_ptr<BranchSupervisor> supervisor);
  pid_t pid();
  State state();
  bool alive();
  std::string death_reason();

  // Start-up, driven by the engine and zygote.
  void attach_channels(UniqueFd socket, UniqueFd stdout_read, UniqueFd stderr_read);
  // `private_dir`: a directory the fork server made for this sandbox alone (a branch's own
  // layer), removed with it.
  void attach_process(pid_t pid, UniqueFd pidfd, const std::string& private_dir = {});
  void fail_start(const std::string& reason);
  void on_exit_status(int status);

  // Blocks until the kernel said READY; throws Error(kSandboxDead) if it died instead.
  // Returns false on timeout.
  bool wait_ready(std::chrono::milliseconds timeout);

  // Sends `code` for execution. Waits (up to `queue_timeout`) while another execution runs.
  // Throws Error(kSandboxDead) when the sandbox is dead.
  // With `direct`, the caller promises to call pump() until the execution is done: it reads
  // the kernel's channels on its own thread, which saves the reactor's wake-up per execution.
  // `frame_type` is kFrameExec, or kFrameSnapshot (then `code` is empty). `before_send` runs
  // once this request owns the (idle) kernel, before the frame is sent; a non-empty return
  // is an error that completes the request without sending it.
  std::shared_ptr<Execution> submit(const std::string& code, std::optional<double> timeout_s,
                                    bool streaming, bool direct = false, uint8_t frame_type = 1,
                                    const std::function<std::string()>& before_send = {});
  // Waits up to `max_wait` for the kernel's channels and processes what arrived; moves
  // streamed chunks into `chunks`. Returns true once `exec` is complete.
  bool pump(const std::shared_ptr<Execution>& exec, std::chrono::milliseconds max_wait,
            std::vector<StreamChunk>& chunks);
  // Host-side interrupt (Ctrl-C): SIGINT now; SIGKILL if `exec` has not finished after the grace.
  void interrupt(const std::shared_ptr<Execution>& exec);

  // Kills the process group; returns at once. `reason` becomes the death reason.
  void kill(const std::string& reason);
  // Kills and waits until the process is gone (bounded); the engine then removes the workdir.
  void close();
  // Kills and returns at once; the engine disposes of the sandbox when its process is gone.
  void close_async();
  bool closed();

 private:
  void on_socket_event(uint32_t events);
  void read_socket_locked();
  void on_output_event(int stream, uint32_t events);
  void read_output_locked(int stream);
  void set_direct_locked(bool on);
  void on_process_exit();
  void handle_frame(uint8_t type, uint8_t flags, std::string_view payload);
  void handle_result(uint8_t flags, std::string_view payload);
  void route_output(int stream, std::string_view data);
  void try_finish_locked();
  void finish_locked(Outcome outcome);
  void mark_dead_locked(const std::string& reason);
  void kill_locked(const std::string& reason);
  void finalize_exit_locked();
  void drain_output_locked();
  void on_deadline(uint64_t seq);
  // Takes the kernel's seccomp listener (named in READY) out of it, once READY and the pidfd
  // are both here; the kernel closes its own copy before it runs any code.
  void adopt_listener_locked();
  void on_kill_deadline(uint64_t seq);

  SandboxHost& host_;
  const std::string id_;
  const SandboxSpec spec_;
  std::shared_ptr<OwnedDirectory> workdir_;
  std::vector<std::shared_ptr<OwnedDirectory>> pinned_;
  const std::string origin_snapshot_;
  const std::chrono::steady_clock::time_point created_at_;
  const pid_t owner_pid_;  // the host process; a fork()ed copy must leave the sandbox alone
  int kernel_listener_ = -1;  // the listener's descriptor number in the kernel, from READY
  std::shared_ptr<BranchSupervisor> supervisor_;

  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kStarting;
  std::string death_reason_;
  pid_t pid_ = 0;
  bool kill_requested_ = false;
  bool exited_ = false;      // the pidfd fired
  bool finalized_ = false;   // descriptors released
  bool close_requested_ = false;
  bool async_close_ = false;
  bool finished_reported_ = false;
  std::optional<int> exit_status_;
  uint64_t exit_grace_timer_ = 0;

  UniqueFd socket_, stdout_, stderr_, pidfd_;
  uint64_t socket_token_ = 0, stdout_token_ = 0, stderr_token_ = 0, pidfd_token_ = 0;

  // Reactor-thread state (guarded by mu_ as well, for simplicity).
  std::vector<char> rx_;  // partial frames
  size_t rx_begin_ = 0, rx_end_ = 0;
  std::deque<UniqueFd> rx_fds_;  // descriptors received with frames, in arrival order
  OutputCapture capture_[2];
  std::string idle_output_[2];  // output produced between executions

  std::shared_ptr<Execution> current_;
  uint8_t request_type_ = 0;  // the frame type current_ was sent as
  uint64_t next_seq_ = 1;
  bool result_received_ = false;
  Outcome pending_;
  bool timed_out_ = false;
  bool host_interrupted_ = false;
  bool direct_ = false;  // a caller thread reads the channels; the reactor's watches are paused
  double current_timeout_s_ = 0;
  uint64_t deadline_timer_ = 0, kill_timer_ = 0, marker_timer_ = 0;
};

}  // namespace faas::sandbox
