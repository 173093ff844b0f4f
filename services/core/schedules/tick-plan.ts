/**
 * Which of a schedule's due ticks fire, given the database's clock: a pure function, so the
 * misfire rules are tested without a database, and the firing transaction only applies its answer.
 *
 * A tick is missed when it is more than the grace (SCHEDULE_MISFIRE_GRACE_MS) in the past: the
 * ticker was down, stalled or behind. Ticks within the grace fire whatever the policy. Missed ones:
 * `skip` drops them all; `run_once` fires the latest of them; `catch_up` fires the latest
 * `catch_up_limit` of them (oldest of those first) and drops older ones, so a schedule catching up
 * ends with an unbroken run of ticks up to now rather than a gap in the middle.
 *
 * The work is bounded whatever the downtime: a `* * * * * *` schedule down for a month has 2.6
 * million missed ticks, and one step of the cron parser costs ~50 µs (a yearly one in a zone with
 * daylight saving, ~0.5 ms). The kept ones are found by walking back from the grace's edge, at
 * most the number kept and stopping at next_tick, so a short outage costs a few steps whatever
 * catch_up_limit is; dropped ones are counted by walking forward at most MISSED_COUNT_CAP steps.
 */
import { compileCron, CompiledCron, CronSpec } from './cron';
import type { MisfirePolicy } from './schedule';

/** Dropped ticks counted exactly up to this many per pass (past it, the count is this floor). */
export const MISSED_COUNT_CAP = 200;
/** Ticks within the grace fired per pass at most; the next pass goes on from the next one. */
export const RECENT_CAP = 1000;

export interface TickPlanInput extends CronSpec {
  /** The schedule's earliest tick not yet fired nor skipped; it is due (<= now). */
  next_tick: Date;
  misfire: MisfirePolicy;
  catch_up_limit: number;
}

export interface TickPlan {
  /** Ticks to fire, oldest first. */
  fire: Date[];
  /** Missed ticks dropped by the misfire policy (a floor of MISSED_COUNT_CAP when there were more). */
  missed: number;
  /** The latest tick this plan decided on (fired or dropped). */
  lastTick: Date;
  lastOutcome: 'fired' | 'skipped_misfire';
  /** The schedule's next tick: the first after now (after the last fired one when RECENT_CAP cut the pass short); null when the expression has no more. */
  nextTick: Date | null;
}

/** Ticks in [from, to], oldest first, at most `max` of them; `from` must be a tick or the walk starts after it. */
function walk(cron: CompiledCron, first: Date | null, to: Date, max: number): Date[] {
  const out: Date[] = [];
  for (let t = first; t && t <= to && out.length < max; t = cron.next(t)) out.push(t);
  return out;
}

/**
 * The latest `max` ticks in [from, before), oldest first, walking back one tick at a time: the walk
 * ends at `from` rather than after `max` steps (walking a thousand ticks back for one missed tick
 * of a yearly expression reaches the eleventh century).
 */
function latestTicks(cron: CompiledCron, from: Date, before: Date, max: number): Date[] {
  const out: Date[] = [];
  for (let to = before; out.length < max; ) {
    const t = cron.previous(1, to)[0];
    if (!t || t < from) break;
    out.push(t);
    to = t;
  }
  return out.reverse();
}

/** How many ticks lie in [from, before), walking at most MISSED_COUNT_CAP of them. */
function countTicks(cron: CompiledCron, from: Date, before: Date): number {
  let n = 0;
  for (let t: Date | null = from; t && t < before && n < MISSED_COUNT_CAP; t = cron.next(t)) n++;
  return n;
}

export function planTicks(s: TickPlanInput, now: Date, graceMs: number): TickPlan {
  if (s.next_tick > now) throw new Error(`planTicks: next_tick ${s.next_tick.toISOString()} is not due at ${now.toISOString()}`);
  const cron = compileCron(s);
  const cutoff = new Date(now.getTime() - graceMs);
  const keep = s.misfire === 'skip' ? 0 : s.misfire === 'run_once' ? 1 : s.catch_up_limit;

  // Missed: ticks in [next_tick, cutoff). The latest max(keep, 1) of them (the latest tells last_tick even when none is kept).
  let kept: Date[] = [];
  let latestMissed: Date | null = null;
  let missed = 0;
  if (s.next_tick < cutoff) {
    const latest = latestTicks(cron, s.next_tick, cutoff, Math.max(keep, 1));
    // next_tick is a tick, so at least it lies in the range (previousRuns may stop short near the expression's start).
    if (latest.length === 0) latest.push(s.next_tick);
    latestMissed = latest[latest.length - 1]!;
    kept = latest.slice(latest.length - keep);
    const oldestKept = kept[0] ?? new Date(latestMissed.getTime() + 1);
    missed = countTicks(cron, s.next_tick, oldestKept);
  }

  // Within the grace: ticks in [max(next_tick, cutoff), now].
  const recentFirst = s.next_tick >= cutoff ? s.next_tick : cron.next(new Date(cutoff.getTime() - 1));
  const recent = walk(cron, recentFirst, now, RECENT_CAP);
  const cut = recent.length === RECENT_CAP;

  const fire = [...kept, ...recent];
  const lastFired = fire[fire.length - 1];
  const lastTick = recent[recent.length - 1] ?? latestMissed!;
  return {
    fire,
    missed,
    lastTick,
    lastOutcome: recent.length > 0 || keep > 0 ? 'fired' : 'skipped_misfire',
    nextTick: cut ? cron.next(lastFired!) : cron.next(now),
  };
}
