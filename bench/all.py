"""Every benchmark in turn (`make bench`, or `make bench QUICK=1` for the smoke run); the
reports are concatenated into bench/results/all-<time>.md.

    python -m bench.all [--quick] [--profile] [-- extra options for every benchmark]
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.harness import ROOT, log

BENCHMARKS = ["webhooks", "checkout", "catalogue", "growth", "memory", "scaleout"]


def main() -> None:
    options = [arg for arg in sys.argv[1:] if arg != "--"]
    reports, failed = [], []
    for name in BENCHMARKS:
        log(f"bench.{name} {' '.join(options)}")
        result = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *options],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            failed.append(name)
        reports.append(result.stdout)
    out = ROOT / "bench" / "results" / f"all-{time.strftime('%Y%m%dT%H%M%S')}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n\n".join(reports))
    print(f"reports: {out}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
