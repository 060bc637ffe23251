"""Time schedule generation per participant (enrolment budget: <= 50 ms server time in all).

Run: `.venv/bin/python bench/designs_bench.py [--repeats 200]`. Prints the median and p95
milliseconds of `generate_schedule` per preset, with a catalog holding the preset's units
(20 natural batches, 9 + 9 references), as the server calls it at enrolment.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from app.designs import check_design_against, generate_schedule, load_design
from app.designs.generate import resolve_lists
from app.schedule import Catalog, UnitInfo


def catalog_for(preset: str) -> Catalog:
    design = load_design(preset)
    roles = {"main": ("main",), "practice": ("practice",), "catch": ("catch",)}
    units: list[UnitInfo] = []
    seen: set[str] = set()
    for name, listed in resolve_lists(design, None).items():
        for unit_id in listed:
            if unit_id in seen:
                continue
            seen.add(unit_id)
            layer, _, channel = unit_id.rpartition(":")
            units.append(
                UnitInfo(
                    id=unit_id,
                    layer=layer,
                    channel=int(channel),
                    roles=roles.get(name, ("main",)),
                    natural_batches=tuple(range(20)),
                    n_natural_references=9,
                    n_synthetic_references=9,
                )
            )
    return Catalog(stimulus_set="bench", units=tuple(units))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    out = sys.stdout
    for preset in ("demo", "paper-exp1", "paper-exp2", "imi"):
        design = load_design(preset)
        catalog = catalog_for(preset)
        check_design_against(design, catalog)
        arm = design.arms[0] if design.arms else None
        times = []
        n_trials = 0
        for p in range(1, args.repeats + 1):
            start = time.perf_counter()
            schedule = generate_schedule(design, catalog, p, arm=arm)
            times.append((time.perf_counter() - start) * 1e3)
            n_trials = len(schedule.trials)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        out.write(
            f"{preset:<11} {n_trials:>4} trials  median {statistics.median(times):6.2f} ms"
            f"  p95 {p95:6.2f} ms  ({args.repeats} participants)\n"
        )


if __name__ == "__main__":
    main()
