"""The `faas-sdk` command line. Each subcommand lives in its own module and registers itself
here through a `register(subparsers)` function that sets `func` on its parser."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

# Modules that provide subcommands; each has register(subparsers).
SUBCOMMAND_MODULES = (
    "faas_sdk.perf.matrix_cli",
    "faas_sdk.perf.load_cli",
    "faas_sdk.perf.regression_cli",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib
    parser = argparse.ArgumentParser(prog="faas-sdk", description="faas_sdk performance toolkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that subcommand is not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
