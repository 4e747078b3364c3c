"""A short tour of faas_sdk: stateful sandboxes, one-shot execution, failures as data, metrics."""

from faas_sdk import ExecutionPlatform, Limits


def main() -> None:
    with ExecutionPlatform() as platform:
        print("== A stateful sandbox keeps its globals between runs")
        with platform.create_sandbox() as sandbox:
            sandbox.run("import math\nradius = 2.0")
            result = sandbox.run("area = math.pi * radius ** 2\nprint(f'area = {area:.3f}')\narea")
            print(result)
            print("  stdout:", result.stdout.strip(), "| value:", result.value)

            print("\n== A failure of the user's code is data, not an exception")
            failed = sandbox.run("def divide(a, b):\n    return a / b\ndivide(1, 0)")
            print(failed)
            print("  " + failed.error.traceback.strip().replace("\n", "\n  "))
            print("  the sandbox is still alive:", sandbox.alive, "| radius is still", sandbox.run("radius").value)

        print("\n== One-shot execution in a fresh sandbox from the warm pool")
        for i in range(3):
            r = platform.execute(f"import os\nprint('run {i} in pid', os.getpid())")
            print(f"  {r.stdout.strip():<28} {r.duration * 1e3:6.2f} ms  ({r.sandbox_id})")

        print("\n== A runaway loop hits its timeout; the sandbox is then dead")
        with platform.create_sandbox(limits=Limits(timeout=0.5)) as sandbox:
            r = sandbox.run("while True:\n    pass")
            print(f"  outcome={r.outcome} error={r.error.type}: {r.error.message}")
            print("  alive afterwards:", sandbox.alive)

        print("\n== Engine metrics (shared by every platform in the process)")
        m = platform.metrics()
        for name in ("sandbox_start", "execute"):
            h = m[name]
            print(f"  {name:<14} n={h['count']:<4} p50={h['p50'] * 1e3:.3f} ms  p99={h['p99'] * 1e3:.3f} ms")
        print(f"  executions={m['executions']} failed={m['executions_failed']} timeouts={m['timeouts']}")


if __name__ == "__main__":
    main()
