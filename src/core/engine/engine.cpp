#include "core/engine/engine.hpp"

#include <stdlib.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "core/errors.hpp"
#include "core/protocol/messages.hpp"
#include "core/snapshot/workdir_copy.hpp"
#include "core/log/logging.hpp"
#include "core/util/syscalls.hpp"

namespace faas::engine {
namespace {

std::mutex g_mu;
EngineConfig g_config;
bool g_configured = false;
// Never deleted: sandboxes held by Python objects keep a reference to their engine, and must
// still answer (as dead) after shutdown.
Engine* g_engine = nullptr;
pid_t g_engine_pid = 0;
pid_t g_tbb_pid = 0;  // the process that first started TBB workers

// Every sandbox holds four descriptors in the host (socket, two pipes, pidfd); the common soft
// limit of 1024 would cap a process at ~250 sandboxes. Raise it to the hard limit.
void raise_open_file_limit() {
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0)
    log::logger()->debug("raised RLIMIT_NOFILE from {} to {}", before, limit.rlim_max);
}

std::string make_temp_root(const std::string& parent) {
  std::string pattern = (parent.empty() ? std::string("/tmp") : parent) + "/faas_sdk-" +
                        std::to_string(::getpid()) + "-XXXXXX";
  if (!::mkdtemp(pattern.data())) sys::throw_errno("mkdtemp(" + pattern + ")");
  return pattern;
}

// Zygotes and warm pools exist per interpreter and isolation profile.
std::string pool_key(const std::string& python, const std::string& isolation) { return isolation + ":" + python; }

std::string new_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  uint64_t v = rng();
  std::string id = prefix;
  for (int i = 0; i < 12; ++i) id.push_back(hex[(v >> (i * 4)) & 0xF]);
  return id;
}

}  // namespace

void Engine::configure(EngineConfig config) {
  std::lock_guard lock(g_mu);
  g_config = std::move(config);
  g_configured = true;
}

Engine& Engine::instance() {
  std::lock_guard lock(g_mu);
  // After fork() the child has the parent's engine in memory but none of its threads: it must
  // not use or shut down that engine (the sandboxes are the parent's). Start a fresh one.
  if (g_engine && g_engine_pid != ::getpid()) g_engine = nullptr;
  if (!g_engine) {
    if (!g_configured) throw Error(ErrorKind::kFaas, "the engine is not configured (import faas_sdk first)");
    g_engine = new Engine(g_config);
    g_engine_pid = ::getpid();
  }
  return *g_engine;
}

bool Engine::running() {
  std::lock_guard lock(g_mu);
  return g_engine != nullptr && g_engine_pid == ::getpid();
}

void Engine::shutdown_instance() {
  Engine* engine;
  {
    std::lock_guard lock(g_mu);
    engine = std::exchange(g_engine, nullptr);
    if (g_engine_pid != ::getpid()) return;  // inherited through fork(): not ours to end
  }
  if (engine) engine->shutdown();
}

Engine::Engine(EngineConfig config)
    : config_(std::move(config)),
      temp_root_(make_temp_root(config_.temp_parent)),
      broker_(reactor_, config_.broker_path, temp_root_),
      arena_(2),
      tbb_usable_(g_tbb_pid == 0 || g_tbb_pid == ::getpid()) {
  if (g_tbb_pid == 0) g_tbb_pid = ::getpid();
  raise_open_file_limit();
  reactor_.start();
  broker_.start();
  log::logger()->debug("engine started, temp root {}", temp_root_);
}

