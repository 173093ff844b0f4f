/** Argument parsing for the CLI: strict (an unknown or repeated option is a usage error, exit 2). */
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

export type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parse(args: string[], options: OptionSpec, positionals: { min: number; max: number; names: string }): Parsed {
  let parsed: Parsed;
  try {
    const { values, positionals: given, tokens } = parseArgs({ args, options, strict: true, allowPositionals: true, tokens: true });
    // parseArgs keeps the last of a repeated option: `--scopes tasks:read --scopes admin` would make an admin key.
    const seen = new Set<string>();
    for (const t of tokens) {
      if (t.kind !== 'option') continue;
      if (seen.has(t.name)) throw new UsageError(`--${t.name} is given more than once`);
      seen.add(t.name);
    }
    parsed = { values, positionals: given } as Parsed;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message.replace(/^.*?: /, '').split('\n')[0]!);
  }
  for (const [name, spec] of Object.entries(options)) {
    const v = parsed.values[name];
    if (spec.type === 'string' && typeof v === 'string' && v.startsWith('--')) throw new UsageError(`option --${name} needs a value`);
  }
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new UsageError(`missing ${positionals.names}`);
  if (n > positionals.max) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[positionals.max])}`);
  return parsed;
}

/** `30d`, `12h`, `90m`, `45s`, `2w` → milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d{1,6})([smhdw])$/.exec(text);
  if (!m) throw new UsageError(`${option} must be a number followed by s, m, h, d or w (e.g. 30d), got ${JSON.stringify(text)}`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
  const ms = Number(m[1]) * unit;
  if (ms <= 0) throw new UsageError(`${option} must be more than zero`);
  if (ms > 10 * 365 * 86_400_000) throw new UsageError(`${option} must be at most ten years`);
  return ms;
}

/** A whole number in [min, max], or `default` (null: the environment's default applies). */
export function parseLimit(text: string, option: string, min: number, max: number): number | null {
  if (text === 'default') return null;
  if (!/^\d{1,10}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${option} must be a whole number from ${min} to ${max}, or "default", got ${JSON.stringify(text)}`);
  }
  return Number(text);
}
