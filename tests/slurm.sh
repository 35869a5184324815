#!/usr/bin/env bash
# A real cluster for `seglrp cohort --parts`: a single-node Slurm from Debian's packages
# (munge, slurmctld, slurmd) with a slurm.conf generated here on localhost, started and stopped
# by this script (nothing is left running). The demo cohort runs as a job array of 4 parts
# sharing one OUT; merged, it equals a single-process run (same rows, shares within 1e-6).
# Then one array task is killed midway and the array re-submitted: finished patients are
# skipped and the merged result is still equal. Skipped, saying why, only where the packages
# cannot be installed or the daemons cannot run (not root).
#   SEGLRP_BIN=target/release/seglrp bash tests/slurm.sh
source "$(dirname "$0")/../scripts/lib.sh"
BIN=${SEGLRP_BIN:?set SEGLRP_BIN to the native seglrp binary}
PATIENTS=${SEGLRP_SLURM_PATIENTS:-1-8}

skip() { echo "skipped - Slurm job array test: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "slurmd must run as root, and this user is not root"
ensure_apt munge slurmctld slurmd slurm-client || skip "Debian's munge/slurmctld/slurmd/slurm-client could not be installed"

W=$(mktemp -d /tmp/seglrp-slurm-XXXXXX)
pids=()
cleanup() {
  [ -f "$W/slurmctld.pid" ] && timeout 10 scancel --quiet --full --signal=KILL --user=root 2>/dev/null || true
  for f in "$W"/slurmd.pid "$W"/slurmctld.pid "$W"/munged.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  sleep 1
  for f in "$W"/slurmd.pid "$W"/slurmctld.pid "$W"/munged.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: Slurm job array test: $*" >&2; for f in "$W"/*.log "$W"/log-*.txt; do [ -f "$f" ] && { echo "== $f" >&2; tail -20 "$f" >&2; }; done; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# munge with its own key and socket (not the system's), then the controller and the node.
dd if=/dev/urandom of="$W/munge.key" bs=1024 count=1 status=none
chmod 400 "$W/munge.key"
munged --force -S "$W/munge.sock" --key-file="$W/munge.key" --pid-file="$W/munged.pid" \
  --log-file="$W/munged.log" --seed-file="$W/munged.seed" || fail "munged did not start"
NODE=$(hostname -s)
mkdir -p "$W/state" "$W/spool"
cat > "$W/slurm.conf" <<EOF
ClusterName=seglrp-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$W/munge.sock
CredType=cred/munge
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$W/slurm.conf"
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N "$NODE" || fail "slurmd did not start"
for _ in $(seq 60); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
  sleep 0.5
done
[ "$(sinfo -h -o %T)" = idle ] || fail "the node did not come up: $(sinfo 2>&1)"
step "single-node Slurm up ($(sinfo -h -o '%P %D node(s) %c CPUs %T'))"

"$BIN" phantoms --patients "$PATIENTS" --out "$W/in" 2>/dev/null
export RAYON_NUM_THREADS=1
"$BIN" cohort "$W/in" --out "$W/single" --jobs 1 2>"$W/single.log" || fail "single-process run"

# The array script, as a user would write it (README "Cohorts on a cluster").
cat > "$W/part.sh" <<EOF
#!/bin/bash
exec "$BIN" cohort "$W/in" --out "\$OUT" --parts 4 --part "\$SLURM_ARRAY_TASK_ID" --jobs 1
EOF
chmod +x "$W/part.sh"

# Submits the array and waits for it (polling; `sbatch --wait` checks only every few seconds);
# every task must complete with exit code 0.
run_array() {
  local job
  job=$(sbatch --parsable --array=0-3 --cpus-per-task=1 -o "$W/log-%a.txt" "$W/part.sh") || fail "sbatch"
  for _ in $(seq 3000); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.2; done
  local states
  states=$(scontrol -o show job "$job" | grep -o 'JobState=[A-Z]* .*ExitCode=[0-9:]*' | awk '{print $1, $NF}' | sort | uniq -c)
  [ "$(scontrol -o show job "$job" | grep -c 'JobState=COMPLETED .*ExitCode=0:0')" = 4 ] || fail "array $job: $states"
}

same_csv() {
  python3 - "$W/single/cohort.csv" "$1/cohort.csv" <<'PY' || fail "the merged table differs from the single-process run"
import csv, sys
a, b = (list(csv.reader(open(p))) for p in sys.argv[1:])
assert a[0] == b[0], f"columns {a[0]} vs {b[0]}"
assert len(a) == len(b), f"{len(a) - 1} rows vs {len(b) - 1}"
worst = 0.0
for ra, rb in zip(a[1:], b[1:]):
    for col, x, y in zip(a[0], ra, rb):
        if "share" in col and x and y:
            worst = max(worst, abs(float(x) - float(y)))
        else:
            assert x == y, f"{ra[0]} {ra[1]} {col}: {x!r} vs {y!r}"
assert worst <= 1e-6, f"shares differ by {worst}"
print(f"  {len(a) - 1} rows, shares within {worst:.1e}")
PY
}

OUT="$W/shared" run_array
"$BIN" cohort merge "$W/shared" 2>"$W/merge.log" || fail "merge: $(cat "$W/merge.log")"
same_csv "$W/shared"
step "job array of 4 parts merged = single-process run"

# Again into a fresh OUT; part 3 is killed while it analyses its first patient.
export OUT="$W/again"
job=$(sbatch --parsable --array=0-3 --cpus-per-task=1 -o "$W/log-%a.txt" "$W/part.sh") || fail "sbatch"
status="$OUT/parts/part-3-of-4.json"
for _ in $(seq 1200); do
  [ -f "$status" ] && python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["current"] and not s["done"] else 1)' "$status" 2>/dev/null && break
  sleep 0.1
done
scancel --signal=KILL "${job}_3" || fail "scancel"
for _ in $(seq 600); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.2; done
[ -z "$(squeue -h -j "$job")" ] || fail "the array did not end"
if "$BIN" cohort merge "$OUT" 2>"$W/merge.log"; then fail "merge succeeded with a killed part"; fi
grep -q "have no result yet" "$W/merge.log" || fail "merge does not list the missing patients: $(cat "$W/merge.log")"
"$BIN" cohort status "$OUT" > "$W/status.txt" || fail "status"
grep -q "part 3 of 4 .*: running" "$W/status.txt" || fail "status does not show the killed part: $(cat "$W/status.txt")"
before=$(cd "$OUT/patients" && stat -c '%n %Y' ./*.json | sort)
[ -n "$before" ] || fail "no patient finished before the kill"
sleep 1.1 # a redone patient would get a later mtime
run_array
while read -r name mtime; do
  [ "$(stat -c %Y "$OUT/patients/$name")" = "$mtime" ] || fail "$name was redone after the re-submission"
done <<< "$before"
grep -q "already done with these settings: skipped" "$W"/log-0.txt || fail "part 0 did not skip its finished patients: $(cat "$W/log-0.txt")"
"$BIN" cohort merge "$OUT" 2>"$W/merge.log" || fail "merge after the re-submission: $(cat "$W/merge.log")"
same_csv "$OUT"
step "killed part re-submitted: $(wc -l <<< "$before") finished patient(s) skipped, merged = single-process run"
echo "ok - Slurm job array: 4 parts merged = one process; a killed part resumed"
