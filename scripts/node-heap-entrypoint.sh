#!/bin/sh
# Entrypoint of the images (after tini): runs the command, and when it is node, gives V8 a heap
# limit of NODE_HEAP_PERCENT (default 75) % of the container's memory limit, read from the cgroup
# (v2 memory.max, else v1 memory/memory.limit_in_bytes under NODE_HEAP_CGROUP_ROOT, default
# /sys/fs/cgroup). V8 otherwise sizes its heap from the host's memory, so a process grows past its
# container's limit and is OOM-killed instead of collecting garbage or failing with a heap error;
# the remaining quarter is for what lives outside the heap (buffers, code, stacks).
# Left as it is: a limit already set (NODE_OPTIONS or the node flags), no limit found, and
# commands other than node. exec keeps node the process tini signals.
# Tested by test/k8s/node-heap-entrypoint.test.ts and test/k8s/image-install.test.ts.

cgroup_root=${NODE_HEAP_CGROUP_ROOT:-/sys/fs/cgroup}
percent=${NODE_HEAP_PERCENT:-75}

# Prints the memory limit in bytes; prints nothing when there is none.
memory_limit() {
  for file in "$cgroup_root/memory.max" "$cgroup_root/memory/memory.limit_in_bytes"; do
    [ -r "$file" ] || continue
    value=
    read -r value <"$file" || [ -n "$value" ] || return 0
    case $value in
      '' | *[!0-9]*) return 0 ;; # v2 says "max" when unlimited
    esac
    # v1 says "unlimited" with a number near 2^63; 16 digits or more (over 1 PB) is that.
    if [ ${#value} -lt 16 ]; then echo "$value"; fi
    return 0
  done
}

case ${1:-} in
  node | */node) ;;
  *) exec "$@" ;;
esac

case " ${NODE_OPTIONS:-} " in
  *--max-old-space-size* | *--max_old_space_size*) exec "$@" ;;
esac
skip=1
for arg in "$@"; do
  # node's own flags come before the script; an app's arguments after it are not node's.
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case $arg in
    --max-old-space-size* | --max_old_space_size*) exec "$@" ;;
    -*) ;;
    *) break ;;
  esac
done

limit=$(memory_limit)
[ -n "$limit" ] || exec "$@"
case $percent in
  '' | *[!0-9]*) percent=75 ;;
esac
if [ "$percent" -lt 1 ] || [ "$percent" -gt 100 ]; then percent=75; fi
heap_mib=$((limit / 1048576 * percent / 100))
[ "$heap_mib" -gt 0 ] || exec "$@"

node=$1
shift
exec "$node" --max-old-space-size="$heap_mib" "$@"
