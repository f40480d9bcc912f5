"""``python -m tools.bench NAME [options]``: run one benchmark and print its table.

Each benchmark is a module ``tools.bench.<name>`` with ``add_arguments(parser)``
and ``run(args) -> int``; the ones present are listed by ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable

import tools.bench


def _missing(name: str, module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(f"the {name} benchmark needs {module}: python3 -m pip install -e '.[bench]'", file=sys.stderr)
        return 2

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="name", metavar="NAME", required=True)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for info in pkgutil.iter_modules(tools.bench.__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"tools.bench.{info.name}")
        except ModuleNotFoundError as e:  # a benchmark's own dependency: the others still run
            missing = e.name or "a module"
            sub.add_parser(info.name, help=f"(needs {missing}: pip install -e '.[bench]')")
            runners[info.name] = _missing(info.name, missing)
            continue
        if not hasattr(module, "run"):
            continue
        p = sub.add_parser(info.name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(p)
        runners[info.name] = module.run
    args = parser.parse_args(argv)
    return int(runners[args.name](args))


if __name__ == "__main__":
    sys.exit(main())
