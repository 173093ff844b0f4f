/**
 * The load generator (`npm run load -- <flags>`): sends a mix of tasks to the API, optionally waits
 * until every accepted task is final, then prints the Go README's table computed from exactly the
 * tasks it created, read back through the API (and, with -report, writes an HTML report).
 *
 * Exit status: 0 done; 1 the run could not be completed (-wait timed out, the API refused the reads
 * -wait needs, no batch endpoint, the report could not be written); 2 bad flags; 130 Ctrl-C (143 SIGTERM).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { TaskSchedulerClient } from '../client';
import { fetchFacts, FinalTracker } from './api-results';
import { startSending } from './client';
import { HelpRequested, LoadOptions, parseFlags, usage, UsageError } from './flags';
import { workerSlots } from './worker-slots';
import { startProgress } from './progress';
import { renderText } from './render';
import { renderHtml } from './report';
import { buildResult } from './result';
import { computeSummary, TableSummary, Timeline, timelineOf } from './summary';

const WAIT_POLL_MS = 250;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function run(argv: string[], io: { out: NodeJS.WritableStream; err: NodeJS.WriteStream | NodeJS.WritableStream } = { out: process.stdout, err: process.stderr }): Promise<number> {
  let opts: LoadOptions;
  try {
    opts = parseFlags(argv);
  } catch (err) {
    if (err instanceof HelpRequested) {
      io.out.write(`${usage()}\n`);
      return 0;
    }
    if (err instanceof UsageError) {
      io.err.write(`load: ${err.message}\nRun with -help to list the flags.\n`);
      return 2;
    }
    throw err;
  }

  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  // The reads go through the typed client (a few of them, off the hot path); the sending loop keeps
  // its own lean HTTP (see client.ts).
  const api = new TaskSchedulerClient({ baseUrl: opts.url, apiKey: opts.apiKey || undefined, retry: { maxRetries: 3 } });
  let tracker: FinalTracker | null = null;
  if (opts.wait) {
    try {
      await api.listPage({ limit: 1 });
    } catch (err) {
      io.err.write(`load: -wait reads the tasks through GET /tasks, but ${opts.url} refused: ${(err as Error).message}\n(the key needs the scope tasks:read)\n`);
      return 1;
    }
  }

  const sender = startSending(opts, runId);
  const stats = sender.stats;
  if (opts.wait) tracker = new FinalTracker(api, () => stats.firstCreatedMs);
  sender.onAccepted = (ids) => tracker?.add(ids);

  let interrupted: NodeJS.Signals | null = null;
  let interruptedAt = 0;
  let wakeWait: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      // A second Ctrl-C: leave now. Not within a second of the first, though: under `npm run load`
      // one Ctrl-C arrives twice (from the terminal to the process group, and forwarded by npm).
      if (Date.now() - interruptedAt >= 1000) process.exit(interrupted === 'SIGINT' ? 130 : 143);
      return;
    }
    interrupted = signal;
    interruptedAt = Date.now();
    io.err.write(`\n${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping; summarising what was sent (press again to quit at once)\n`);
    sender.stop('interrupt');
    wakeWait?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let phase: 'sending' | 'waiting' | 'reading' = 'sending';
  let read = 0;
  const progress = startProgress(io.err, () => ({
    phase,
    sent: stats.tasksSent,
    accepted: stats.accepted,
    rejected: stats.rejected,
    final: tracker ? tracker.final : null,
    inFlight: sender.inFlight(),
    read,
  }));

  // With -wait, finished tasks are counted while sending goes on.
  let sending = true;
  const pollDuringSend = (async () => {
    while (tracker && sending && !interrupted) {
      await tracker.poll();
      // Each poll lists every task not final yet: with a large backlog, poll less often.
      await sleep(Math.max(WAIT_POLL_MS * 2, tracker.lastPollMs * 2));
    }
  })();

  await sender.done;
  sending = false;
  await sender.close(interrupted ? 2000 : 0);
  await pollDuringSend;

  let waitTimedOut = false;
  if (tracker && !interrupted && !stats.fatal) {
    phase = 'waiting';
    const deadline = Date.now() + opts.timeoutMs;
    await tracker.poll();
    while (tracker && tracker.unfinished > 0 && !interrupted) {
      if (Date.now() >= deadline) {
        waitTimedOut = true;
        break;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(Math.max(WAIT_POLL_MS, tracker!.lastPollMs), Math.max(0, deadline - Date.now())));
        wakeWait = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wakeWait = undefined;
      if (!interrupted) await tracker.poll();
    }
  }
  // The summary: every task of this run and its runs, read back through the API.
  let summary: TableSummary | null = null;
  let timeline: Timeline | null = null;
  let resultsError: string | null = null;
  if (stats.ids.length === 0) {
    summary = computeSummary([], [], { accepted: 0, slots: opts.slots, nowMs: Date.now() });
  } else if (stats.firstCreatedMs === null) {
    resultsError = 'the answers showed no created_at to look the tasks up by';
  } else {
    try {
      phase = 'reading';
      const facts = await fetchFacts(api, stats.ids, stats.firstCreatedMs, (n) => (read = n));
      const slots = opts.slots ?? (await workerSlots(api, facts.runs));
      summary = computeSummary(facts.tasks, facts.runs, { accepted: stats.accepted, slots, nowMs: facts.nowMs });
      timeline = timelineOf(facts.tasks, facts.runs);
    } catch (err) {
      resultsError = `${opts.url}: ${(err as Error).message}`;
    }
  }

  progress.stop();

  const result = buildResult({ opts, stats, summary, resultsError, interrupted: interrupted !== null, waitTimedOut, endedAt: Date.now() });
  if (opts.json) io.out.write(`${JSON.stringify(result)}\n`);
  else io.out.write(`${renderText(result)}\n`);

  let code = 0;
  if (opts.report) {
    try {
      writeFileSync(opts.report, renderHtml(result, timeline));
      if (!opts.json) io.err.write(`report written to ${opts.report}\n`);
    } catch (err) {
      io.err.write(`load: could not write -report ${opts.report}: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (interrupted) return interrupted === 'SIGINT' ? 130 : 143;
  if (stats.fatal) {
    io.err.write(`load: ${stats.fatal}\n`);
    return 1;
  }
  if (waitTimedOut) {
    io.err.write(`load: -wait timed out after ${Math.round(opts.timeoutMs / 1000)}s with ${tracker?.unfinished ?? '?'} tasks not final\n`);
    return 1;
  }
  return code;
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Everything is closed by now; this only guards against a stray handle keeping us alive.
      setTimeout(() => process.exit(code), 2000).unref();
    },
    (err: unknown) => {
      process.stderr.write(`load: ${(err as Error)?.message ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