std::shared_ptr<sandbox::Zygote> Engine::zygote_for(const std::string& python, const std::string& isolation) {
  std::shared_ptr<sandbox::Zygote> zygote;
  std::string key = pool_key(python, isolation);
  {
    std::lock_guard lock(mu_);
    if (shut_down_) throw Error(ErrorKind::kFaas, "the engine has been shut down");
    auto it = zygotes_.find(key);
    if (it != zygotes_.end() && it->second->alive()) {
      zygote = it->second;
    } else {
      std::string native_dir = config_.broker_path.substr(0, config_.broker_path.rfind('/'));
      zygote = std::make_shared<sandbox::Zygote>(reactor_, python, config_.kernel_script, temp_root_, native_dir);
      if (!isolation.empty()) zygote->isolate(isolation_launch(isolation));
      zygotes_[key] = zygote;
      zygote->start(broker_);
    }
  }
  if (!zygote->wait_ready(std::chrono::seconds(60)))
    throw Error(ErrorKind::kFaas, "the zygote for " + python + " did not start within 60 s");
  return zygote;
}

sandbox::IsolationLaunch Engine::isolation_launch(const std::string& isolation) const {
  // "secure", "container", or "container:<rootfs>" (a base system of the user's).
  std::string profile = isolation.substr(0, isolation.find(':'));
  if (profile != "secure" && profile != "container")
    throw Error(ErrorKind::kNotImplemented, "unknown isolation profile " + isolation);
  sandbox::IsolationLaunch launch;
  launch.isolate_path = config_.isolate_path;
  launch.container = profile == "container";
  launch.writable_paths = {temp_root_};
  if (launch.container && isolation.size() > profile.size()) {
    launch.rootfs = isolation.substr(profile.size() + 1);
    // The rootfs brings the interpreter and system; only the kernel and its helper come from us.
    auto directory_of = [](const std::string& path) { return path.substr(0, path.rfind('/')); };
    launch.readonly_paths = {directory_of(config_.kernel_script), directory_of(config_.broker_path)};
  } else {
    launch.readonly_paths = config_.isolation_readonly_paths;
  }
  return launch;
}

std::shared_ptr<sandbox::Sandbox> Engine::create_sandbox(sandbox::SandboxSpec spec, bool wait_ready) {
  if (spec.loopback && spec.isolation.empty())
    throw Error(ErrorKind::kFaas, "a loopback network of its own is for isolated sandboxes: LOCAL uses the host's");
  if (!spec.isolation.empty() && !spec.workdir.empty())
    throw Error(ErrorKind::kNotImplemented, "a workdir of your choice is not available in " + spec.isolation +
                                                " mode yet: sandboxes there get a private one");
  auto zygote = zygote_for(spec.python, spec.isolation);
  std::string id = new_id("sbx-");
  bool owns = spec.workdir.empty();
  std::string workdir = owns ? temp_root_ + "/" + id : spec.workdir;
  std::error_code ec;
  if (owns) {
    if (::mkdir(workdir.c_str(), 0700) < 0) sys::throw_errno("mkdir(" + workdir + ")");
  } else if (!std::filesystem::create_directories(workdir, ec) && ec) {
    throw Error(ErrorKind::kFaas, "cannot create workdir " + workdir + ": " + ec.message());
  }
  auto sb = std::make_shared<sandbox::Sandbox>(*this, id, std::move(spec),
                                               std::make_shared<sandbox::OwnedDirectory>(workdir, owns));
  start_from(*zygote, sb);
  if (wait_ready && !sb->wait_ready(std::chrono::seconds(60))) {
    sb->close();
    throw Error(ErrorKind::kFaas, "sandbox " + id + " did not become ready within 60 s");
  }
  return sb;
}

void Engine::start_from(sandbox::Zygote& server, const std::shared_ptr<sandbox::Sandbox>& sb) {
  {
    std::lock_guard lock(mu_);
    registry_.emplace(sb->id(), sb);
  }
  try {
    auto [engine_end, kernel_end] = sys::socket_pair(SOCK_STREAM, true);
    auto [out_read, out_write] = sys::make_pipe(true);
    auto [err_read, err_write] = sys::make_pipe(true);
    sb->attach_channels(std::move(engine_end), std::move(out_read), std::move(err_read));
    server.fork_sandbox(sb, std::move(kernel_end), std::move(out_write), std::move(err_write));
  } catch (const std::exception& e) {
    sb->fail_start(std::string("could not be started: ") + e.what());
    sb->close();
    throw;
  }
}

