/** Parsers for configuration values: each takes the raw string and returns a typed value or throws. */
import { PRIORITIES, Priority } from '../tasks/priority';

export type Parser<T> = (raw: string) => T;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function parseInteger(opts: { min: number; max: number }): Parser<number> {
  return (raw) => {
    const s = raw.trim();
    if (!/^-?\d+$/.test(s)) throw new Error('must be an integer');
    const n = Number(s);
    if (n < opts.min || n > opts.max) throw new Error(`must be between ${opts.min} and ${opts.max}`);
    return n;
  };
}

export function parseString(opts: { minLength?: number; pattern?: RegExp; hint?: string } = {}): Parser<string> {
  return (raw) => {
    if (opts.minLength !== undefined && raw.length < opts.minLength) throw new Error('must not be empty');
    if (opts.pattern && raw !== '' && !opts.pattern.test(raw)) throw new Error(`must look like ${opts.hint ?? opts.pattern}`);
    return raw;
  };
}

export function parseEnum<const T extends readonly string[]>(values: T): Parser<T[number]> {
  return (raw) => {
    const s = raw.trim();
    if (!values.includes(s)) throw new Error(`must be one of ${values.join(', ')}`);
    return s as T[number];
  };
}

export type Weights = Record<Priority, number>;

/** `critical=8,high=4,default=2,low=1`: every priority named once, each weight 1–1000. */
export const parseWeights: Parser<Weights> = (raw) => {
  const out: Partial<Weights> = {};
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+)=(\d+)$/.exec(part);
    if (!m) throw new Error(`"${part}" is not priority=weight`);
    const [, name, w] = m as unknown as [string, string, string];
    if (!(PRIORITIES as readonly string[]).includes(name)) throw new Error(`unknown priority "${name}"`);
    const n = Number(w);
    if (n < 1 || n > 1000) throw new Error(`weight of ${name} must be between 1 and 1000`);
    out[name as Priority] = n;
  }
  const missing = PRIORITIES.filter((p) => out[p] === undefined);
  if (missing.length) throw new Error(`missing weight for ${missing.join(', ')}`);
  return out as Weights;
};

/** Splits `[host]:port` into the pieces `listen()` wants; an empty host means all interfaces. */
export function splitAddr(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  return { host: host === '' ? undefined : host, port: Number(addr.slice(i + 1)) };
}

/**
 * `host:port,host:port,…` (spaces around commas allowed); the empty string is the empty list. Each
 * entry is a host without spaces or colons and a port 1–65535; duplicates are refused.
 */
export const parseAddrList: Parser<string[]> = (raw) => {
  const s = raw.trim();
  if (s === '') return [];
  const out: string[] = [];
  for (const part of s.split(',').map((p) => p.trim())) {
    const m = /^([^\s:,]+):(\d{1,5})$/.exec(part);
    if (!m) throw new Error(`"${part}" is not host:port`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`port of "${part}" must be between 1 and 65535`);
    if (out.includes(part)) throw new Error(`"${part}" is listed twice`);
    out.push(part);
  }
  return out;
};
