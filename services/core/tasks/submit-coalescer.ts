/**
 * Coalesces concurrent single submissions into batches: while up to `maxConcurrent` batches are
 * being written to Postgres, new requests wait and then go together in one transaction and one
 * Redis call. An idle API writes a lone request at once; a busy one writes far fewer, larger
 * transactions. A batch gives up its slot once Postgres has it, so the next batch's transaction
 * overlaps this one's Redis call (a round trip less in every request's wait under load).
 * Requests are answered once Postgres holds their batch: that commit is what an accepted task
 * rests on, and a push that fails is left to the reconciler either way (see submit.ts). Waiting
 * for the Redis push as well made each answer a round trip later, and with clients that send the
 * next task once the last is answered, later answers meant smaller batches (the 10k burst: a
 * tenth more commits). settled() waits for the pushes still in flight (shutdown).
 * A batch holds at most `maxBatch` requests and `maxBatchBytes` of payload (a larger request goes
 * alone), so the statement's size is bounded by settings, not by what clients send.
 * A batch is stored all or nothing (storeTasks): when it fails, none of its tasks exist, so its
 * requests can be written again one by one (for a failure other than an outage) and one bad request
 * cannot fail its neighbours, or create a task for a request that was answered with an error.
 */
import type { Logger } from '../observability/logger';
import { indexStored, storeTasks, SubmitDeps, SubmitRequest, SubmitResult, submitTasks } from './submit';
import { scopedKey } from './task-store';

interface Waiting {
  req: SubmitRequest;
  resolve: (r: SubmitResult) => void;
  reject: (e: unknown) => void;
}

export class SubmitCoalescer {
  private waiting: Waiting[] = [];
  private inFlight = 0;
  /** Batches answered whose Redis push has not finished. */
  private readonly pushing = new Set<Promise<unknown>>();

  constructor(
    private readonly deps: SubmitDeps & { log: Logger },
    private readonly opts: { maxBatch: number; maxBatchBytes?: number; maxConcurrent: number; isOutage: (err: unknown) => boolean },
  ) {}

  submit(req: SubmitRequest): Promise<SubmitResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ req, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxConcurrent && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.batchLength());
      this.inFlight++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.inFlight--;
        this.pump();
      };
      void this.write(batch, release).finally(release);
    }
  }

  /** How many of the waiting requests fit in the next batch (at least one). */
  private batchLength(): number {
    const limit = Math.min(this.opts.maxBatch, this.waiting.length);
    const maxBytes = this.opts.maxBatchBytes ?? Infinity;
    let bytes = 0;
    for (let n = 0; n < limit; n++) {
      bytes += requestBytes(this.waiting[n]!.req);
      if (bytes > maxBytes) return Math.max(n, 1);
    }
    return limit;
  }

  /** Resolves once every batch answered so far is pushed to Redis (or its push failed). */
  async settled(): Promise<void> {
    while (this.pushing.size > 0) await Promise.allSettled([...this.pushing]);
  }

  /**
   * Writes one batch and answers it once Postgres holds it; calls `stored` then too (the Redis
   * half may overlap the next batch).
   */
  private async write(batch: Waiting[], stored: () => void): Promise<void> {
    try {
      const outcomes = await storeTasks(this.deps, batch.map((w) => w.req));
      stored();
      // indexStored never throws: a failed push is logged and left to the reconciler.
      const push: Promise<void> = indexStored(this.deps, outcomes, batch.map((w) => w.req)).finally(() => this.pushing.delete(push));
      this.pushing.add(push);
      batch.forEach((w, i) => w.resolve(outcomes[i]!));
      await push;
    } catch (err) {
      // Nothing of the batch was stored (see storeTasks), so no request loses or duplicates a task here.
      if (batch.length === 1 || this.opts.isOutage(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      this.deps.log.warn({ err, count: batch.length }, 'a coalesced batch failed; writing its requests one by one');
      // Uses of one key go in their arrival order (the first creates, the next replays or conflicts).
      const lastOfKey = new Map<string, Promise<void>>();
      await Promise.all(
        batch.map((w) => {
          const key = w.req.idempotencyKey === null ? null : scopedKey(w.req);
          const write = (key === null ? Promise.resolve() : (lastOfKey.get(key) ?? Promise.resolve())).then(() =>
            submitTasks(this.deps, [w.req]).then(
              (r) => w.resolve(r[0]!),
              (e: unknown) => w.reject(e),
            ),
          );
          if (key !== null) lastOfKey.set(key, write);
          return write;
        }),
      );
    }
  }
}

/** What a request adds to a statement: its payload's JSON, plus the other columns. */
function requestBytes(req: SubmitRequest): number {
  return (req.payloadJson?.length ?? 0) + req.type.length + (req.idempotencyKey?.length ?? 0) + 128;
}
