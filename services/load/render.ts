/** The printed summary: the Go README's table (Markdown, so it pastes into a README) and the details under it. */
import type { JsonSpread, LoadResult } from './result';
import { formatMs, formatPct, formatRate } from './stats';

export const TABLE_COLUMNS = ['Burst', 'Workers × Slots', 'In-flight', 'Drain Time', 'Throughput', 'p95 Run', 'p95 Wait', 'Fail %', 'Retries', 'Reaped'] as const;

export function tableCells(r: LoadResult): string[] {
  const t = r.table;
  if (!t) return [String(r.client.accepted), '?', '–', '–', '–', '–', '–', '–', '–', '–'];
  return [
    String(t.burst),
    `${t.workers} × ${t.slots ?? '?'}`,
    String(t.in_flight),
    formatMs(t.drain_time_ms),
    formatRate(t.throughput_per_s),
    formatMs(t.run_ms.p95),
    formatMs(t.wait_ms.p95),
    formatPct(t.fail_pct),
    String(t.retries),
    String(t.reaped),
  ];
}

/** A Markdown table with padded columns; numbers right-aligned. */
export function markdownTable(header: readonly string[], rows: string[][]): string {
  const width = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? '')), 3));
  const pad = (s: string, w: number, right: boolean) => (right ? ' '.repeat(w - width(s)) + s : s + ' '.repeat(w - width(s)));
  const line = (cells: readonly string[], right: boolean) => `| ${cells.map((c, i) => pad(c, widths[i]!, right && i !== 1)).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 1 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`;
  return [line(header, false), rule, ...rows.map((r) => line(r, true))].join('\n');
}

function spreadLine(s: JsonSpread): string {
  if (!s.count) return 'none';
  return `p50 ${formatMs(s.p50)} · p95 ${formatMs(s.p95)} · p99 ${formatMs(s.p99)} · max ${formatMs(s.max)}`;
}

function counts(m: Record<string, number>, prefix = ''): string {
  const keys = Object.keys(m).sort();
  return keys.length ? keys.map((k) => `${prefix}${k} ×${m[k]}`).join(', ') : 'none';
}

export function renderText(r: LoadResult): string {
  const c = r.client;
  const mode = r.options.rate !== null ? `open loop at ${r.options.rate}/s, at most ${r.options.w} in flight` : `closed loop, ${r.options.w} clients`;
  const via = r.options.batch !== null ? `POST /tasks/batch × ${r.options.batch}` : 'POST /tasks';
  const out: string[] = [];
  out.push(`Load run ${r.run_id} → ${r.url} (${mode}, ${via})`);
  out.push('');
  out.push(markdownTable(TABLE_COLUMNS, [tableCells(r)]));
  out.push('');
  const label = (s: string) => s.padEnd(10);
  if (r.tasks) {
    out.push(`${label('Tasks')}${r.tasks.accepted} accepted: ${r.tasks.final} final (${r.tasks.succeeded} succeeded, ${r.tasks.dead} dead), ${r.tasks.unfinished} not final`);
  } else {
    out.push(`${label('Tasks')}${c.accepted} accepted (the tasks were not read back)`);
  }
  if (r.table) {
    out.push(`${label('Run')}${spreadLine(r.table.run_ms)} (${r.table.runs} attempts: ${counts(r.table.run_outcomes)})`);
    out.push(`${label('Wait')}${spreadLine(r.table.wait_ms)} (created → first attempt started)`);
    out.push(`${label('Retries')}${r.table.retries} failed attempts retried; ${r.table.extra_attempts} attempts after the first in all; ${r.table.reaped} reaped`);
  }
  out.push(`${label('Sent')}${c.tasks_sent} tasks in ${c.requests} requests over ${formatMs(c.elapsed_ms)} (${formatRate(c.sent_per_s)} sent, ${formatRate(c.accepted_per_s)} accepted)${c.rejected ? `; ${c.rejected} rejected` : ''}`);
  out.push(`${label('HTTP')}${counts(c.http_status)}${Object.keys(c.item_status).length ? `; batch items ${counts(c.item_status)}` : ''}`);
  out.push(`${label('Latency')}${spreadLine(c.latency_ms)} (client, per request)`);
  const e = c.errors;
  out.push(
    `${label('Errors')}${e.total ? `connection ${e.connection}, timeout ${e.timeout}, 4xx ${e.http_4xx}, 5xx ${e.http_5xx}${e.unexpected ? `, unexpected ${e.unexpected}` : ''}` : 'none'}`,
  );
  for (const s of c.error_samples) out.push(`${label('')}e.g. ${s}`);
  if (r.notes.length) {
    out.push('Notes');
    for (const n of r.notes) out.push(`  - ${n}`);
  }
  return out.join('\n');
}
