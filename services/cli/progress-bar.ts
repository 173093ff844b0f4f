/** A progress bar redrawn in place on stderr (\r); only drawn when stdout and stderr are terminals. */
import type { Io } from './io';

export interface ProgressBar {
  update(done: number, note?: string): void;
  /** Clears the bar, leaving the line for what follows. */
  end(): void;
}

const NONE: ProgressBar = { update: () => undefined, end: () => undefined };

export function progressBar(io: Io, label: string, total: number, totalText = String(total)): ProgressBar {
  if (!io.tty) return NONE;
  const width = 30;
  let drawn = false;
  return {
    update(done, note = '') {
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(frac * width);
      io.err(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${totalText} ${Math.floor(frac * 100)}%${note ? ` · ${note}` : ''}\x1b[K`);
      drawn = true;
    },
    end() {
      if (drawn) io.err('\r\x1b[K');
    },
  };
}
