// The steps that turn a freshly forked child of a snapshot template into a branch, before its
// first READY (fork_server.c runs them): branch_setup.c (an unisolated template) and
// confinement.cpp (an isolated one). Each returns 0, or one of the codes below with *step
// saying what failed.
#ifndef FAAS_KERNEL_NATIVE_BRANCH_STEPS_H_
#define FAAS_KERNEL_NATIVE_BRANCH_STEPS_H_

#ifdef __cplusplus
extern "C" {
#endif

enum {
  FAAS_STEP_FAILED = -1,            // *step names the step; errno says why
  FAAS_STEP_FAILED_DESCRIBED = -2,  // *step is the whole message
};

// Puts the engine's data socket on fd 3 and the output pipes on fds 1 and 2.
int faas_install_channels(int sock, int out, int err_fd);

// The regular files among this process's descriptors above 3: a malloc'd list, and its length.
int faas_list_regular_files(int** fds);

// A copy of the template's private mount namespace with an overlay at the workdir (the
// snapshot's frozen files `lower` below, own_dir/upper above), cwd there, and `files` (the
// template's regular files, which the branch inherited) reopened on it.
int faas_enter_branch_layer(const char* workdir, const char* lower, const char* own_dir,
                            const int* files, int nfiles, const char** step);

// The branch's own user, mount and IPC namespaces (the engine mounts its layers: see
// core/sandbox/branch_supervisor.hpp), no capabilities, a Landlock domain of its own, cwd in
// the workdir.
int faas_enter_isolated_branch(const char* workdir, const char** step);

#ifdef __cplusplus
}
#endif

#endif  // FAAS_KERNEL_NATIVE_BRANCH_STEPS_H_
