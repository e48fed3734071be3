# Shared by the bench scripts: `source bench/lib.sh` after setting $work.

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

command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time): apt-get install -y time" >&2; exit 1; }
