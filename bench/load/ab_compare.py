"""Interleaved A/B of two versions of the app: 2 workers, N = 200, zero think time.

"base" runs the code of a git worktree (`git worktree add /tmp/wt-base <commit>`; the server
gets PYTHONPATH=/tmp/wt-base, so its `app` package is imported from there), "fast" runs this
checkout. Each repetition starts a fresh server per version, runs bench.load.loadgen (40 s:
20 s warm-up, then 30 s measured), verifies in Postgres and records the
CPU milliseconds per acknowledged answer of the server, Postgres and the generator.

Run from the repository root (after bench.load.setup_bench):
    python bench/load/ab_compare.py REPEATS [PARTICIPANTS [THINK_MS]]
"""

import json
import os
import statistics
import subprocess
import sys
import time

import psutil

os.chdir(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ENV = {
    **os.environ,
    "DATABASE_URL": "postgresql://postgres@127.0.0.1/psychvis_bench",
    "PSYCHVIS_STIMULI_DIR": "/tmp/psychvis-bench/stimuli",
    "PSYCHVIS_ENV": "test",
    "PSYCHVIS_SECRET_KEY": "bench-" + "x" * 40,
    "PSYCHVIS_LOG_LEVEL": "WARNING",
}


def cpu(procs):
    t = 0.0
    for p in procs:
        try:
            c = p.cpu_times()
            t += c.user + c.system
        except psutil.Error:
            pass
    return t


PARTICIPANTS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
THINK_MS = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
res = {"base": [], "fast": []}
for rep in range(int(sys.argv[1])):
    for variant in ("base", "fast"):
        env = dict(ENV)
        if variant == "base":
            env["PYTHONPATH"] = "/tmp/wt-base"
        port = 8150 + rep * 2 + (variant == "fast")
        srv = subprocess.Popen(
            [".venv/bin/psychvis", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(120):
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except Exception:
                time.sleep(0.5)
        procs = [psutil.Process(srv.pid), *psutil.Process(srv.pid).children(recursive=True)]
        pg = [
            p
            for p in psutil.process_iter(["name"])
            if (p.info["name"] or "").startswith("postgres")
        ]
        s0, p0, c0 = cpu(procs), cpu(pg), os.times()
        out = f"bench/out/ab_{variant}_{rep}.json"
        subprocess.run(
            [
                ".venv/bin/python",
                "-m",
                "bench.load.loadgen",
                "--url",
                f"http://127.0.0.1:{port}",
                "--link",
                "bench-lossless",
                "--participants",
                str(PARTICIPANTS),
                "--think-ms",
                str(THINK_MS),
                "--duration",
                "30",
                "--warmup",
                "20",
                "--ramp",
                "10",
                "--verify-dsn",
                ENV["DATABASE_URL"],
                "--out",
                out,
            ],
            env=ENV,
            capture_output=True,
        )
        s1, c1 = cpu(procs), os.times()
        pg2 = [
            p
            for p in psutil.process_iter(["name"])
            if (p.info["name"] or "").startswith("postgres")
        ]
        p1 = cpu(pg2)
        os.killpg(srv.pid, 15)
        srv.wait()
        d = json.load(open(out))
        n = d["acked_answers"]
        row = {
            "per_s": d["endpoints"]["answer"]["per_s"],
            "p99": d["endpoints"]["answer"]["p99_ms"],
            "app_p50": d["endpoints"]["answer"]["app_p50_ms"],
            "server_cpu_ms": round(1e3 * (s1 - s0) / n, 2),
            "pg_cpu_ms": round(1e3 * (p1 - p0) / n, 2),
            "gen_cpu_ms": round(
                1e3
                * (
                    (c1.children_user + c1.children_system)
                    - (c0.children_user + c0.children_system)
                )
                / n,
                2,
            ),
            "ok": d["verify"]["ok"],
            "errors": d["errors"],
            "acked": n,
            "sessions": d["sessions_completed"],
        }
        res[variant].append(row)
        print(variant, rep, row, flush=True)
for v, rows in res.items():
    print(
        v,
        "median answers/s",
        statistics.median(r["per_s"] for r in rows),
        "server cpu ms",
        statistics.median(r["server_cpu_ms"] for r in rows),
        "pg",
        statistics.median(r["pg_cpu_ms"] for r in rows),
        "gen",
        statistics.median(r["gen_cpu_ms"] for r in rows),
    )
json.dump(res, open(f"bench/out/ab_summary_{PARTICIPANTS}_{THINK_MS:g}.json", "w"), indent=1)
