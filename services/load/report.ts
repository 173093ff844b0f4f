/**
 * -report FILE: one self-contained HTML page (inline SVG and an inline <style>, no scripts, no
 * external resources): the table, throughput (accepted/s and finished/s) and queue depth
 * (waiting = accepted − started) over time, and latency percentiles.
 */
import type { LoadResult } from './result';
import { TABLE_COLUMNS, tableCells } from './render';
import { formatMs } from './stats';
import type { Timeline } from './summary';

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

export interface TimeSeries {
  /** Bin width in ms. */
  binMs: number;
  accepted: Series;
  finished: Series;
  waiting: Series;
}

const BIN_CHOICES = [10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000];

/** The smallest bin from BIN_CHOICES that keeps the span within maxBins bins. */
export function chooseBin(spanMs: number, maxBins = 80): number {
  for (const b of BIN_CHOICES) if (spanMs / b <= maxBins) return b;
  return BIN_CHOICES[BIN_CHOICES.length - 1]!;
}

/** Bins the timeline (x = seconds since the first task was created): rates per second and the depth at each bin's end. */
export function timeSeries(t: Timeline): TimeSeries | null {
  if (!t.created.length) return null;
  // Loops, not Math.min(...xs): a spread of a million arguments overflows the stack.
  let t0 = Infinity;
  for (const x of t.created) if (x < t0) t0 = x;
  let tEnd = t0;
  for (const xs of [t.created, t.started, t.finished]) for (const x of xs) if (x > tEnd) tEnd = x;
  const binMs = chooseBin(tEnd - t0);
  const bins = Math.max(1, Math.ceil((tEnd - t0) / binMs) + (tEnd === t0 ? 1 : 0));
  const hist = (xs: number[]) => {
    const h = new Array<number>(bins).fill(0);
    for (const x of xs) h[Math.min(bins - 1, Math.max(0, Math.floor((x - t0) / binMs)))]!++;
    return h;
  };
  const acc = hist(t.created);
  const fin = hist(t.finished);
  const sta = hist(t.started);
  const perS = 1000 / binMs;
  const accepted: [number, number][] = [];
  const finished: [number, number][] = [];
  const waiting: [number, number][] = [[0, 0]];
  let a = 0;
  let s = 0;
  for (let i = 0; i < bins; i++) {
    const mid = ((i + 0.5) * binMs) / 1000;
    accepted.push([mid, acc[i]! * perS]);
    finished.push([mid, fin[i]! * perS]);
    a += acc[i]!;
    s += sta[i]!;
    waiting.push([((i + 1) * binMs) / 1000, a - s]);
  }
  return {
    binMs,
    accepted: { name: 'accepted/s', color: '#2563eb', points: accepted },
    finished: { name: 'finished/s', color: '#16a34a', points: finished },
    waiting: { name: 'waiting (accepted − started)', color: '#d97706', points: waiting },
  };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}

