"""Run the benchmarks in bench/ on one throwaway database and print their figures.

    .venv/bin/python -m bench                   # every benchmark; PostgreSQL if it answers, else SQLite
    .venv/bin/python -m bench --sqlite          # force the SQLite path
    .venv/bin/python -m bench nearest_stores    # only the named ones

The exit status is non-zero when a benchmark finds a wrong answer (or the database
cannot be set up); slow figures are printed as "not met", never failed.
"""

import argparse
import importlib
import pkgutil
import signal
import sys
import time

import bench
from bench._database import DatabaseUnavailable, flush_database, throwaway_database


def benchmark_names() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(bench.__path__) if not module.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="benchmark", help=f"default: all of {', '.join(benchmark_names())}")
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument("--sqlite", dest="backend", action="store_const", const="sqlite", help="use SQLite")
    backend.add_argument(
        "--postgresql", dest="backend", action="store_const", const="postgresql", help="require PostgreSQL"
    )
    parser.set_defaults(backend="auto")
    args = parser.parse_args(argv)

    names = args.names or benchmark_names()
    unknown = sorted(set(names) - set(benchmark_names()))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)}")

    # A stopped run (Ctrl-C, or kill from a CI timeout) still drops its database on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    started = time.perf_counter()
    failed: list[str] = []
    try:
        with throwaway_database(args.backend) as database:
            print(f"database: {database.description}", flush=True)
            for index, name in enumerate(names):
                if index:
                    flush_database()
                module = importlib.import_module(f"bench.{name}")
                print(f"\n== {name}: {(module.__doc__ or '').strip().splitlines()[0]}", flush=True)
                if module.run(database) != 0:
                    failed.append(name)
    except DatabaseUnavailable as exc:
        print(f"ERROR: no database for the benchmarks: {exc}", file=sys.stderr)
        return 2
    print(f"\n{len(names)} benchmark(s) in {time.perf_counter() - started:.0f} s", end="")
    print(f"; FAILED: {', '.join(failed)}" if failed else "; all answers correct")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
