"""Beam search over code edits that repairs a failing function.

A checkpointed sandbox holds a buggy function and its tests. Each search step applies one
candidate edit in its own copy-on-write branch and scores it by the number of tests that pass;
the best states are kept as snapshots and expanded again. Two bugs need two edits, so no single
edit fixes the function: the search has to go two levels deep.
"""

from faas_sdk import ExecutionPlatform, Mode

BUGGY = '''\
def mean_and_median(xs):
    total = 0
    for x in xs:
        total += x
    mean = total / (len(xs) - 1)
    s = sorted(xs)
    mid = len(s) // 2
    median = s[mid]
    return mean, median
'''

TESTS = [([1, 2, 3], (2.0, 2)), ([1, 2, 3, 4], (2.5, 2.5)), ([5], (5.0, 5)), ([4, 1, 3, 2], (2.5, 2.5))]

# Candidate replacements per line: a tiny "edit model".
EDITS = {
    "    mean = total / (len(xs) - 1)\n": [
        "    mean = total / len(xs)\n",
        "    mean = total / (len(xs) + 1)\n",
        "    mean = (total - 1) / len(xs)\n",
    ],
    "    median = s[mid]\n": [
        "    median = s[mid - 1]\n",
        "    median = (s[mid - 1] + s[mid]) / 2 if len(s) % 2 == 0 else s[mid]\n",
        "    median = s[-1]\n",
    ],
    "    mid = len(s) // 2\n": ["    mid = len(s) // 2 + 1\n", "    mid = (len(s) - 1) // 2\n"],
}

SETUP = f'''
SOURCE = {BUGGY!r}
TESTS = {TESTS!r}

def apply_edit(old, new):
    global SOURCE
    SOURCE = SOURCE.replace(old, new)
    exec(SOURCE, globals())
    return passed()

def passed():
    ok = 0
    for xs, want in TESTS:
        try:
            ok += mean_and_median(xs) == want
        except Exception:
            pass
    return ok

exec(SOURCE)
passed()
'''


def expand(node):
    """Every single-line edit not tried on this path yet."""
    done = set(node.path)
    candidates = []
    for old, replacements in EDITS.items():
        for new in replacements:
            code = f"apply_edit({old!r}, {new!r})"
            if code not in done:
                candidates.append(code)
    return candidates


def main() -> None:
    with ExecutionPlatform() as platform:
        base = platform.execute(SETUP, mode=Mode.CHECKPOINTED)
        print(f"buggy function passes {base.value}/{len(TESTS)} tests")
        search = platform.explore_tree(
            base.snapshot, expand=expand,
            score=lambda r: int(r.value) if r.success and r.value else -1,
            beam_width=2, depth=3, goal=lambda node: node.score == len(TESTS))
        best = search.best
        print(f"searched {search.branches_run} branches from {search.nodes_expanded} states")
        print(f"best: {int(best.score)}/{len(TESTS)} tests after {len(best.path)} edits:")
        for code in best.path:
            print("   ", code)
        with best.snapshot.branch() as fixed:
            print("repaired function:\n" + fixed.run("print(SOURCE)").stdout.rstrip())
            print("check:", fixed.run("mean_and_median([1, 2, 3, 4]), mean_and_median([1, 2, 3])").value)
        search.release()
        base.snapshot.release()
        assert best.score == len(TESTS), "the search should repair both bugs"


if __name__ == "__main__":
    main()