/** 1, 2, 5 × 10^k steps giving about `count` ticks up to max. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

const W = 760;
const H = 260;
const M = { left: 56, right: 16, top: 28, bottom: 40 };

function fmtTick(v: number): string {
  if (v >= 1000) return `${Number((v / 1000).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

export function lineChart(title: string, series: Series[], xLabel: string, yLabel: string): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xt = niceTicks(Math.max(...xs, 0.001));
  const yt = niceTicks(Math.max(...ys, 0));
  const xMax = xt[xt.length - 1]!;
  const yMax = yt[yt.length - 1]!;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const X = (x: number) => M.left + (x / xMax) * pw;
  const Y = (y: number) => M.top + ph - (y / yMax) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, sans-serif" role="img" aria-label="${escapeHtml(title)}">`);
  parts.push(`<text x="${M.left}" y="18" class="title" font-size="13" font-weight="600">${escapeHtml(title)}</text>`);
  for (const y of yt) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" class="grid" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${M.left - 6}" y="${(Y(y) + 4).toFixed(1)}" text-anchor="end" class="tick" font-size="11" fill="#4b5563">${fmtTick(y)}</text>`);
  }
  for (const x of xt) parts.push(`<text x="${X(x).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle" class="tick" font-size="11" fill="#4b5563">${fmtTick(x)}</text>`);
  parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + ph}" y2="${M.top + ph}" class="axis" stroke="#6b7280"/>`);
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}" class="axis" stroke="#6b7280"/>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 6}" text-anchor="middle" class="label" font-size="12" fill="#374151">${escapeHtml(xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" class="label" font-size="12" fill="#374151">${escapeHtml(yLabel)}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts}"><title>${escapeHtml(s.name)}</title></polyline>`);
    const lx = W - M.right - 220;
    const ly = M.top + 4 + i * 16;
    parts.push(`<rect x="${lx}" y="${ly}" width="12" height="4" fill="${s.color}"/><text x="${lx + 18}" y="${ly + 6}" class="legend" font-size="12">${escapeHtml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export interface BarGroup {
  name: string;
  values: { label: string; value: number | null }[];
}

export function barChart(title: string, groups: BarGroup[], yLabel: string): string {
  const colors = ['#60a5fa', '#2563eb', '#1e3a8a'];
  const all = groups.flatMap((g) => g.values.map((v) => v.value ?? 0));
  const yt = niceTicks(Math.max(...all, 0));
  const yMax = yt[yt.length - 1]!;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const Y = (y: number) => M.top + ph - (y / yMax) * ph;
  const gw = pw / Math.max(1, groups.length);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, sans-serif" role="img" aria-label="${escapeHtml(title)}">`);
  parts.push(`<text x="${M.left}" y="18" class="title" font-size="13" font-weight="600">${escapeHtml(title)}</text>`);
  for (const y of yt) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" class="grid" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${M.left - 6}" y="${(Y(y) + 4).toFixed(1)}" text-anchor="end" class="tick" font-size="11" fill="#4b5563">${fmtTick(y)}</text>`);
  }
  parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + ph}" y2="${M.top + ph}" class="axis" stroke="#6b7280"/>`);
  parts.push(`<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" class="label" font-size="12" fill="#374151">${escapeHtml(yLabel)}</text>`);
  groups.forEach((g, gi) => {
    const bw = Math.min(48, (gw - 24) / Math.max(1, g.values.length));
    const start = M.left + gi * gw + (gw - bw * g.values.length) / 2;
    g.values.forEach((v, vi) => {
      const x = start + vi * bw;
      const val = v.value ?? 0;
      const y = Y(val);
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 4).toFixed(1)}" height="${(M.top + ph - y).toFixed(1)}" fill="${colors[vi % colors.length]}"><title>${escapeHtml(`${g.name} ${v.label}: ${formatMs(v.value)}`)}</title></rect>`);
      parts.push(`<text x="${(x + (bw - 4) / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" class="value" font-size="10" fill="#111827">${escapeHtml(v.value === null ? '–' : formatMs(v.value))}</text>`);
      parts.push(`<text x="${(x + (bw - 4) / 2).toFixed(1)}" y="${M.top + ph + 14}" text-anchor="middle" class="tick" font-size="11" fill="#4b5563">${escapeHtml(v.label)}</text>`);
    });
    parts.push(`<text x="${(M.left + gi * gw + gw / 2).toFixed(1)}" y="${H - 8}" text-anchor="middle" class="label" font-size="12" fill="#374151">${escapeHtml(g.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 820px; color: #111827; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border: 1px solid #d1d5db; padding: 4px 8px; text-align: right; }
th { background: #f3f4f6; } td.l, th.l { text-align: left; }
code { background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
svg { display: block; margin: 8px 0; max-width: 100%; height: auto; }
svg .title { font-weight: 600; font-size: 13px; } svg .tick { font-size: 11px; fill: #4b5563; }
svg .label { font-size: 12px; fill: #374151; } svg .legend { font-size: 12px; } svg .value { font-size: 10px; fill: #111827; }
svg .grid { stroke: #e5e7eb; } svg .axis { stroke: #6b7280; }
.note { color: #92400e; }
`;

function htmlTable(header: readonly string[], rows: string[][], leftCols: number[] = []): string {
  const cls = (i: number) => (leftCols.includes(i) ? ' class="l"' : '');
  return `<table><thead><tr>${header.map((h, i) => `<th${cls(i)}>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${cls(i)}>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

export function renderHtml(r: LoadResult, timeline: Timeline | null): string {
  const ts = timeline ? timeSeries(timeline) : null;
  const c = r.client;
  const body: string[] = [];
  body.push(`<h1>Load run <code>${escapeHtml(r.run_id)}</code></h1>`);
  body.push(
    `<p>${escapeHtml(r.url)} · ${escapeHtml(r.started_at)} → ${escapeHtml(r.ended_at)} · ${
      r.options.rate !== null ? `open loop ${r.options.rate}/s, ≤ ${r.options.w} in flight` : `closed loop, ${r.options.w} clients`
    }${r.options.batch !== null ? ` · batches of ${r.options.batch}` : ''} · ${c.tasks_sent} tasks sent, ${c.accepted} accepted</p>`,
  );
  body.push(htmlTable(TABLE_COLUMNS, [tableCells(r)], [1]));
  if (r.notes.length) body.push(`<ul>${r.notes.map((n) => `<li class="note">${escapeHtml(n)}</li>`).join('')}</ul>`);

  body.push('<h2>Throughput</h2>');
  if (ts) {
    body.push(lineChart(`Tasks per second (bins of ${formatMs(ts.binMs)})`, [ts.accepted, ts.finished], 'seconds since the first task was created', 'tasks / s'));
    body.push('<h2>Queue depth</h2>');
    body.push(lineChart('Waiting tasks (accepted − started)', [ts.waiting], 'seconds since the first task was created', 'tasks'));
  } else {
    body.push('<p>The tasks were not read back, so there is no time series.</p>');
  }

  body.push('<h2>Latency percentiles</h2>');
  const groups: BarGroup[] = [{ name: 'HTTP request (client)', values: pcts(c.latency_ms) }];
  if (r.table) {
    groups.push({ name: 'Wait (created → first start)', values: pcts(r.table.wait_ms) });
    groups.push({ name: 'Run (task_runs.duration_ms)', values: pcts(r.table.run_ms) });
  }
  body.push(barChart('p50 / p95 / p99', groups, 'ms'));
  const rows = groups.map((g) => [g.name, ...g.values.map((v) => formatMs(v.value))]);
  body.push(htmlTable(['', 'p50', 'p95', 'p99'], rows, [0]));

  body.push('<h2>Requests</h2>');
  const statusRows = Object.entries(c.http_status).map(([k, v]) => [`HTTP ${k}`, String(v)]);
  for (const [k, v] of Object.entries(c.item_status)) statusRows.push([`batch item ${k}`, String(v)]);
  const e = c.errors;
  statusRows.push(['connection errors', String(e.connection)], ['timeouts', String(e.timeout)], ['4xx', String(e.http_4xx)], ['5xx', String(e.http_5xx)]);
  body.push(htmlTable(['', 'count'], statusRows, [0]));
  if (c.error_samples.length) body.push(`<ul>${c.error_samples.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>`);

  body.push('<h2>Result (JSON)</h2>');
  body.push(`<pre>${escapeHtml(JSON.stringify(r, null, 2))}</pre>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Load run ${escapeHtml(r.run_id)}</title>
<style>${STYLE}</style>
</head>
<body>
${body.join('\n')}
</body>
</html>
`;
}

function pcts(s: { p50: number | null; p95: number | null; p99: number | null }): BarGroup['values'] {
  return [
    { label: 'p50', value: s.p50 },
    { label: 'p95', value: s.p95 },
    { label: 'p99', value: s.p99 },
  ];
}
