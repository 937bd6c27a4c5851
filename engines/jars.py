"""Jars of the engines (Kafka, Spark's Kafka connector, Delta Lake, Hadoop), fetched from Maven
Central by Maven and cached outside the checkout.

Each engine has a pom in `engines/poms/` that pins its versions. `python -m engines.jars` copies
each engine's runtime jars into `JARS_DIR/<engine>-<pom digest>/` (default
`~/.cache/tweetlake/jars`), so a changed pom gets a fresh folder and a clean clone reuses the
cache. Maven's own repository (`~/.m2`) makes a second fetch cheap.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

POMS = Path(__file__).resolve().parent / "poms"
ENGINES = ("kafka", "spark-kafka", "hadoop", "delta")
DEFAULT_JARS_DIR = Path.home() / ".cache" / "tweetlake" / "jars"
_DONE = ".complete"


class JarsMissing(RuntimeError):
    """An engine's jars are not in the cache: `make jars` (or `python -m engines.jars`) fetches them."""


def jars_dir() -> Path:
    """JARS_DIR from the environment: read here, before any setting exists (`make jars` runs
    first), and so that engines import nothing of the app."""
    return Path(os.environ.get("JARS_DIR") or DEFAULT_JARS_DIR).expanduser()


def pom(engine: str) -> Path:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return POMS / f"{engine}.xml"


def engine_dir(engine: str) -> Path:
    digest = hashlib.sha256(pom(engine).read_bytes()).hexdigest()[:12]
    return jars_dir() / f"{engine}-{digest}"


def jar_paths(engine: str) -> list[Path]:
    """The engine's jars, or JarsMissing naming the command that fetches them."""
    folder = engine_dir(engine)
    if not (folder / _DONE).exists():
        raise JarsMissing(f"the {engine} jars are not in {folder}: run `make jars` "
                          f"(or `python -m engines.jars {engine}`) first; it needs Maven and Maven Central")
    return sorted(folder.glob("*.jar"))


def classpath(engine: str) -> str:
    return os.pathsep.join(str(path) for path in jar_paths(engine))


def fetch(engine: str, quiet: bool = True) -> Path:
    """Copy the engine's runtime jars into its cache folder (no-op when already complete)."""
    folder = engine_dir(engine)
    if (folder / _DONE).exists():
        return folder
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsMissing("Maven (`mvn`) is not installed: it fetches the Kafka, Spark-Kafka, Delta and Hadoop jars")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [mvn, "-B", "-Dstyle.color=never", *(["-q"] if quiet else []), "-f", str(pom(engine)),
               "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
    print(f"fetching {engine} jars with Maven into {folder} ...", file=sys.stderr, flush=True)
    result = subprocess.run(command, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise JarsMissing(f"Maven failed ({result.returncode}) fetching the {engine} jars: {' '.join(command)}")
    (partial / _DONE).write_text("")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engines.jars",
        description="Fetch the pinned engine jars (Kafka, Spark's Kafka connector, Delta Lake, Hadoop) from Maven "
                    f"Central into JARS_DIR (default {DEFAULT_JARS_DIR}). Cached: a second run does nothing.",
    )
    parser.add_argument("engines", nargs="*", choices=[[], *ENGINES], metavar="ENGINE",
                        help=f"one or more of {', '.join(ENGINES)} (default: all)")
    parser.add_argument("--print-classpath", metavar="ENGINE", choices=ENGINES,
                        help="print ENGINE's classpath (fetching it if needed) and exit")
    args = parser.parse_args(argv)
    try:
        if args.print_classpath:
            fetch(args.print_classpath)
            print(classpath(args.print_classpath))
            return 0
        for engine in args.engines or ENGINES:
            folder = fetch(engine)
            print(f"{engine}: {len(list(folder.glob('*.jar')))} jars in {folder}", file=sys.stderr)
    except JarsMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
