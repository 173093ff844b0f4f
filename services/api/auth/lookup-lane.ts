/**
 * Ids looked up in batches, one query in flight: however many ids are asked for, a lane costs
 * Postgres one query at a time, and beyond `maxWaiting` ids waiting it refuses new ones instead of
 * queueing without bound.
 */
import { performance } from 'node:perf_hooks';

/** One id's place in a lane: its answer, and when its query began (null while it waits for one). */
export interface Ticket<T> {
  asked: number | null;
  result: Promise<T>;
}

interface Waiter<T> {
  id: string;
  ticket: Ticket<T>;
  resolve: (v: T) => void;
  reject: (err: unknown) => void;
}

export class LookupLane<T> {
  private readonly waiting: Waiter<T>[] = [];
  private querying = false;

  /** `answer` reads a batch: one result per id, in order; `asked` is when its query began. */
  constructor(
    private readonly answer: (ids: string[], asked: number) => Promise<T[]>,
    private readonly maxWaiting: number,
    private readonly batchSize: number,
  ) {}

  /** A ticket for `id`, or null when `maxWaiting` ids already wait. */
  enqueue(id: string): Ticket<T> | null {
    if (this.waiting.length >= this.maxWaiting) return null;
    const ticket: Ticket<T> = { asked: null, result: undefined as unknown as Promise<T> };
    ticket.result = new Promise<T>((resolve, reject) => this.waiting.push({ id, ticket, resolve, reject }));
    this.pump();
    return ticket;
  }

  private pump(): void {
    if (this.querying || this.waiting.length === 0) return;
    this.querying = true;
    const batch = this.waiting.splice(0, this.batchSize);
    const asked = performance.now();
    for (const w of batch) w.ticket.asked = asked;
    this.answer(batch.map((w) => w.id), asked)
      .then(
        (results) => batch.forEach((w, i) => w.resolve(results[i]!)),
        (err: unknown) => batch.forEach((w) => w.reject(err)),
      )
      .finally(() => {
        this.querying = false;
        this.pump();
      });
  }
}
