#include "core/isolation/network.hpp"

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace faas::isolation {

StepResult isolate_network() {
  if (::unshare(CLONE_NEWNET) != 0)
    return StepResult::fail("network", "unshare(CLONE_NEWNET)", errno, "needs CAP_SYS_ADMIN or a user namespace");
  return StepResult::success();
}

StepResult enter_loopback_network() {
  constexpr const char* kStep = "loopback network";
  if (::unshare(CLONE_NEWNET) != 0)
    return StepResult::fail(kStep, "unshare(CLONE_NEWNET)", errno, "needs CAP_SYS_ADMIN or a user namespace");
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return StepResult::fail(kStep, "socket(AF_INET)", errno);
  ifreq request{};
  ::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  request.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  int rc = ::ioctl(sock, SIOCSIFFLAGS, &request);
  int err = errno;
  ::close(sock);
  if (rc != 0) return StepResult::fail(kStep, "ioctl(SIOCSIFFLAGS, lo up)", err);
  return StepResult::success();
}

}  // namespace faas::isolation
