// Message types and layouts of the three channels (see docs/protocol.md):
//   engine <-> broker  (SOCK_SEQPACKET control socket)
//   engine <-> zygote  (SOCK_SEQPACKET control socket; the zygote forks kernels)
//   engine <-> kernel  (SOCK_STREAM data socket carrying length-prefixed frames)
// The Python side of the zygote and kernel lives in python/faas_sdk/_kernel/kernel.py and must
// stay in step with these constants.
#pragma once

#include <bit>
#include <cstdint>

namespace faas::protocol {

// engine <-> broker
enum BrokerMessage : uint8_t {
  kBrokerSpawn = 0x01,    // u32 request, u32 argc, str*, u32 envc, str*; fds -> child 0..3
  kBrokerSpawned = 0x81,  // u32 request, i32 pid, i32 errno; fds [pidfd] when pid > 0
  kBrokerExited = 0x82,   // i32 pid, i32 wait status
};

// engine <-> zygote, and engine <-> snapshot template (the same fork-server protocol)
enum ZygoteMessage : uint8_t {
  kZygoteFork = 0x01,    // u32 request, str sandbox id, str workdir, u32 n, (str k, str v)*,
                         // u32 m, (u32 resource, u64 limit)*, u8 has seed, u64 seed,
                         // u8 flags (kForkLoopback); fds [data socket, stdout, stderr]
  kZygoteReady = 0x80,   // i32 pid, str python version
  kZygoteForked = 0x81,  // u32 request, i32 pid, i32 errno, str message, str private directory
                         // (a branch's layer dir, to remove when it ends; else empty);
                         // fds [pidfd] if pid > 0
  kZygoteExited = 0x82,  // i32 pid, i32 wait status
};

// FORK flags.
constexpr uint8_t kForkLoopback = 0x01;  // an isolated kernel: a network namespace of its own, lo up

// engine <-> kernel frames: header then payload.
struct FrameHeader {
  uint32_t length;  // payload bytes
  uint8_t type;
  uint8_t flags;
  uint16_t reserved;
};
static_assert(sizeof(FrameHeader) == 8);
static_assert(std::endian::native == std::endian::little, "frames are little-endian, copied as structs");

enum KernelFrame : uint8_t {
  kFrameExec = 0x01,      // payload: 16-byte end-of-output marker token, then UTF-8 code
  kFrameSnapshot = 0x02,  // payload: 16-byte token (unused), then workdir, frozen layer and
                          // scratch directory, NUL-separated; the kernel forks a template
  kFrameReady = 0x81,   // payload: i32 pid, i32 seccomp listener (its fd number in the kernel; -1: none)
  kFrameResult = 0x82,  // payload: u8 status, u8 markers, u16 0, u64 ns, str value, str type,
                        //          str message, str traceback; flags bit 0: has value
  kFrameFatal = 0x83,   // payload: str message (kernel could not start)
  kFrameSnapshotDone = 0x84,  // RESULT layout, value = template pid; on success carries fds
                              // [template control socket, template pidfd] (SCM_RIGHTS)
};

enum ResultStatus : uint8_t { kStatusOk = 0, kStatusError = 1 };
enum ResultMarkers : uint8_t { kMarkerStdout = 1, kMarkerStderr = 2 };
constexpr uint8_t kFlagHasValue = 1;

constexpr size_t kMarkerTokenSize = 16;
// The kernel writes kMarkerPrefix + token to a stream to say "all output of this execution
// is before this point". Tokens are random per execution so user output cannot forge one.
constexpr char kMarkerPrefix[] = "\x1e\x1f" "FAAS-END:";
constexpr size_t kMarkerPrefixSize = sizeof(kMarkerPrefix) - 1;

constexpr uint32_t kMaxKernelFrame = 64u << 20;

}  // namespace faas::protocol
