"""What bench/gpu_check.sh carries to the GPU machine, and whether a call fits the 64 MiB it may send.

The device machine's image holds torch, transformers, peft, accelerate, sentence-transformers,
pandas and pyarrow, but not TRL nor the rest of what lorag's tuner and LocalEngine import: those
travel as the wheels in :data:`WHEELS`, pinned to the versions lorag is tested with, downloaded
for that machine (CPython 3.12, x86-64 Linux) into ``bench/gpu-wheels/`` (gitignored) by
``make gpu-wheels``. A call sends every file git tracks, every untracked file git does not
ignore, and the carried paths (:data:`CARRY`); :func:`sent_bytes` adds them up the same way.

    python bench/gpu_carry.py [--download]    sizes, and whether they fit; --download fetches the wheels first
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = "bench/gpu-wheels"
CARRY = [FOLDER]
"""The ``carry`` list of the device tool's ``run`` call for bench/gpu_check.sh."""
LIMIT = 64 * 2**20
WHEELS = [
    "trl==1.16.0",  # the tuner's trainers, and the plain-TRL peers
    "datasets==5.2.0",  # TRL's and the tuner's data
    "dill==0.4.1",  # datasets'
    "multiprocess==0.70.19",  # datasets'
    "pydantic==2.14.4",  # the tuner's recipes; xgrammar's
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "typing-extensions==4.16.0",  # pydantic-core needs 4.14 or later (Sentinel); the image's may be older
    "xgrammar==0.2.8",  # the LocalEngine's structured outputs (imported with it)
    "apache-tvm-ffi==0.1.15.post2",  # xgrammar's
]
WHEELS_BOUND = 12 * 2**20
"""Most the wheels may weigh together (8.8 MiB on 2026-12-07): the room a call must leave them."""
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64"]  # fmt: skip


def download_command(python: str = "python3") -> list[str]:
    """The ``pip download`` line that fills :data:`FOLDER` with :data:`WHEELS` for the GPU machine."""
    command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
    command += ["--implementation", "cp"] + [f"--platform={p}" for p in PLATFORMS]
    return command + ["-d", FOLDER, *WHEELS]


def wheel_problems(folder: Path) -> list[str]:
    """What is wrong with the wheels in ``folder``: a pinned one missing, or one that is not pinned (two versions
    of a package stop the whole install there)."""
    found = {path.name.split("-")[0].lower(): path.name.split("-")[1] for path in folder.glob("*.whl")}
    pinned = {name.replace("-", "_").lower(): ver for name, ver in (w.split("==") for w in WHEELS)}
    problems = [f"missing: {name}=={ver}" for name, ver in pinned.items() if found.get(name) != ver]
    problems += [f"not pinned: {path.name}" for path in sorted(folder.glob("*.whl"))
                 if pinned.get(path.name.split("-")[0].lower()) != path.name.split("-")[1]]  # fmt: skip
    return problems


def sent_bytes(root: Path = ROOT, carry: list[str] = CARRY) -> dict[str, int]:
    """Bytes a call sends: the working tree (tracked, and untracked but not ignored) and the carried paths."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    tree = sum(path.stat().st_size for name in set(listed) if name and (path := root / name).is_file())
    carried = sum(path.stat().st_size for c in carry for path in (root / c).rglob("*") if path.is_file())
    return {"tree": tree, "carried": carried, "total": tree + carried}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--download", action="store_true", help="download the wheels first")
    args = parser.parse_args()
    if args.download:
        subprocess.run(download_command(sys.executable), cwd=ROOT, check=True)
    for problem in wheel_problems(ROOT / FOLDER):
        print(f"{FOLDER}: {problem}")
    sizes = sent_bytes()
    mib = {k: v / 2**20 for k, v in sizes.items()}
    print(f"working tree {mib['tree']:.1f} MiB + carried {mib['carried']:.1f} MiB = {mib['total']:.1f} MiB "
          f"of {LIMIT / 2**20:.0f} MiB")  # fmt: skip
    return 0 if sizes["total"] <= LIMIT and not wheel_problems(ROOT / FOLDER) else 1


if __name__ == "__main__":
    sys.exit(main())
