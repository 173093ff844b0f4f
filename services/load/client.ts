/**
 * The sending side: POST /tasks (or POST /tasks/batch) over at most -w keep-alive connections,
 * either as a closed loop (-w clients, each sends its next request when the previous one answered)
 * or an open loop (-rate: requests start on a fixed schedule whatever the answers; when -w are
 * already in flight the arrival waits for a free connection and counts as late). Every outcome is
 * counted, none is fatal, except a missing batch endpoint.
 *
 * It does not use the typed client (services/client): measured against one api and worker on 2
 * cores, 16 connections sending {"type":"noop"}, node:http with a keep-alive agent did 2.5-2.8k
 * requests/s, bare fetch 1.4-1.8k, and the client's submit (fetch, plus the idempotency key it
 * always sends) 0.8-1.2k. The reads after the run go through the client (api-results.ts).
 */
import http from 'node:http';
import https from 'node:https';
import type { LoadOptions } from './flags';
import { TaskPlan } from './plan';

export const REQUEST_TIMEOUT_MS = 30_000;

export interface SendStats {
  runId: string;
  startedAt: number;
  endedAt: number | null;
  /** Tasks put on the wire (in any request, whatever its answer). */
  tasksSent: number;
  requests: number;
  /** Tasks answered 201 or 200 (a batch item counts on its own). */
  accepted: number;
  created: number;
  replayed: number;
  /** Tasks not accepted: 4xx/5xx answers (of the request or of a batch item) and connection errors. */
  rejected: number;
  httpStatus: Record<string, number>;
  itemStatus: Record<string, number>;
  /** unexpected: an answer that is neither 2xx as the contract says, nor 4xx/5xx. */
  errors: { connection: number; timeout: number; http4xx: number; http5xx: number; unexpected: number };
  errorSamples: string[];
  /** Request latencies in ms (request start → full answer read), answered requests only. */
  latencies: number[];
  /** Ids of the accepted tasks, with the client clock time (ms) they were accepted. */
  ids: string[];
  acceptedAt: number[];
  /** The earliest created_at (epoch ms, the API's clock) among the accepted tasks: where reading them back starts. */
  firstCreatedMs: number | null;
  /** Open loop: arrivals that found -w requests in flight and had to wait, and the longest wait. */
  lateArrivals: number;
  maxLagMs: number;
  stoppedBy: 'n' | 'duration' | 'interrupt' | 'fatal' | null;
  fatal: string | null;
}

export function newStats(runId: string): SendStats {
  return {
    runId,
    startedAt: Date.now(),
    endedAt: null,
    tasksSent: 0,
    requests: 0,
    accepted: 0,
    created: 0,
    replayed: 0,
    rejected: 0,
    httpStatus: {},
    itemStatus: {},
    errors: { connection: 0, timeout: 0, http4xx: 0, http5xx: 0, unexpected: 0 },
    errorSamples: [],
    latencies: [],
    ids: [],
    acceptedAt: [],
    firstCreatedMs: null,
    lateArrivals: 0,
    maxLagMs: 0,
    stoppedBy: null,
    fatal: null,
  };
}

interface Answer {
  status: number;
  body: string;
}

/** POSTs of JSON bodies over keep-alive connections (also the fault tests' clients: test/support/load-driver.ts). */
export class HttpPoster {
  private readonly agent: http.Agent;
  private readonly mod: typeof http | typeof https;
  private readonly base: URL;

