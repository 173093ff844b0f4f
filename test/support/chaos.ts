/** What the chaos tests share (test/integration/*-chaos.test.ts). */
import type { TaskContext } from '../../services/worker/handlers';
import type { Logger } from '../../services/core/observability/logger';
import type { Worker } from '../../services/worker/worker';
import { startWorker, Stack } from './stack';

/** The seed of a chaos run: CHAOS_SEED, or one taken from the clock (printed in the test's name). */
export const chaosSeed = (): number => Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

/**
 * `count` in-process workers running `chaos` tasks: payload `{ fail, sleep_ms }`, each attempt
 * takes sleep_ms and the first `fail` attempts fail. Returns `{ attempt }` on success.
 */
export function chaosWorkers(stack: Stack, count: number, log?: Logger): Worker[] {
  return Array.from({ length: count }, () =>
    startWorker(stack, {
      log,
      handlers: {
        chaos: async (ctx: TaskContext) => {
          const p = ctx.payload as { fail: number; sleep_ms: number };
          if (p.sleep_ms > 0) await new Promise((r) => setTimeout(r, p.sleep_ms));
          if (ctx.attempt <= p.fail) throw new Error(`planned failure ${ctx.attempt} of ${p.fail}`);
          return { attempt: ctx.attempt };
        },
      },
    }).worker,
  );
}
