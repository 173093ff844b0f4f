/**
 * The sender's accounting and scheduling, against a tiny local HTTP server that answers what each
 * test needs (the real API is exercised in load.e2e.test.ts): every answer and error is counted,
 * none is fatal; the open loop keeps its schedule; -duration and -w bound the run.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSending } from '../../services/load/client';
import { parseFlags } from '../../services/load/flags';

interface Server {
  url: string;
  requests: { path: string; body: unknown; key: string | undefined; at: number }[];
  maxInFlight: number;
  close(): Promise<void>;
}

async function server(answer: (i: number, body: unknown) => { status: number; body: unknown; delayMs?: number }): Promise<Server> {
  const requests: Server['requests'] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const s = http.createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const body = JSON.parse(raw);
      const i = requests.length;
      requests.push({ path: req.url!, body, key: req.headers['idempotency-key'] as string | undefined, at: Date.now() });
      const a = answer(i, body);
      setTimeout(() => {
        inFlight--;
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
      }, a.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    requests,
    get maxInFlight() {
      return maxInFlight;
    },
    close: () => new Promise((r) => s.close(() => r())),
  };
}

const opts = (argv: string[]) => parseFlags(argv, {});
const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

it('counts 201, 200, 4xx and 5xx answers; only 2xx with an id is accepted', async () => {
  const srv = await server((i) => {
    if (i % 10 === 0) return { status: 503, body: { detail: 'a dependency is unavailable' } };
    if (i % 10 === 1) return { status: 400, body: { detail: 'priority must be one of …' } };
    if (i % 10 === 2) return { status: 200, body: { id: uuid(i) } };
    return { status: 201, body: { id: uuid(i) } };
  });
  try {
    const sender = startSending(opts(['-n', '50', '-w', '4', '-url', srv.url, '-idempotency']), 'runA');
    const accepted: string[] = [];
    sender.onAccepted = (ids) => accepted.push(...ids);
    await sender.done;
    await sender.close(0);
    const s = sender.stats;
    expect(s).toMatchObject({ tasksSent: 50, requests: 50, accepted: 40, created: 35, replayed: 5, rejected: 10, stoppedBy: 'n' });
    expect(s.httpStatus).toEqual({ '201': 35, '200': 5, '400': 5, '503': 5 });
    expect(s.errors).toEqual({ connection: 0, timeout: 0, http4xx: 5, http5xx: 5, unexpected: 0 });
    expect(s.errorSamples).toEqual(expect.arrayContaining(['HTTP 503: a dependency is unavailable', 'HTTP 400: priority must be one of …']));
    expect(s.latencies).toHaveLength(50);
    expect(accepted.sort()).toEqual([...s.ids].sort());
    // One key per task, load-<run id>-<i>, each task number once.
    expect(new Set(srv.requests.map((r) => r.key))).toEqual(new Set(Array.from({ length: 50 }, (_, i) => `load-runA-${i}`)));
    expect(srv.maxInFlight).toBeLessThanOrEqual(4);
  } finally {
    await srv.close();
  }
});

it('batch mode: one request per -batch tasks, each item counted on its own', async () => {
  const srv = await server((_i, body) => {
    const tasks = (body as { tasks: Record<string, unknown>[] }).tasks;
    return {
      status: 200,
      body: {
        results: tasks.map((t, j) =>
          j === 0 ? { status: 409, error: { detail: 'idempotency key was already used' } } : { status: 201, task: { id: String(t.idempotency_key) } },
        ),
      },
    };
  });
  try {
    const sender = startSending(opts(['-n', '25', '-batch', '10', '-w', '2', '-url', srv.url, '-idempotency']), 'runB');
    await sender.done;
    await sender.close(0);
    const s = sender.stats;
    expect(srv.requests.map((r) => [r.path, (r.body as { tasks: unknown[] }).tasks.length])).toEqual([
      ['/tasks/batch', 10],
      ['/tasks/batch', 10],
      ['/tasks/batch', 5],
    ]);
    expect(srv.requests.every((r) => r.key === undefined)).toBe(true); // keys travel per item
    expect(s).toMatchObject({ tasksSent: 25, requests: 3, accepted: 22, rejected: 3, httpStatus: { '200': 3 }, itemStatus: { '201': 22, '409': 3 } });
    expect(new Set(s.ids).size).toBe(22);
    expect(s.ids.every((id) => /^load-runB-\d+$/.test(id))).toBe(true);
  } finally {
    await srv.close();
  }
});

it('a missing batch endpoint stops the run with a clear message', async () => {
  const srv = await server(() => ({ status: 404, body: { detail: 'no route for POST /tasks/batch' } }));
  try {
    const sender = startSending(opts(['-n', '1000', '-batch', '10', '-w', '1', '-url', srv.url]), 'runC');
    await sender.done;
    await sender.close(0);
    expect(sender.stats.stoppedBy).toBe('fatal');
    expect(sender.stats.fatal).toMatch(/no batch endpoint; run without -batch/);
    expect(sender.stats.requests).toBe(1);
  } finally {
    await srv.close();
  }
});

it('open loop: requests start on schedule even when answers are slow, up to -w in flight', async () => {
  // Every answer takes 300 ms; at 100 tasks/s a closed loop of 1 client would send ~4 in 400 ms.
  const srv = await server((i) => ({ status: 201, body: { id: uuid(i) }, delayMs: 300 }));
  try {
    const sender = startSending(opts(['-rate', '100', '-duration', '400ms', '-w', '100', '-url', srv.url]), 'runD');
    await sender.done;
    await sender.close(0);
    const s = sender.stats;
    expect(s.stoppedBy).toBe('duration');
    expect(s.tasksSent).toBeGreaterThanOrEqual(30);
    expect(s.tasksSent).toBeLessThanOrEqual(45);
    expect(s.accepted).toBe(s.tasksSent);
    expect(s.lateArrivals).toBe(0);
    expect(srv.maxInFlight).toBeGreaterThan(20);
  } finally {
    await srv.close();
  }
});

it('open loop: with -w in flight an arrival waits and counts as late', async () => {
  const srv = await server((i) => ({ status: 201, body: { id: uuid(i) }, delayMs: 100 }));
  try {
    const sender = startSending(opts(['-rate', '200', '-n', '20', '-w', '2', '-url', srv.url]), 'runE');
    await sender.done;
    await sender.close(0);
    expect(sender.stats.tasksSent).toBe(20);
    expect(sender.stats.lateArrivals).toBeGreaterThan(10);
    expect(sender.stats.maxLagMs).toBeGreaterThan(100);
    expect(srv.maxInFlight).toBe(2);
  } finally {
    await srv.close();
  }
});

it('closed loop with -duration and no -n stops on time', async () => {
  const srv = await server((i) => ({ status: 201, body: { id: uuid(i) }, delayMs: 5 }));
  try {
    const started = Date.now();
    const sender = startSending(opts(['-duration', '300ms', '-w', '2', '-url', srv.url]), 'runF');
    await sender.done;
    await sender.close(0);
    expect(sender.stats.stoppedBy).toBe('duration');
    expect(Date.now() - started).toBeLessThan(1500);
    expect(sender.stats.tasksSent).toBeGreaterThan(5);
  } finally {
    await srv.close();
  }
});

it('stop() (Ctrl-C) ends sending early', async () => {
  const srv = await server((i) => ({ status: 201, body: { id: uuid(i) }, delayMs: 20 }));
  try {
    const sender = startSending(opts(['-n', '100000', '-w', '2', '-url', srv.url]), 'runG');
    setTimeout(() => sender.stop('interrupt'), 200);
    await sender.done;
    await sender.close(1000);
    expect(sender.stats.stoppedBy).toBe('interrupt');
    expect(sender.stats.tasksSent).toBeLessThan(100);
    expect(sender.stats.accepted).toBe(sender.stats.tasksSent);
  } finally {
    await srv.close();
  }
});
