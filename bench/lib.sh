# Shared by the bench scripts: `source bench/lib.sh` from the repository
# root (after setting $work, for `timed`).

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cdp/target}"
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null \
  || { echo "needs GNU time (/usr/bin/time): apt-get install -y time" >&2; exit 1; }

# `release_build`: one release build of the `cdp` binary and every bench
# example (lookup_latency, predict_latency, tag_matrix, load), always with
# the same package set, so dependency features unify the same way and
# DataFusion is compiled once for all scripts. Sets $release to the folder
# holding `cdp` and `examples/`.
release_build() {
  cargo build --release -q --locked -p cdp-cli -p cdp-store -p cdp-ml -p cdp-server --bin cdp --examples
  release="$CARGO_TARGET_DIR/release"
}

# `timed LABEL CMD…`: runs CMD under GNU time, its stdout into
# $work/last.out, and prints LABEL, the wall time and the peak RSS; a
# failing CMD prints its stderr and stops the script.
timed() {
  local label="$1"; shift
  /usr/bin/time -v -o "$work/time.txt" "$@" > "$work/last.out" 2> "$work/last.err" || {
    cat "$work/last.err" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$work/time.txt")
  printf '%-40s %12s  %6s MB peak RSS\n' "$label" "$wall" "$rss"
}
