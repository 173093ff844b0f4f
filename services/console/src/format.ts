/** How values read on a page: times, durations, statuses (a word as well as a colour). */
import { h } from './dom.js';

export function time(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function shortId(id: string): string {
  return id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

/** A status as a badge: its colour comes from a class, and its name is always written out. */
export function badge(status: string): HTMLElement {
  return h('span', { class: `badge st-${status.replace(/[^a-z_]/g, '')}` }, status);
}

export function json(value: unknown): string {
  return value === undefined ? '–' : JSON.stringify(value, null, 2);
}

/** A datetime-local input's value (local time) as RFC 3339 in UTC; '' stays ''. */
export function localToIso(v: string): string {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export const FINAL = new Set(['succeeded', 'dead', 'cancelled']);
export const PRIORITIES = ['critical', 'high', 'default', 'low'] as const;
export const STATUSES = ['scheduled', 'queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'] as const;
