#!/bin/bash
# One round: ITEX, OpenVINO and itexlab one after another on each model (never two at once), each
# printing `peer=... latency_ms=... ips=...` lines. Run from the project root:
#   PEERS=/dir/of/peer/virtualenvs tools/peers/rounds.sh > out/peers_run1.log
# PEERS is what ../shared/peers/setup.sh made; PEER_SCRIPTS the folder of its scripts.
# ONEDNN_MAX_CPU_ISA, if set, caps all three systems' oneDNN kernels; the header records it.
# PROCESSES=N runs each system's script N times in a row; summarize.py keeps each one's best process
# (this host sometimes slows a whole process 1.7-2.9x, whichever system it runs).
set -u
S=${PEER_SCRIPTS:-$(dirname "$0")/../../../shared/peers}
echo "== cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)," \
  "family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  "model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-native}, $(date -Iseconds)"
# in_processes PATTERN COMMAND...: COMMAND in PROCESSES fresh processes, keeping the lines PATTERN matches
in_processes() {
  local pattern=$1; shift
  for _ in $(seq "${PROCESSES:-1}"); do "$@" 2>&1 | grep "$pattern"; done
}
for m in ${MODELS:-resnet50 mobilenet_v2 inception_v3}; do
  echo "== $m $(date +%T)"
  in_processes "^peer=" "$PEERS"/itex/bin/python "$S"/itex_bench.py "$m" 1,16
  in_processes "^peer=" "$PEERS"/lite/bin/python "$S"/ov_bench.py "$m" 1,16
  [ -z "${ONEDNN_MAX_CPU_ISA:-}" ] && "$PEERS"/lite/bin/python "$(dirname "$0")"/ov_agree.py "$m" 2>&1 | grep "^peer="
  in_processes "^peer=\|partitions" .venv/bin/python "$S"/itexlab_bench.py "$m" 1,16
done
echo "== done $(date +%T)"
