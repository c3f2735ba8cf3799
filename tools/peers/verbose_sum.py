"""Sum ONEDNN_VERBOSE exec lines (between the markers) by primitive kind and implementation.
Usage: python verbose_sum.py LOG [RUNS]. With RUNS, the exec lines are cut into that many equal
runs and each figure is the median over runs: one run slowed by the host would lift a mean."""
import collections, statistics, sys
lines = open(sys.argv[1]).read().split("VERBOSE START", 1)[-1].split("VERBOSE END", 1)[0].splitlines()
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
execs, partition_ms = [], 0.0
for l in lines:
    f = l.split(",")
    if f[0] != "onednn_verbose" or "exec" not in f[:4]:
        continue
    at = f.index("exec")  # onednn_verbose[,v1][,primitive|,graph],exec,cpu,KIND,IMPL,...,MS
    if f[at - 1] == "graph":  # a oneDNN Graph partition: it runs primitives that have lines of their own
        partition_ms += float(f[-1]) / runs
    else:
        execs.append(((f[at + 2], f[at + 3]), float(f[-1])))
if len(execs) % runs:
    sys.exit(f"{len(execs)} exec lines do not split into {runs} equal runs")
per_run = len(execs) // runs
first_run = [key for key, _ in execs[:per_run]]
if any([key for key, _ in execs[r * per_run:(r + 1) * per_run]] != first_run for r in range(1, runs)):
    sys.exit(f"the exec lines cut into {runs} runs do not repeat the same primitives: is {runs} the number of runs?")
totals = [collections.Counter() for _ in range(runs)]
for i, (key, ms) in enumerate(execs):
    totals[i // per_run][key] += ms
keys = collections.Counter(first_run)
median = {k: statistics.median(t[k] for t in totals) for k in keys}
print(f"{statistics.median(sum(t.values()) for t in totals):.3f} ms in oneDNN primitives per run"
      f" (median of {runs})")
if partition_ms:
    print(f"{partition_ms:.3f} ms per run (mean) in the oneDNN Graph partitions that run them")
for k, ms in sorted(median.items(), key=lambda kv: -kv[1])[:12]:
    print(f"  {ms:8.3f} ms  {keys[k]:4d} x  {k[0]} [{k[1]}]")
