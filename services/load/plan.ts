/**
 * What task number i is: its type (by the task mix), its priority (by the priority mix) and its
 * request body. Tasks are dealt in blocks of 100: each block holds exactly pct tasks of each kind
 * and priority, shuffled with a seeded generator, so any multiple of 100 tasks matches the mix
 * exactly and every prefix is close to it. The last block of a finite run that is not a multiple of
 * 100 is apportioned by largest remainders. The same seed always yields the same sequence.
 */
import { LoadOptions, PRIORITY_NAMES, PriorityName, TASK_KINDS, TaskKind } from './flags';

const BLOCK = 100;

/** mulberry32: a small, good-enough deterministic PRNG in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits `size` items by percentages with largest remainders (ties go to the earlier name). */
export function apportion<K extends string>(names: readonly K[], pct: Record<K, number>, size: number): Record<K, number> {
  const out = {} as Record<K, number>;
  const rest: { k: K; frac: number; order: number }[] = [];
  let used = 0;
  names.forEach((k, order) => {
    const exact = (pct[k] * size) / 100;
    out[k] = Math.floor(exact);
    used += out[k];
    rest.push({ k, frac: exact - out[k], order });
  });
  rest.sort((a, b) => b.frac - a.frac || a.order - b.order);
  for (let i = 0; used < size && i < rest.length; i++, used++) out[rest[i]!.k]++;
  return out;
}

function shuffledBlock<K extends string>(names: readonly K[], pct: Record<K, number>, size: number, rand: () => number): K[] {
  const counts = apportion(names, pct, size);
  const block: K[] = [];
  for (const k of names) for (let j = 0; j < counts[k]; j++) block.push(k);
  for (let i = block.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [block[i], block[j]] = [block[j]!, block[i]!];
  }
  return block;
}

export interface PlannedTask {
  kind: TaskKind;
  priority: PriorityName;
  body: Record<string, unknown>;
}

export function taskBody(kind: TaskKind, priority: PriorityName, opts: Pick<LoadOptions, 'sleepMs' | 'flakyAttempts'>): Record<string, unknown> {
  switch (kind) {
    case 'noop':
      return { type: 'noop', priority };
    case 'flaky':
      return { type: 'flaky', priority, payload: { fail_attempts: opts.flakyAttempts } };
    case 'fail':
      return { type: 'always_fail', priority };
    case 'sleep':
      return { type: 'sleeper', priority, payload: { sleep_ms: opts.sleepMs } };
  }
}

export class TaskPlan {
  private block = -1;
  private kinds: TaskKind[] = [];
  private priorities: PriorityName[] = [];

  constructor(private readonly opts: Pick<LoadOptions, 'n' | 'taskMix' | 'priorityMix' | 'seed' | 'sleepMs' | 'flakyAttempts'>) {}

  at(i: number): PlannedTask {
    const b = Math.floor(i / BLOCK);
    if (b !== this.block) this.deal(b);
    const kind = this.kinds[i % BLOCK]!;
    const priority = this.priorities[i % BLOCK]!;
    return { kind, priority, body: taskBody(kind, priority, this.opts) };
  }

  private deal(b: number): void {
    const n = this.opts.n;
    const size = n === null ? BLOCK : Math.min(BLOCK, n - b * BLOCK);
    // Two independent streams per block, so the type and the priority of a task are uncorrelated.
    this.kinds = shuffledBlock(TASK_KINDS, this.opts.taskMix, size, prng(this.opts.seed * 7919 + b * 2));
    this.priorities = shuffledBlock(PRIORITY_NAMES, this.opts.priorityMix, size, prng(this.opts.seed * 7919 + b * 2 + 1));
    this.block = b;
  }
}