std::shared_ptr<sandbox::Sandbox> Engine::take_warm(const std::string& python, const std::string& isolation) {
  for (;;) {
    std::shared_ptr<sandbox::Sandbox> sb;
    {
      std::lock_guard lock(mu_);
      auto& pool = pools_[pool_key(python, isolation)];
      if (pool.empty()) break;
      sb = std::move(pool.front());
      pool.pop_front();
    }
    // Forking the replacement is off the caller's path.
    run_in_background([this, python, isolation] { refill_pool(python, isolation); });
    try {
      if (sb->wait_ready(std::chrono::seconds(60))) return sb;
    } catch (const Error&) {
    }
    sb->close_async();  // died while waiting in the pool: discard and try the next
  }
  // Pool empty: fork the caller's sandbox first, refill behind it.
  sandbox::SandboxSpec spec;
  spec.python = python;
  spec.isolation = isolation;
  auto sb = create_sandbox(std::move(spec), false);
  run_in_background([this, python, isolation] { refill_pool(python, isolation); });
  if (!sb->wait_ready(std::chrono::seconds(60))) {
    sb->close();
    throw Error(ErrorKind::kFaas, "sandbox " + sb->id() + " did not become ready within 60 s");
  }
  return sb;
}

void Engine::refill_pool(const std::string& python, const std::string& isolation) {
  size_t missing;
  std::string key = pool_key(python, isolation);
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    auto& pool = pools_[key];
    missing = pool_size_ > pool.size() ? pool_size_ - pool.size() : 0;
  }
  for (size_t i = 0; i < missing; ++i) {
    sandbox::SandboxSpec spec;
    spec.python = python;
    spec.isolation = isolation;
    try {
      auto sb = create_sandbox(std::move(spec), false);
      std::lock_guard lock(mu_);
      pools_[key].push_back(std::move(sb));
    } catch (const std::exception& e) {
      log::logger()->warn("warm pool refill for {} failed: {}", python, e.what());
      return;
    }
  }
}

void Engine::set_pool_size(size_t size) {
  std::lock_guard lock(mu_);
  pool_size_ = size;
}

void Engine::prewarm(const std::string& python, const std::string& isolation) {
  // Zygote start-up takes tens of milliseconds; do it off the caller's path.
  run_in_background([this, python, isolation] {
    try {
      zygote_for(python, isolation);
      refill_pool(python, isolation);
    } catch (const std::exception& e) {
      log::logger()->warn("prewarm of {} failed: {}", python, e.what());
    }
  });
}

size_t Engine::live_sandbox_count() {
  std::lock_guard lock(mu_);
  return registry_.size();
}

void Engine::sandbox_finished(std::shared_ptr<sandbox::Sandbox> sb) {
  {
    std::lock_guard lock(mu_);
    registry_.erase(sb->id());
  }
  // Dropping the directories removes those nobody else holds (a snapshot may still hold the
  // workdir its branches mount over). Never block the reactor on file-system work.
  auto dirs = sb->release_directories();
  if (!reactor_.in_reactor_thread()) return;  // dropped here, inline
  run_in_background([dirs = std::move(dirs)]() mutable { dirs.clear(); });
}

void Engine::run_in_background(std::function<void()> fn) {
  {
    std::lock_guard lock(disposal_mu_);
    ++background_pending_;
  }
  auto task = [this, fn = std::move(fn)] {
    try {
      fn();
    } catch (const std::exception& e) {
      log::logger()->error("background task failed: {}", e.what());
    }
    std::lock_guard lock(disposal_mu_);
    --background_pending_;
    disposal_cv_.notify_all();
  };
  if (tbb_usable_) {
    arena_.enqueue(std::move(task));
  } else {
    std::thread(std::move(task)).detach();
  }
}

