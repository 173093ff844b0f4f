/**
 * What a worker holds for finished attempts whose outcomes wait to be written (up to
 * WORKER_MAX_UNWRITTEN of them) is their outcome, not the task's payload: a stalled outcome write
 * behind a backlog of large payloads must not hold every one of those payloads.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { submitTasks } from '../../services/core/tasks/submit';
import type { Worker } from '../../services/worker/worker';
import { gatedPool } from '../support/gated-pool';
import { createStack, silentLog, Stack, startWorker, waitFor } from '../support/stack';

let stack: Stack;
let worker: Worker | null = null;

beforeEach(async () => {
  stack = await createStack({ POLL_INTERVAL_MS: 10 });
});
afterEach(async () => {
  await worker?.stop(0);
  worker = null;
  await stack.close();
});

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
function heapUsed(): number {
  gc();
  gc();
  return v8.getHeapStatistics().used_heap_size;
}

it('finished attempts waiting for their outcome write do not keep their payloads', async () => {
  const count = 160;
  const payloadChars = 256 * 1024;
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 };
  for (let i = 0; i < count; i += 20) {
    await submitTasks(
      deps,
      Array.from({ length: 20 }, (_, j) => ({ type: 'noop', priority: 'default' as const, payload: { blob: `${i + j}`.padEnd(payloadChars, 'x') }, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' })),
    );
  }
  const before = heapUsed();
  const gated = gatedPool(stack.pool, 'record-outcomes');
  ({ worker } = startWorker(stack, { pool: gated.pool, cfg: { WORKER_POOL: 8, WORKER_MAX_UNWRITTEN: 400, LEASE_BATCH_SIZE: 32 } }));
  try {
    // Every task ran; their outcomes all wait behind the held writes.
    await waitFor(async () => (await stack.queue.stats()).ready.default === 0 && worker!.processor.running.size === count || null, 30_000, 'every task to run');
    const held = heapUsed() - before;
    // Each payload is about 256 KiB as a string (40 MiB in all); outcomes of noop are a few hundred bytes.
    expect(held).toBeLessThan((count * payloadChars) / 4);
  } finally {
    gated.release();
  }
  await waitFor(async () => worker!.processor.running.size === 0 || null, 30_000, 'the outcomes to be written');
});