  constructor(
    baseUrl: string,
    connections: number,
    private readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    this.base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
    this.mod = this.base.protocol === 'https:' ? https : http;
    const AgentClass = this.base.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new AgentClass({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  }

  post(path: string, body: string, headers: Record<string, string>): Promise<Answer> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    return new Promise((resolve, reject) => {
      const req = this.mod.request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function bump(map: Record<string, number>, key: string | number, by = 1): void {
  map[String(key)] = (map[String(key)] ?? 0) + by;
}

function sample(stats: SendStats, msg: string): void {
  if (stats.errorSamples.length < 10 && !stats.errorSamples.includes(msg)) stats.errorSamples.push(msg);
}

function problemDetail(body: string): string {
  try {
    const p = JSON.parse(body) as { detail?: string; title?: string };
    return p.detail ?? p.title ?? body.slice(0, 200);
  } catch {
    return body.slice(0, 200);
  }
}

export interface Sender {
  stats: SendStats;
  /** Stop starting requests (Ctrl-C); requests in flight may still finish. */
  stop(reason: SendStats['stoppedBy']): void;
  /** Resolves when sending is over: -n reached, -duration passed, stopped, or a fatal answer. */
  done: Promise<void>;
  /** Requests still in flight. */
  inFlight(): number;
  /** Waits up to graceMs for requests in flight, then drops the connections. */
  close(graceMs: number): Promise<void>;
  /** Called with the ids of newly accepted tasks. */
  onAccepted?: (ids: string[]) => void;
}

export function startSending(opts: LoadOptions, runId: string): Sender {
  const stats = newStats(runId);
  const poster = new HttpPoster(opts.url, opts.workers);
  const plan = new TaskPlan(opts);
  const per = opts.batch ?? 1;
  let next = 0;
  let stopped = false;
  let closed = false;
  let inFlight = 0;
  const inFlightDone = new Set<Promise<void>>();
  let slotWaiters: (() => void)[] = [];
  let durationTimer: NodeJS.Timeout | undefined;

  const sender: Sender = {
    stats,
    stop(reason) {
      if (!stopped) {
        stopped = true;
        stats.stoppedBy ??= reason;
      }
      for (const w of slotWaiters) w();
      slotWaiters = [];
      wakeSleep?.();
    },
    done: Promise.resolve(),
    inFlight: () => inFlight,
    async close(graceMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...inFlightDone]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      closed = true;
      clearTimeout(durationTimer);
      poster.close();
    },
  };

  if (opts.durationMs !== null) {
    durationTimer = setTimeout(() => sender.stop('duration'), opts.durationMs);
    durationTimer.unref();
  }

  /** The next range of task numbers to send, or null when sending is over. */
  function claim(): [number, number] | null {
    if (stopped) return null;
    if (opts.n !== null && next >= opts.n) {
      stats.stoppedBy ??= 'n';
      return null;
    }
    const from = next;
    const to = opts.n === null ? from + per : Math.min(from + per, opts.n);
    next = to;
    return [from, to];
  }

  async function sendRange([from, to]: [number, number]): Promise<void> {
    const count = to - from;
    const tasks = [];
    for (let i = from; i < to; i++) {
      const t = plan.at(i);
      tasks.push(opts.idempotency && opts.batch !== null ? { ...t.body, idempotency_key: `load-${runId}-${i}` } : t.body);
    }
    const headers: Record<string, string> = opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {};
    if (opts.idempotency && opts.batch === null) headers['idempotency-key'] = `load-${runId}-${from}`;
    const path = opts.batch === null ? '/tasks' : '/tasks/batch';
    const body = JSON.stringify(opts.batch === null ? tasks[0] : { tasks });
    stats.tasksSent += count;
    stats.requests++;
    const t0 = performance.now();
    let answer: Answer;
    try {
      answer = await poster.post(path, body, headers);
    } catch (err) {
      if (closed) return;
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ETIMEDOUT') stats.errors.timeout++;
      else stats.errors.connection++;
      stats.rejected += count;
      sample(stats, `${e.code ?? 'error'}: ${e.message}`);
      return;
    }
    if (closed) return;
    stats.latencies.push(performance.now() - t0);
    bump(stats.httpStatus, answer.status);
    const now = Date.now();
    const accept = (id: string, status: number, createdAt: string | null) => {
      const created = createdAt === null ? NaN : Date.parse(createdAt);
      if (created < (stats.firstCreatedMs ?? Infinity)) stats.firstCreatedMs = created;
      stats.accepted++;
      if (status === 201) stats.created++;
      else stats.replayed++;
      stats.ids.push(id);
      stats.acceptedAt.push(now);
    };
    const fresh: string[] = [];
    if (answer.status >= 500) {
      stats.errors.http5xx++;
      stats.rejected += count;
      sample(stats, `HTTP ${answer.status}: ${problemDetail(answer.body)}`);
    } else if (opts.batch === null ? answer.status !== 201 && answer.status !== 200 : answer.status !== 200) {
      if (answer.status >= 400) stats.errors.http4xx++;
      else stats.errors.unexpected++;
      stats.rejected += count;
      sample(stats, `HTTP ${answer.status}: ${problemDetail(answer.body)}`);
      if (opts.batch !== null && answer.status === 404 && /no route/i.test(answer.body)) {
        stats.fatal = `POST ${path} answered 404 (${problemDetail(answer.body)}): this API has no batch endpoint; run without -batch`;
        sender.stop('fatal');
      }
    } else if (opts.batch === null) {
      const t = parseTask(answer.body);
      if (t) {
        accept(t.id, answer.status, t.createdAt);
        fresh.push(t.id);
      } else {
        stats.rejected += count;
        sample(stats, `HTTP ${answer.status} without a task id: ${answer.body.slice(0, 200)}`);
      }
    } else {
      const results = parseBatch(answer.body);
      if (!results || results.length !== count) {
        stats.rejected += count;
        sample(stats, `HTTP ${answer.status} from /tasks/batch without ${count} results: ${answer.body.slice(0, 200)}`);
      } else {
        for (const r of results) {
          bump(stats.itemStatus, r.status);
          if ((r.status === 201 || r.status === 200) && r.id) {
            accept(r.id, r.status, r.createdAt);
            fresh.push(r.id);
          } else {
            stats.rejected++;
            sample(stats, `batch item ${r.status}: ${r.detail ?? ''}`);
          }
        }
      }
    }
    if (fresh.length) sender.onAccepted?.(fresh);
  }

  function track(range: [number, number]): void {
    inFlight++;
    const p: Promise<void> = sendRange(range).finally(() => {
      inFlight--;
      inFlightDone.delete(p);
      const w = slotWaiters.shift();
      w?.();
    });
    inFlightDone.add(p);
  }

  let wakeSleep: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wakeSleep = undefined;
        resolve();
      }
      wakeSleep = done;
    });
  const freeSlot = () => new Promise<void>((resolve) => slotWaiters.push(resolve));

  async function closedLoop(): Promise<void> {
    await Promise.all(
      Array.from({ length: opts.workers }, async () => {
        for (let range = claim(); range; range = claim()) {
          inFlight++;
          const p = sendRange(range);
          inFlightDone.add(p);
          await p;
          inFlightDone.delete(p);
          inFlight--;
        }
      }),
    );
  }

  async function openLoop(rate: number): Promise<void> {
    const intervalMs = (per / rate) * 1000;
    const t0 = performance.now();
    for (let j = 0; ; j++) {
      const due = t0 + j * intervalMs;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      if (stopped) break;
      if (inFlight >= opts.workers) {
        stats.lateArrivals++;
        while (inFlight >= opts.workers && !stopped) await freeSlot();
        stats.maxLagMs = Math.max(stats.maxLagMs, performance.now() - due);
      }
      const range = claim();
      if (!range) break;
      track(range);
    }
    await Promise.all([...inFlightDone]);
  }

  sender.done = (opts.rate === null ? closedLoop() : openLoop(opts.rate)).then(() => {
    stats.endedAt = Date.now();
    clearTimeout(durationTimer);
  });
  return sender;
}

function parseTask(body: string): { id: string; createdAt: string | null } | null {
  try {
    const t = JSON.parse(body) as { id?: unknown; created_at?: unknown };
    return typeof t.id === 'string' ? { id: t.id, createdAt: typeof t.created_at === 'string' ? t.created_at : null } : null;
  } catch {
    return null;
  }
}

interface BatchItem {
  status: number;
  id: string | null;
  createdAt: string | null;
  detail?: string;
}

function parseBatch(body: string): BatchItem[] | null {
  try {
    const b = JSON.parse(body) as { results?: unknown };
    if (!Array.isArray(b.results)) return null;
    return b.results.map((r: { status?: unknown; task?: { id?: unknown; created_at?: unknown }; error?: { detail?: unknown } }) => ({
      status: typeof r?.status === 'number' ? r.status : 0,
      id: typeof r?.task?.id === 'string' ? r.task.id : null,
      createdAt: typeof r?.task?.created_at === 'string' ? r.task.created_at : null,
      detail: typeof r?.error?.detail === 'string' ? r.error.detail : undefined,
    }));
  } catch {
    return null;
  }
}
