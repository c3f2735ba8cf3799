"""Sum ONEDNN_VERBOSE exec lines (after the marker) by primitive kind and implementation."""
import sys, collections
lines = open(sys.argv[1]).read().split("VERBOSE START", 1)[-1].splitlines()
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
t = collections.Counter(); n = collections.Counter()
for l in lines:
    if l.startswith("onednn_verbose,") and ",exec," in l:
        f = l.split(",")
        key = (f[3], f[4]) if f[1] == "exec" else (f[4], f[5])
        t[key] += float(f[-1]) / runs; n[key] += 1
print(f"{sum(t.values()):.3f} ms in oneDNN primitives per run")
for k, ms in t.most_common(12):
    print(f"  {ms:8.3f} ms  {n[k] // runs:4d} x  {k[0]} [{k[1]}]")
