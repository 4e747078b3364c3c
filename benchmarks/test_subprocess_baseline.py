"""Baseline: what a naive executor pays, one new `python -c` process per execution."""

from __future__ import annotations

import subprocess
import sys

import pytest

ROUNDS, WARMUP = 100, 3


@pytest.mark.parametrize("flags, key", [((), "subprocess"), (("-S", "-I"), "subprocess_SI")],
                         ids=["plain", "no-site-isolated"])
def test_print_in_a_new_python_process(benchmark, record, flags, key):
    argv = [sys.executable, *flags, "-c", "print('hello')"]

    def spawn():
        p = subprocess.run(argv, capture_output=True)
        assert p.returncode == 0 and p.stdout == b"hello\n", p

    benchmark.pedantic(spawn, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    record(benchmark, key)