void Engine::wait_disposals() {
  std::unique_lock lock(disposal_mu_);
  disposal_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return background_pending_ == 0; });
}

void Engine::shutdown() {
  std::vector<std::shared_ptr<sandbox::Sandbox>> sandboxes;
  std::unordered_map<std::string, std::shared_ptr<sandbox::Zygote>> zygotes;
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, sb] : registry_) sandboxes.push_back(sb);
    pools_.clear();
    zygotes.swap(zygotes_);
    for (auto& [id, snap] : snapshots_) snap->release();
    snapshots_.clear();
  }
  for (auto& sb : sandboxes) sb->kill("the engine shut down");
  for (auto& sb : sandboxes) sb->close();
  for (auto& [python, zygote] : zygotes) zygote->shutdown();
  broker_.shutdown();  // kills anything left and removes the temp root
  wait_disposals();
  reactor_.stop();
  std::error_code ec;
  std::filesystem::remove_all(temp_root_, ec);
  log::logger()->debug("engine shut down");
}

}  // namespace faas::engine

namespace faas::engine {

std::shared_ptr<snapshot::Snapshot> Engine::snapshot(const std::shared_ptr<sandbox::Sandbox>& sb) {
  // A confined kernel cannot give its branches private files itself: the lineage's supervisor
  // mounts them from outside (branch_supervisor.hpp), which needs root for now.
  bool isolated = !sb->spec().isolation.empty();
  auto supervisor = sb->branch_supervisor();
  if (isolated && !supervisor)
    throw Error(ErrorKind::kNotImplemented, "sandbox " + sb->id() + " has no branch supervisor (its kernel's "
                                            "seccomp listener could not be taken); it cannot be snapshotted");
  auto started = std::chrono::steady_clock::now();
  std::string id = new_id("snap-");
  auto layer = std::make_shared<sandbox::OwnedDirectory>(temp_root_ + "/" + id, true);
  // Where the template makes each branch's own layer ({upper, work}); removed with the snapshot
  // once no branch uses it.
  auto scratch = std::make_shared<sandbox::OwnedDirectory>(temp_root_ + "/" + id + ".branches", true);
  // The kernel is idle while `before_send` runs, so the files copied match the memory forked.
  auto freeze_files = [&]() -> std::string {
    if (::mkdir(scratch->path().c_str(), 0700) < 0) return "mkdir(" + scratch->path() + "): " + std::strerror(errno);
    // A branch's files are its own overlay, visible only in its mount namespace.
    std::string source = sb->is_branch() ? "/proc/" + std::to_string(sb->pid()) + "/root" + sb->workdir() : sb->workdir();
    return snapshot::copy_tree(source, layer->path());
  };
  std::string paths = sb->workdir() + '\0' + layer->path() + '\0' + scratch->path();
  auto exec = sb->submit(paths, std::nullopt, false, true, protocol::kFrameSnapshot, freeze_files);
  std::vector<sandbox::StreamChunk> chunks;
  while (!sb->pump(exec, std::chrono::milliseconds(50), chunks)) {
  }
  const sandbox::Outcome& o = exec->outcome();
  if (!o.success) {
    ErrorKind kind = o.kind == sandbox::OutcomeKind::kDied ? ErrorKind::kSandboxDead : ErrorKind::kSnapshot;
    throw Error(kind, "cannot snapshot sandbox " + sb->id() + ": " + o.error_message);
  }
  auto fds = exec->take_fds();
  char* end = nullptr;
  long template_pid = std::strtol(o.value.c_str(), &end, 10);
  if (fds.size() != 2 || template_pid <= 0 || *end != '\0') {
    sb->kill("protocol violation: malformed snapshot reply");
    throw Error(ErrorKind::kProtocol, "sandbox " + sb->id() + " sent a malformed snapshot reply");
  }
  // The kernel names the template by its pid in its own namespace (CONTAINER's differs).
  bool namespaced = sb->spec().isolation.rfind("container", 0) == 0;
  if (namespaced) template_pid = sys::pid_of_pidfd(fds[1].get());
  if (template_pid <= 0) throw Error(ErrorKind::kSnapshot, "the template of sandbox " + sb->id() + " died at once");
  auto process = sandbox::Zygote::adopt(reactor_, "the template of snapshot " + id, static_cast<pid_t>(template_pid),
                                        std::move(fds[0]), std::move(fds[1]), namespaced);
  auto snap = std::make_shared<snapshot::Snapshot>(id, sb->origin_snapshot(), sb->id(), std::move(process),
                                                   sb->workdir_directory(), std::move(layer), std::move(scratch),
                                                   sb->spec());
  if (supervisor) {
    struct stat owner{};
    ::stat(sb->workdir().c_str(), &owner);  // the sandbox's uid owns its workdir
    snap->supervise(supervisor, {sb->workdir(), snap->layer()->path(), snap->scratch()->path(), owner.st_uid,
                                 owner.st_gid});
  }
  {
    std::lock_guard lock(mu_);
    snapshots_.emplace(id, snap);
  }
  metrics_.snapshot.record_ns(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count()));
  metrics_.snapshots_created.fetch_add(1, std::memory_order_relaxed);
  return snap;
}

