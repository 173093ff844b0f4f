/**
 * A client population for fault tests: posts a planned mix of tasks over HTTP with idempotency
 * keys, and retries a request (same key, same body) on connection errors and 503s, as a careful
 * client would. A task counts as accepted once any attempt got 201 or 200.
 */
import { PRIORITIES } from '../../services/core/tasks/priority';
import { AUTH_HEADER } from './auth';
import { HttpPoster } from '../../services/load/client';

export interface PlannedTask {
  key: string;
  body: Record<string, unknown>;
  /** Posted as this tenant (the driver's admin key names it); absent: the key's own. */
  tenant?: string;
  expect: { status: 'succeeded' | 'dead'; attempts: number };
}

export function mixedPlan(n: number, label: string): PlannedTask[] {
  return Array.from({ length: n }, (_, i) => {
    const priority = PRIORITIES[i % 4];
    const key = `${label.replace(/[^A-Za-z0-9]+/g, "-")}-${i}`;
    const r = i % 10;
    if (r < 5) return { key, body: { type: 'noop', priority }, expect: { status: 'succeeded', attempts: 1 } };
    if (r < 7) return { key, body: { type: 'flaky', priority, payload: { fail_attempts: 1 } }, expect: { status: 'succeeded', attempts: 2 } };
    if (r < 8) return { key, body: { type: 'always_fail', priority, max_retries: 2 }, expect: { status: 'dead', attempts: 3 } };
    return { key, body: { type: 'sleeper', priority, payload: { sleep_ms: 20 + (i % 7) * 30 } }, expect: { status: 'succeeded', attempts: 1 } };
  });
}

export interface DriveResult {
  accepted: Map<string, { id: string; plan: PlannedTask }>;
  retriedRequests: number;
  gaveUp: number;
}

export async function drive(
  /** The api's base URL (a restarted api comes back on the same port). */
  url: string,
  plan: PlannedTask[],
  opts: { clients: number; onProgress?: (sent: number) => void; giveUpAfterMs?: number },
): Promise<DriveResult> {
  const accepted = new Map<string, { id: string; plan: PlannedTask }>();
  let next = 0;
  let retriedRequests = 0;
  let gaveUp = 0;
  const giveUpAfterMs = opts.giveUpAfterMs ?? 60_000;
  // node:http on keep-alive connections: fetch costs the test process several times the CPU per
  // request, on the cores the services under test share (docs/benchmarks.md).
  const poster = new HttpPoster(url, opts.clients, 10_000);
  async function post(p: PlannedTask): Promise<void> {
    const started = Date.now();
    for (;;) {
      try {
        const res = await poster.post('/tasks', JSON.stringify(p.body), { ...AUTH_HEADER, 'idempotency-key': p.key, ...(p.tenant ? { tenant: p.tenant } : {}) });
        const body = JSON.parse(res.body) as { id?: string; detail?: string };
        if (res.status === 201 || res.status === 200) {
          accepted.set(p.key, { id: body.id!, plan: p });
          return;
        }
        if (res.status !== 503) throw new Error(`unexpected ${res.status}: ${body.detail}`);
      } catch (err) {
        if ((err as Error).message.startsWith('unexpected')) throw err;
      }
      if (Date.now() - started > giveUpAfterMs) {
        gaveUp++;
        return;
      }
      retriedRequests++;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    await Promise.all(
      Array.from({ length: opts.clients }, async () => {
        while (next < plan.length) {
          const i = next++;
          await post(plan[i]!);
          opts.onProgress?.(i + 1);
        }
      }),
    );
  } finally {
    poster.close();
  }
  return { accepted, retriedRequests, gaveUp };
}
