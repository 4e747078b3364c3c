// The SECURE profile's system-call policy, as data a reviewer can read in one place
// (seccomp_policy.cpp). Applied by seccomp_filter.cpp; proven by tests/security.
#pragma once

#include <cstdint>
#include <span>

namespace faas::isolation {

struct DeniedSyscall {
  const char* name;  // as libseccomp names it; absent on this architecture: skipped
  int error;         // the errno the call fails with (EPERM; ENOSYS where libc must fall back)
  const char* why;
};

// Denied whatever their arguments.
std::span<const DeniedSyscall> denied_syscalls();

// clone(2) and unshare(2) flags that would create namespaces: denied (EPERM) when any is set.
uint64_t denied_namespace_flags();

// The one exception: unshare(2) with exactly these flags is handed to the engine as a seccomp
// user notification (SECCOMP_RET_USER_NOTIF). The engine grants it to a fresh branch of a
// snapshot, once, so that the branch gets mount and IPC namespaces of its own for its private
// files, and refuses it (EPERM) to everyone else (core/sandbox/branch_supervisor.hpp).
constexpr uint64_t kBranchNamespaceFlags = 0x10000000 /* CLONE_NEWUSER */ | 0x00020000 /* CLONE_NEWNS */ |
                                           0x08000000 /* CLONE_NEWIPC */;

// personality(2) is allowed only as the query personality(0xffffffff). Any change could weaken
// address-space randomisation (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...), and a bit mask can
// be dodged by setting bits the kernel ignores, so every value but the query is denied (EPERM).
constexpr uint64_t kPersonalityQuery = 0xffffffff;

}  // namespace faas::isolation
