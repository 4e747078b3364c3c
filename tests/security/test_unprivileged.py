"""SECURE and CONTAINER modes also work for an unprivileged host user, through a user
namespace: the whole platform runs as `nobody` here, and a failed isolation step is reported by
name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import faas_sdk
from faas_sdk import _core

NOBODY = 65534
PACKAGE_SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(faas_sdk.__file__)))
NATIVE_DIR = os.path.dirname(os.path.abspath(_core.__file__))

# As nobody: the host's interpreter may live where nobody cannot read (e.g. under /root), so use
# the system's Python of the same version, and point faas_sdk at this build.
SCRIPT = textwrap.dedent(f"""
    import json, sys, warnings
    sys.path.insert(0, {PACKAGE_SOURCE!r})
    import faas_sdk
    faas_sdk.__path__.append({NATIVE_DIR!r})
    from faas_sdk import ExecutionPlatform, Limits, Mode
    mode = Mode[sys.argv[1]]
    PROBE = '''
    import ctypes, errno, os, socket
    def attempt(fn):
        try:
            fn()
            return "ok"
        except OSError as exc:
            return errno.errorcode[exc.errno]
    header = (ctypes.c_uint32 * 2)(0x20080522, 0); data = (ctypes.c_uint32 * 6)()
    ctypes.CDLL(None).capget(header, data)
    open("note.txt", "w").write("mine")
    dict(shadow=attempt(lambda: open("/etc/shadow")), usr=attempt(lambda: open("/usr/x", "w")),
         kill_init=attempt(lambda: os.kill(1, 0)), interfaces=[n for _, n in socket.if_nameindex()],
         tcp=attempt(lambda: socket.create_connection(("127.0.0.1", 22), timeout=2)),
         capabilities=sum(data), note=open("note.txt").read(), hostname=socket.gethostname(),
         own_pid_namespace=os.getppid() == 1,
         processes=sorted(n for n in os.listdir("/proc") if n.isdigit()) if os.path.isdir("/proc") else None)
    '''
    with ExecutionPlatform(warm_pool_size=0) as p:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            limits = Limits(memory_bytes=256 << 20) if mode is Mode.CONTAINER else None
            sandbox = p.create_sandbox(mode=mode, limits=limits)
        result = sandbox.run(PROBE)
        # A branch, and a branch of it, each with files of its own.
        sandbox.run("counter = 1\\nopen('state.txt', 'w').write('base')")
        with sandbox.snapshot().branch() as branch:
            branch.run("counter += 1\\nopen('state.txt', 'a').write('+1')")
            with branch.snapshot().branch() as grandchild:
                snapshot = [grandchild.run("(counter, open('state.txt').read())").value,
                            branch.run("(counter, open('state.txt').read())").value,
                            sandbox.run("(counter, open('state.txt').read())").value]
        memory = sandbox.run("hog = bytearray(1 << 30)")
        print(json.dumps(dict(success=result.success, error=str(result.error), value=result.value,
                              warnings=[type(w.message).__name__ for w in caught], snapshot=snapshot,
                              memory=memory.limit_exceeded)))
""")


# LOCAL as nobody: the template's user and mount namespaces, its tmpfs and the branches'
# overlays all come from a user namespace of nobody's own.
LOCAL_SCRIPT = textwrap.dedent(f"""
    import json, sys
    sys.path.insert(0, {PACKAGE_SOURCE!r})
    import faas_sdk
    faas_sdk.__path__.append({NATIVE_DIR!r})
    from faas_sdk import ExecutionPlatform
    with ExecutionPlatform() as platform, platform.create_sandbox() as sandbox:
        sandbox.run("counter = 1\\nopen('state.txt', 'w').write('base')")
        with sandbox.snapshot() as snapshot:
            seen = []
            for _ in range(3):  # forked on demand, then from the spare
                with snapshot.branch() as branch:
                    branch.run("counter += 1\\nopen('state.txt', 'a').write('+1')")
                    seen.append(branch.run("(counter, open('state.txt').read())").value)
                    with branch.snapshot() as inner, inner.branch() as grandchild:
                        seen.append(grandchild.run("(counter, open('state.txt').read())").value)
        seen.append(sandbox.run("(counter, open('state.txt').read())").value)
        print(json.dumps(seen))
""")


def as_nobody(argv, **kwargs):
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture
def nobody_python(require_isolation):
    if os.geteuid() != 0:
        pytest.skip("the host is already unprivileged: the other security tests run this way")
    python = "/usr/bin/python3"
    if not (shutil.which("setpriv") and os.path.exists(python)):
        require_isolation("needs setpriv and /usr/bin/python3")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        require_isolation(f"/usr/bin/python3 is {version}; this build is for {sys.version_info[:2]}")
    return python


@pytest.mark.parametrize("mode", ["SECURE", "CONTAINER"])
def test_sandbox_of_an_unprivileged_host_is_isolated(nobody_python, mode):
    run = as_nobody([nobody_python, "-c", SCRIPT, mode], cwd="/")
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["success"], outcome["error"]
    probe = eval(outcome["value"])  # a dict literal of strings, ints and booleans
    hostname = probe.pop("hostname")
    own_pid_namespace = probe.pop("own_pid_namespace")
    processes = probe.pop("processes")
    assert probe == {"shadow": "ENOENT", "usr": "EROFS", "kill_init": "EPERM", "interfaces": ["lo"],
                     "tcp": "EACCES", "capabilities": 0, "note": "mine"}
    # Branches: the engine sets them up from the user namespaces it made.
    assert outcome["snapshot"] == ["(2, 'base+1')", "(2, 'base+1')", "(1, 'base')"]
    if mode == "CONTAINER":
        assert hostname == "sandbox" and own_pid_namespace
        assert processes == ["2"]  # itself: the zygote (pid 1, the same host uid) is hidden
        # nobody cannot write the host's cgroups: the memory limit falls back to RLIMIT_AS, and says so
        assert outcome["warnings"] == ["LimitWeakenedWarning"]
        assert outcome["memory"] == "memory_bytes"
    else:
        assert hostname != "sandbox" and not own_pid_namespace and processes is None


def test_local_branches_of_an_unprivileged_host(nobody_python):
    run = as_nobody([nobody_python, "-c", LOCAL_SCRIPT], cwd="/")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ["(2, 'base+1')"] * 6 + ["(1, 'base')"]


def test_a_failed_step_is_named(nobody_python):
    # Unprivileged and without a user namespace, the network step cannot unshare.
    isolate = os.path.join(NATIVE_DIR, "faas-isolate")
    run = as_nobody([isolate, "--ro", "/usr", "--", "/usr/bin/true"])
    assert run.returncode == 121
    assert run.stderr.startswith("IsolationError: network: unshare(CLONE_NEWNET) failed: Operation not permitted (EPERM)")
    assert "Hint:" in run.stderr
