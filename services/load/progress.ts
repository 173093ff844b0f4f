/**
 * The progress line on stderr: rewritten in place (\r) twice a second when stderr is a terminal;
 * otherwise one plain line every 10 s, so logs and CI output stay readable.
 */
export interface ProgressSnapshot {
  /** reading: the tasks and their runs are read back through the API for the summary. */
  phase: 'sending' | 'waiting' | 'reading';
  sent: number;
  accepted: number;
  rejected: number;
  /** Final tasks so far; null without -wait. */
  final: number | null;
  inFlight: number;
  /** Tasks whose runs were read back so far (phase reading). */
  read?: number;
}

export function progressLine(s: ProgressSnapshot, ratePerS: number | null): string {
  if (s.phase === 'reading') return `reading back ${s.read ?? 0}/${s.accepted} tasks with their runs${ratePerS === null ? '' : ` (${Math.round(ratePerS)}/s)`}`;
  const parts = [`sent ${s.sent}`, `accepted ${s.accepted}`, `rejected ${s.rejected}`];
  if (s.final !== null) parts.push(`final ${s.final}/${s.accepted}`);
  if (s.phase === 'sending') {
    parts.push(`${ratePerS === null ? '–' : Math.round(ratePerS)} accepted/s`);
    parts.push(`${s.inFlight} in flight`);
  } else {
    parts.push(`waiting for ${s.accepted - (s.final ?? 0)} tasks${ratePerS === null ? '' : ` (${Math.round(ratePerS)} final/s)`}`);
  }
  return parts.join(' · ');
}

export function startProgress(stream: NodeJS.WritableStream & { isTTY?: boolean }, snapshot: () => ProgressSnapshot): { stop(): void } {
  const tty = stream.isTTY === true;
  const everyMs = tty ? 500 : 10_000;
  let last = { at: Date.now(), count: 0, phase: 'sending' as ProgressSnapshot['phase'] };
  let drawn = false;
  const timer = setInterval(() => {
    const s = snapshot();
    const now = Date.now();
    const count = s.phase === 'sending' ? s.accepted : s.phase === 'reading' ? (s.read ?? 0) : (s.final ?? 0);
    const rate = last.phase === s.phase && now > last.at ? ((count - last.count) * 1000) / (now - last.at) : null;
    last = { at: now, count, phase: s.phase };
    const line = progressLine(s, rate);
    if (tty) {
      stream.write(`\r${line}\x1b[K`);
      drawn = true;
    } else stream.write(`${line}\n`);
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (tty && drawn) stream.write('\r\x1b[K');
    },
  };
}
