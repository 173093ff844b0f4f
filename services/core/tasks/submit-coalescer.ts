/**
 * Coalesces concurrent single submissions into batches: while up to `maxConcurrent` batches are
 * being written to Postgres, new requests wait and then go together in one transaction and one
 * Redis call. An idle API writes a lone request at once; a busy one writes far fewer, larger
 * transactions. A batch gives up its slot once Postgres has it, so the next batch's transaction
 * overlaps this one's Redis call (a round trip less in every request's wait under load).
 * If a batch fails for a reason other than an outage, its requests are retried one by one, so one
 * bad request cannot fail its neighbours.
 */
import type { Logger } from '../observability/logger';
import { indexStored, storeTasks, SubmitDeps, SubmitRequest, SubmitResult, submitTasks } from './submit';

interface Waiting {
  req: SubmitRequest;
  resolve: (r: SubmitResult) => void;
  reject: (e: unknown) => void;
}

export class SubmitCoalescer {
  private waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(
    private readonly deps: SubmitDeps & { log: Logger },
    private readonly opts: { maxBatch: number; maxConcurrent: number; isOutage: (err: unknown) => boolean },
  ) {}

  submit(req: SubmitRequest): Promise<SubmitResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ req, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxConcurrent && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.opts.maxBatch);
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

  /** Writes one batch; calls `stored` once Postgres holds it (the Redis half may then overlap the next batch). */
  private async write(batch: Waiting[], stored: () => void): Promise<void> {
    try {
      const outcomes = await storeTasks(this.deps, batch.map((w) => w.req));
      stored();
      const results = await indexStored(this.deps, outcomes);
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      if (batch.length === 1 || this.opts.isOutage(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      this.deps.log.warn({ err, count: batch.length }, 'a coalesced batch failed; writing its requests one by one');
      await Promise.all(
        batch.map((w) =>
          submitTasks(this.deps, [w.req]).then(
            (r) => w.resolve(r[0]!),
            (e: unknown) => w.reject(e),
          ),
        ),
      );
    }
  }
}
