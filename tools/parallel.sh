#!/usr/bin/env bash
# Run independent jobs at once; print each job's whole output when it ends (never interleaved),
# with its time; exit non-zero when any job failed, naming it.
# Usage: tools/parallel.sh LOGDIR NAME 'COMMAND' [NAME 'COMMAND' ...]
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -uo pipefail

logdir=$1; shift
(( $# >= 2 && $# % 2 == 0 )) || { echo "usage: $0 LOGDIR NAME 'COMMAND' [NAME 'COMMAND' ...]" >&2; exit 2; }
mkdir -p "$logdir"

declare -A pid_of started
names=()
while (( $# )); do
  name=$1 command=$2; shift 2
  names+=("$name")
  started[$name]=$SECONDS
  bash -c "$command" >"$logdir/$name.log" 2>&1 &
  pid_of[$name]=$!
  echo "parallel: started $name (log: $logdir/$name.log)"
done

failed=()
remaining=("${names[@]}")
# Report jobs in the order they finish, so a short job's result is seen while a long one runs.
while (( ${#remaining[@]} )); do
  wait -n "${pid_of[@]}" 2>/dev/null || true
  still=()
  for name in "${remaining[@]}"; do
    if kill -0 "${pid_of[$name]}" 2>/dev/null; then still+=("$name"); continue; fi
    wait "${pid_of[$name]}"; rc=$?
    echo "==================== $name: exit $rc after $((SECONDS - started[$name])) s ===================="
    cat "$logdir/$name.log"
    (( rc == 0 )) || failed+=("$name")
  done
  remaining=("${still[@]}")
done

if (( ${#failed[@]} )); then
  echo "parallel: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "parallel: all ${#names[@]} jobs passed"
