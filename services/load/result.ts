/**
 * The result of a run as one JSON-ready object (what -json prints), assembled from the client's
 * counts and, when the API answered the reads, the table computed from this run's tasks and runs.
 */
import type { SendStats } from './client';
import type { LoadOptions } from './flags';
import { round3, spread, Spread } from './stats';
import type { TableSummary } from './summary';

export interface JsonSpread {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

export interface LoadResult {
  run_id: string;
  url: string;
  started_at: string;
  ended_at: string;
  /** True when every accepted task was seen final. */
  complete: boolean;
  interrupted: boolean;
  stopped_by: SendStats['stoppedBy'];
  notes: string[];
  options: {
    n: number | null;
    w: number;
    rate: number | null;
    duration_ms: number | null;
    batch: number | null;
    idempotency: boolean;
    wait: boolean;
    seed: number;
    slots: number | null;
    sleep_ms: number;
    flaky_attempts: number;
    task_mix: Record<string, number>;
    priority_mix: Record<string, number>;
  };
  client: {
    tasks_sent: number;
    requests: number;
    accepted: number;
    created: number;
    replayed: number;
    rejected: number;
    elapsed_ms: number;
    sent_per_s: number | null;
    accepted_per_s: number | null;
    http_status: Record<string, number>;
    item_status: Record<string, number>;
    errors: { connection: number; timeout: number; http_4xx: number; http_5xx: number; unexpected: number; total: number };
    error_samples: string[];
    latency_ms: JsonSpread;
    late_arrivals: number;
    max_lag_ms: number | null;
  };
  tasks: {
    accepted: number;
    found: number;
    final: number;
    succeeded: number;
    dead: number;
    unfinished: number;
    by_status: Record<string, number>;
    by_type: Record<string, { tasks: number; succeeded: number; dead: number; runs: number }>;
  } | null;
  table: {
    burst: number;
    workers: number;
    slots: number | null;
    in_flight: number;
    drain_time_ms: number | null;
    throughput_per_s: number | null;
    run_ms: JsonSpread;
    wait_ms: JsonSpread;
    fail_pct: number | null;
    retries: number;
    extra_attempts: number;
    reaped: number;
    runs: number;
    run_outcomes: Record<string, number>;
  } | null;
  /** Why the tasks could not be read back (then `tasks` and `table` are null). */
  results_error: string | null;
}

function jsonSpread(s: Spread): JsonSpread {
  return { count: s.count, p50: round3(s.p50), p95: round3(s.p95), p99: round3(s.p99), max: round3(s.max), mean: round3(s.mean) };
}

export function buildResult(args: {
  opts: LoadOptions;
  stats: SendStats;
  summary: TableSummary | null;
  resultsError: string | null;
  interrupted: boolean;
  waitTimedOut: boolean;
  endedAt: number;
}): LoadResult {
  const { opts, stats, summary } = args;
  const elapsed = (stats.endedAt ?? args.endedAt) - stats.startedAt;
  const complete = summary !== null && summary.unfinished === 0 && summary.found === stats.accepted;
  const notes: string[] = [];
  if (stats.fatal) notes.push(stats.fatal);
  if (args.interrupted) notes.push('interrupted (Ctrl-C): sending stopped early; the numbers cover what was sent so far');
  if (args.resultsError) notes.push(`the tasks could not be read back through the API (${args.resultsError}): only the client's counts are shown`);
  if (summary && !complete) {
    const why = args.waitTimedOut ? `-wait gave up after -timeout ${Math.round(opts.timeoutMs / 1000)}s` : opts.wait ? 'the wait was cut short' : 'run with -wait to wait for them';
    notes.push(`not everything is final: ${summary.unfinished} of ${summary.found} tasks still queued, running or retrying (${why}); Drain Time, Throughput, Fail % and Retries cover the tasks final so far`);
  }
  if (summary && summary.found < stats.accepted) notes.push(`${stats.accepted - summary.found} accepted task ids were not found by GET /tasks (deleted, or the key sees another tenant?)`);
  if (stats.accepted === 0 && stats.tasksSent > 0) notes.push(`no task was accepted: is the API answering at ${opts.url}? (see the errors)`);
  if (summary && summary.workers > 0 && summary.slots === null) notes.push(`Workers × Slots: ${summary.workers} worker(s) ran these tasks (distinct worker_id of their runs); GET /queues did not tell their slots alike, so pass -slots N (their WORKER_POOL)`);
  if (stats.lateArrivals > 0) notes.push(`open loop fell behind: ${stats.lateArrivals} arrivals found -w ${opts.workers} requests in flight and waited (up to ${Math.round(stats.maxLagMs)} ms); raise -w or lower -rate`);
  const errTotal = stats.errors.connection + stats.errors.timeout + stats.errors.http4xx + stats.errors.http5xx + stats.errors.unexpected;
  return {
    run_id: stats.runId,
    url: opts.url,
    started_at: new Date(stats.startedAt).toISOString(),
    ended_at: new Date(args.endedAt).toISOString(),
    complete,
    interrupted: args.interrupted,
    stopped_by: stats.stoppedBy,
    notes,
    options: {
      n: opts.n,
      w: opts.workers,
      rate: opts.rate,
      duration_ms: opts.durationMs,
      batch: opts.batch,
      idempotency: opts.idempotency,
      wait: opts.wait,
      seed: opts.seed,
      slots: opts.slots,
      sleep_ms: opts.sleepMs,
      flaky_attempts: opts.flakyAttempts,
      task_mix: { ...opts.taskMix },
      priority_mix: { ...opts.priorityMix },
    },
    client: {
      tasks_sent: stats.tasksSent,
      requests: stats.requests,
      accepted: stats.accepted,
      created: stats.created,
      replayed: stats.replayed,
      rejected: stats.rejected,
      elapsed_ms: Math.round(elapsed),
      sent_per_s: elapsed > 0 ? round3(stats.tasksSent / (elapsed / 1000)) : null,
      accepted_per_s: elapsed > 0 ? round3(stats.accepted / (elapsed / 1000)) : null,
      http_status: { ...stats.httpStatus },
      item_status: { ...stats.itemStatus },
      errors: { connection: stats.errors.connection, timeout: stats.errors.timeout, http_4xx: stats.errors.http4xx, http_5xx: stats.errors.http5xx, unexpected: stats.errors.unexpected, total: errTotal },
      error_samples: [...stats.errorSamples],
      latency_ms: jsonSpread(spread(stats.latencies)),
      late_arrivals: stats.lateArrivals,
      max_lag_ms: stats.lateArrivals ? round3(stats.maxLagMs) : null,
    },
    tasks: summary && {
      accepted: stats.accepted,
      found: summary.found,
      final: summary.final,
      succeeded: summary.succeeded,
      dead: summary.dead,
      unfinished: summary.unfinished,
      by_status: summary.byStatus,
      by_type: summary.byType,
    },
    table: summary && {
      burst: summary.burst,
      workers: summary.workers,
      slots: summary.slots,
      in_flight: summary.inFlight,
      drain_time_ms: round3(summary.drainTimeMs),
      throughput_per_s: round3(summary.throughputPerS),
      run_ms: jsonSpread(summary.runMs),
      wait_ms: jsonSpread(summary.waitMs),
      fail_pct: round3(summary.failPct),
      retries: summary.retries,
      extra_attempts: summary.extraAttempts,
      reaped: summary.reaped,
      runs: summary.runs,
      run_outcomes: summary.runOutcomes,
    },
    results_error: args.resultsError,
  };
}
