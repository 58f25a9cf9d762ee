"""Time ``nas study`` on ``elasticvit`` with the imported Pixel 4 table (target: 5000 archs in
under 60 s, every section, figures and report included).

    python benchmarks/study_speed.py --profile PIXEL4.json [--n 5000] [--out runs/study-bench]

where PIXEL4.json comes from ``nas device import-table pixel4
../shared/data/pixel4_elasticvit/pixel4_lut.json --out PIXEL4.json``. The study runs as a fresh
``nas`` process (imports included) into ``--out`` with its intermediate parts removed first, so
nothing is reused. It prints the wall and CPU seconds, the ratio of wall time to the target, the
load average (on a shared machine wall time grows with it; CPU time much less), the study's own
seconds per step, and the headline findings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile", required=True, help="Pixel 4 profile (nas device import-table)"
    )
    parser.add_argument("--n", type=int, default=5000, help="archs to sample (default 5000)")
    parser.add_argument("--out", default="runs/study-bench", help="study folder")
    args = parser.parse_args()

    out = Path(args.out)
    shutil.rmtree(out / "parts", ignore_errors=True)
    nas = Path(sys.executable).with_name("nas")
    command = [str(nas), "study", "--space", "elasticvit", "--device", args.profile]
    command += ["--n", str(args.n), "--out", str(out), "--no-progress"]
    print("$", " ".join(command), flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    study = json.loads((out / "study.json").read_text())

    print(f"\narchs studied:       {study['sample']['archs']:,}")
    print(
        f"wall time:           {wall:.1f} s  ({wall / TARGET_S:.2f}x the {TARGET_S:.0f} s target)"
    )
    print(f"CPU time:            {cpu:.1f} s  ({cpu / TARGET_S:.2f}x the target)")
    print(
        f"load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"on {os.cpu_count()} CPUs"
    )
    print("study's seconds per step:")
    for step, seconds in study["seconds"].items():
        print(f"  {step:24s} {seconds:7.2f}")
    print("findings:")
    for line in study["summary"]["lines"]:
        print(f"  - {line}")


if __name__ == "__main__":
    main()
