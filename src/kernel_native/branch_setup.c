// The steps that make a freshly forked child of an unisolated snapshot template a branch
// (branch_steps.h), in C: in Python each step would touch, and so copy, many pages of the heap
// the branch shares with its template.
#define _GNU_SOURCE  // unshare, CLONE_NEWNS
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel_native/branch_steps.h"

// Puts the engine's data socket on fd 3 and the output pipes on fds 1 and 2. They are moved
// far away first: a received descriptor may itself be 1, 2 or 3.
int faas_install_channels(int sock, int out, int err_fd) {
  int src[3] = {sock, out, err_fd}, high[3], dst[3] = {3, 1, 2};
  for (int i = 0; i < 3; ++i) {
    high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 100);
    if (high[i] < 0) return -1;
  }
  for (int i = 0; i < 3; ++i) close(src[i]);
  for (int i = 0; i < 3; ++i) {
    if (dup3(high[i], dst[i], dst[i] == 3 ? O_CLOEXEC : 0) < 0) return -1;
    close(high[i]);
  }
  return 0;
}

static int read_fd_flags(int fd, int* flags) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0) return -1;
  ssize_t n = read(f, buf, sizeof buf - 1);
  close(f);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* line = strstr(buf, "flags:");
  if (!line) return -1;
  *flags = (int)strtol(line + 6, NULL, 8);
  return 0;
}

int faas_list_regular_files(int** fds) {
  *fds = NULL;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return 0;
  int count = 0, capacity = 0, dir_fd = dirfd(dir);
  struct dirent* entry;
  while ((entry = readdir(dir)) != NULL) {
    char* end;
    long fd = strtol(entry->d_name, &end, 10);
    struct stat st;
    if (*end != '\0' || fd <= 3 || fd == dir_fd || fstat((int)fd, &st) < 0 || !S_ISREG(st.st_mode)) continue;
    if (count == capacity) {
      int* grown = realloc(*fds, sizeof(int) * (size_t)(capacity = capacity ? 2 * capacity : 16));
      if (!grown) break;
      *fds = grown;
    }
    (*fds)[count++] = (int)fd;
  }
  closedir(dir);
  return count;
}

// Gives each of these regular files its own open file description (own offset), re-resolved by
// path so files under the workdir come from this branch's layer. Best effort per descriptor.
static void reopen_files(const int* fds, int count) {
  for (int i = 0; i < count; ++i) {
    int fd = fds[i];
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0) continue;
    path[len] = '\0';
    if (len > 10 && strcmp(path + len - 10, " (deleted)") == 0) continue;
    int flags;
    if (read_fd_flags(fd, &flags) < 0) continue;
    off_t offset = lseek(fd, 0, SEEK_CUR);
    int fresh = open(path, flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY));
    if (fresh < 0) continue;
    if (offset > 0) lseek(fresh, offset, SEEK_SET);
    dup3(fresh, fd, flags & O_CLOEXEC);
    close(fresh);
  }
}

int faas_enter_branch_layer(const char* workdir, const char* lower, const char* own_dir,
                            const int* files, int nfiles, const char** step) {
  *step = "unshare(CLONE_NEWNS)";
  if (unshare(CLONE_NEWNS) < 0) return FAAS_STEP_FAILED;
  // A branch of a branch: the parent branch's overlay is mounted here; drop it (EINVAL: none).
  *step = "umount2(workdir)";
  if (umount2(workdir, MNT_DETACH) < 0 && errno != EINVAL) return FAAS_STEP_FAILED;
  char upper[4096], work[4096], options[12288];
  snprintf(upper, sizeof upper, "%s/upper", own_dir);
  snprintf(work, sizeof work, "%s/work", own_dir);
  *step = "mkdir(branch layer)";
  if (mkdir(own_dir, 0700) < 0 || mkdir(upper, 0700) < 0 || mkdir(work, 0700) < 0) return FAAS_STEP_FAILED;
  snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
  *step = "mount(overlay on the workdir)";
  if (mount("overlay", workdir, "overlay", 0, options) < 0) return FAAS_STEP_FAILED;
  *step = "chdir(workdir)";
  if (chdir(workdir) < 0) return FAAS_STEP_FAILED;
  reopen_files(files, nfiles);
  return 0;
}
