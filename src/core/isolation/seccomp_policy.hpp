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

// personality(2) is allowed only as the query personality(0xffffffff). Any change could weaken
// address-space randomisation (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...), and a bit mask can
// be dodged by setting bits the kernel ignores, so every value but the query is denied (EPERM).
constexpr uint64_t kPersonalityQuery = 0xffffffff;

}  // namespace faas::isolation
