/**
 * Jest's own order, except on a first run: without its timing cache (a fresh clone, as in CI) jest
 * orders files by size, and the fuzz test (a small file, two minutes beside another) started near
 * the end, leaving one worker to finish it alone. The files below, the slowest in the full suite,
 * go first then.
 */
const Sequencer = require('@jest/test-sequencer').default;

// The fault suite and the fuzz test are the two heaviest: side by side they starved the API of CPU
// for seconds (requests waited 9 s, and a timed-out dependency call answered 503). So the fuzz comes after
// the files the other worker runs while the fault suite takes the first.
const SLOWEST_FIRST = [
  'test/faults/faults.test.ts',
  'test/cluster/cluster-faults.test.ts',
  'test/e2e/console.test.ts',
  'test/observability/prometheus-live.test.ts',
  'test/cluster/delayed-tasks.cluster.test.ts',
  'test/fuzz/api-fuzz.test.ts',
  'test/cluster/worker.cluster.test.ts',
  'test/cluster/workflows.cluster.test.ts',
];

class SlowestFirstSequencer extends Sequencer {
  sort(tests) {
    const sorted = super.sort(tests);
    if (sorted.some((t) => t.duration != null)) return sorted;
    const rank = (t) => {
      const i = SLOWEST_FIRST.findIndex((p) => t.path.endsWith(p));
      return i < 0 ? SLOWEST_FIRST.length : i;
    };
    // Array.prototype.sort is stable: the other files keep jest's order.
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = SlowestFirstSequencer;
