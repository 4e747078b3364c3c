#include "core/isolation/landlock.hpp"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace faas::isolation {
namespace {

constexpr const char* kStep = "landlock";

// The Landlock UAPI (<linux/landlock.h>); Debian 12's headers predate ABI 4-7.
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));
constexpr int kRulePathBeneath = 1;
constexpr unsigned kCreateRulesetVersion = 1U << 0;
constexpr long kSysCreateRuleset = 444, kSysAddRule = 445, kSysRestrictSelf = 446;

enum : uint64_t {
  kExecute = 1ULL << 0, kWriteFile = 1ULL << 1, kReadFile = 1ULL << 2, kReadDir = 1ULL << 3,
  kRemoveDir = 1ULL << 4, kRemoveFile = 1ULL << 5, kMakeChar = 1ULL << 6, kMakeDir = 1ULL << 7,
  kMakeReg = 1ULL << 8, kMakeSock = 1ULL << 9, kMakeFifo = 1ULL << 10, kMakeBlock = 1ULL << 11,
  kMakeSym = 1ULL << 12, kRefer = 1ULL << 13 /* ABI 2 */, kTruncate = 1ULL << 14 /* ABI 3 */,
  kIoctlDev = 1ULL << 15 /* ABI 5 */,
};
constexpr uint64_t kNetBindTcp = 1ULL << 0, kNetConnectTcp = 1ULL << 1;          // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ULL << 0, kScopeSignal = 1ULL << 1;  // ABI 6

// Rights that apply to a file (the rest only make sense on directories).
constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

uint64_t handled_fs_rights(int abi) {
  uint64_t rights = kExecute | kWriteFile | kReadFile | kReadDir | kRemoveDir | kRemoveFile | kMakeChar |
                    kMakeDir | kMakeReg | kMakeSock | kMakeFifo | kMakeBlock | kMakeSym;
  if (abi >= 2) rights |= kRefer;
  if (abi >= 3) rights |= kTruncate;
  if (abi >= 5) rights |= kIoctlDev;
  return rights;
}

StepResult add_rule(int ruleset, const std::string& path, uint64_t rights, uint64_t handled) {
  int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return StepResult::success();
    return StepResult::fail(kStep, "open(" + path + ", O_PATH)", errno);
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) rights &= kFileRights;
  PathBeneathAttr rule{rights & handled, fd};
  long rc = ::syscall(kSysAddRule, ruleset, kRulePathBeneath, &rule, 0);
  int err = errno;
  ::close(fd);
  if (rc != 0) return StepResult::fail(kStep, "landlock_add_rule(" + path + ")", err);
  return StepResult::success();
}

}  // namespace

int landlock_abi() {
  long abi = ::syscall(kSysCreateRuleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

StepResult restrict_filesystem(const FilesystemRules& rules) {
  int abi = landlock_abi();
  if (abi < 1)
    return StepResult::fail(kStep, "landlock_create_ruleset(VERSION)", errno ? errno : ENOSYS,
                            "the kernel has no Landlock (CONFIG_SECURITY_LANDLOCK, lsm=landlock)");
  uint64_t handled = handled_fs_rights(abi);
  RulesetAttr attr{handled, 0, 0};
  size_t attr_size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = rules.tcp ? 0 : kNetBindTcp | kNetConnectTcp;
    attr_size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
    attr_size = sizeof attr;
  }
  int ruleset = static_cast<int>(::syscall(kSysCreateRuleset, &attr, attr_size, 0));
  if (ruleset < 0) return StepResult::fail(kStep, "landlock_create_ruleset", errno);
  auto add_all = [&]() -> StepResult {
    for (const auto& path : rules.readable)
      if (auto r = add_rule(ruleset, path, kReadFile | kReadDir | kExecute, handled); !r.ok) return r;
    for (const auto& path : rules.writable)
      if (auto r = add_rule(ruleset, path, handled, handled); !r.ok) return r;
    for (const auto& path : rules.devices)
      if (auto r = add_rule(ruleset, path, kReadFile | kWriteFile, handled); !r.ok) return r;
    if (::syscall(kSysRestrictSelf, ruleset, 0) != 0)
      return StepResult::fail(kStep, "landlock_restrict_self", errno, "needs no_new_privs");
    return StepResult::success();
  };
  StepResult result = add_all();
  ::close(ruleset);
  return result;
}

}  // namespace faas::isolation
