#!/usr/bin/env bash
# `make test`: the Terraform round trip (tests/deploy/test_round_trip.py, over 10 minutes, mostly
# waiting on the provider's pollers) in a second pytest beside the rest of the suite. Its output
# goes to a file, printed when the rest is done; the exit status is the rest's, else the round
# trip's. Usage: tests/run_all.sh PYTHON [PYTEST ARGS...] (both runs get the arguments).
set -u
python=$1
shift
log=$(mktemp "${TMPDIR:-/tmp}/mnp-round-trip.XXXXXX")
# Its own process group (setsid), so that one kill reaches its terraform and emulator processes;
# a background job of a script ignores Ctrl-C.
setsid "$python" -m pytest --round-trip=only "$@" >"$log" 2>&1 </dev/null &
trip=$!
stop() {
  kill -TERM -- "-$trip" 2>/dev/null
  wait "$trip" 2>/dev/null
  rm -f "$log"
  exit 130
}
trap stop INT TERM HUP
"$python" -m pytest --round-trip=skip "$@"
rest=$?
echo "=== the Terraform round trip (tests/deploy/test_round_trip.py), run beside the rest ==="
wait "$trip"
trip_code=$?
trap - INT TERM HUP
cat "$log"
rm -f "$log"
echo "=== make test: the rest exited $rest, the round trip $trip_code (pytest's codes) ==="
# pytest's 5: no test selected on that side (PYTEST_ARGS=tests/stacks selects no round trip);
# an error only when neither side has one.
if [ "$rest" -eq 5 ] && [ "$trip_code" -eq 5 ]; then exit 5; fi
[ "$rest" -eq 5 ] && rest=0
[ "$trip_code" -eq 5 ] && trip_code=0
[ "$rest" -ne 0 ] && exit "$rest"
exit "$trip_code"
