"""Ratios of itexlab INT8 to ITEX INT8, OpenVINO INT8 and TF FP32 throughput, each from one round
of rounds.sh, as a Markdown table: median and range over rounds, under the CPU and ISA cap the
rounds ran with (their header lines). Where a round ran a system in several processes
(rounds.sh with PROCESSES=N), its best process counts.
Usage: python summarize.py LOG_FOLDER [ROUND_TO_SKIP ...]"""
import glob, os, re, statistics, sys
rounds, machines = {}, set()
for path in sorted(glob.glob(os.path.join(sys.argv[1], "peers_run*.log"))):
    run = int(re.search(r"run(\d+)", path).group(1))
    for line in open(path):
        if line.startswith("== cpu "):
            machines.add(line[len("== cpu "):].rsplit(",", 1)[0].strip())
            continue
        m = re.match(r"peer=(\w+) model=(\w+) mode=(\w+) bs=(\d+) latency_ms=([\d.]+) ips=([\d.]+)", line)
        if m:
            peer, mdl, mode, bs, lat, ips = m.groups()
            v = rounds.setdefault((run, mdl, int(bs)), {})
            v[f"{peer}-{mode}"] = max(float(ips), v.get(f"{peer}-{mode}", 0.0))  # the best process
skip = {int(x) for x in sys.argv[2:]}
rows = {}
for (run, mdl, bs), v in sorted(rounds.items()):
    if run in skip:
        continue
    if "itexlab-int8" not in v:
        continue
    rows.setdefault((mdl, bs), []).append((run, v))
for machine in sorted(machines):
    print(f"CPU: {machine}")
print("| model | batch | rounds | itexlab INT8 img/s (median) | vs ITEX INT8: median (range) | vs OpenVINO INT8: median (range) | vs TF FP32 |")
print("|---|---|---|---|---|---|---|")
def ratio(rs, peer, spread=True):
    """itexlab over `peer`: median (and range) over the rounds where `peer` printed a figure; a dash
    where none did (OpenVINO compiles nothing under ONEDNN_MAX_CPU_ISA=AVX2)."""
    r = [v["itexlab-int8"] / v[peer] for _, v in rs if peer in v]
    if not r:
        return "—"
    return f"{statistics.median(r):.2f}x" + (f" ({min(r):.2f}-{max(r):.2f})" if spread else "")
for (mdl, bs), rs in sorted(rows.items()):
    print(f"| {mdl} | {bs} | {len(rs)} ({','.join(str(r) for r, _ in rs)}) | {statistics.median(v['itexlab-int8'] for _, v in rs):.1f} | {ratio(rs, 'itex-int8')} | {ratio(rs, 'openvino-int8')} | {ratio(rs, 'tf-fp32', spread=False)} |")