std::shared_ptr<sandbox::Sandbox> Engine::branch(const std::shared_ptr<snapshot::Snapshot>& snap,
                                                 std::optional<uint64_t> seed, bool wait_ready) {
  auto process = snap->template_process();  // throws SnapshotError when released or dead
  auto layer = snap->layer();
  auto scratch = snap->scratch();
  auto workdir = snap->workdir();
  if (!layer || !workdir || !scratch) throw Error(ErrorKind::kSnapshot, "snapshot " + snap->id() + " has been released");
  std::string id = new_id("sbx-");
  sandbox::SandboxSpec spec = snap->source_spec();
  spec.workdir = workdir->path();
  spec.env.clear();
  spec.rlimits.clear();  // inherited through fork, like the environment
  spec.seed = seed;
  // The branch pins what its overlay mounts: the frozen layer and the scratch area holding its
  // own layer (which the template made; FORKED names it and the sandbox removes it).
  auto sb = std::make_shared<sandbox::Sandbox>(*this, id, std::move(spec), workdir,
                                               std::vector<std::shared_ptr<sandbox::OwnedDirectory>>{layer, scratch},
                                               snap->id());
  if (auto supervisor = snap->supervisor()) sb->set_branch_supervisor(std::move(supervisor));
  try {
    start_from(*process, sb);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kSnapshot, "cannot branch snapshot " + snap->id() + ": " + e.what());
  }
  snap->branches_made.fetch_add(1, std::memory_order_relaxed);
  if (wait_ready) {
    try {
      if (!sb->wait_ready(std::chrono::seconds(60))) throw Error(ErrorKind::kFaas, "not ready within 60 s");
    } catch (const Error& e) {
      sb->close();
      throw Error(ErrorKind::kSnapshot, "branch of snapshot " + snap->id() + " failed: " + e.what());
    }
  }
  return sb;
}

std::vector<std::shared_ptr<snapshot::Snapshot>> Engine::live_snapshots() {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<snapshot::Snapshot>> out;
  for (auto& [id, snap] : snapshots_) out.push_back(snap);
  return out;
}

void Engine::forget_snapshot(const std::string& id) {
  std::lock_guard lock(mu_);
  snapshots_.erase(id);
}

std::vector<std::shared_ptr<sandbox::Sandbox>> Engine::live_sandboxes() {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<sandbox::Sandbox>> out;
  for (auto& [id, sb] : registry_) out.push_back(sb);
  return out;
}

size_t Engine::live_branch_count() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (auto& [id, sb] : registry_) n += sb->is_branch() ? 1 : 0;
  return n;
}

}  // namespace faas::engine
