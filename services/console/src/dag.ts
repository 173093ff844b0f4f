/**
 * A workflow's steps drawn as SVG: each step's layer is its longest path from a root, so every
 * edge points right; each node is a link to the step's task, coloured by status and labelled
 * with it in words too.
 */
import { s } from './dom.js';
import { hrefFor } from './router.js';
import type { WorkflowStep } from '../../client/types';

export type Step = Pick<WorkflowStep, 'key' | 'task_id' | 'status' | 'depends_on'>;

const NODE_W = 150;
const NODE_H = 44;
const GAP_X = 60;
const GAP_Y = 16;

/** Layer of each step: 0 for roots, else 1 + the deepest of its dependencies (the API refuses cycles). */
export function layers(steps: Step[]): Map<string, number> {
  const byKey = new Map(steps.map((st) => [st.key, st]));
  const layer = new Map<string, number>();
  const visit = (key: string, seen: Set<string>): number => {
    const known = layer.get(key);
    if (known !== undefined) return known;
    if (seen.has(key)) return 0;
    seen.add(key);
    const deps = byKey.get(key)?.depends_on ?? [];
    const l = deps.length === 0 ? 0 : 1 + Math.max(...deps.map((d) => visit(d, seen)));
    layer.set(key, l);
    return l;
  };
  for (const st of steps) visit(st.key, new Set());
  return layer;
}

export function dagSvg(steps: Step[]): SVGSVGElement {
  const layer = layers(steps);
  const columns: Step[][] = [];
  for (const st of steps) (columns[layer.get(st.key)!] ??= []).push(st);
  const pos = new Map<string, { x: number; y: number }>();
  columns.forEach((col, i) => col.forEach((st, j) => pos.set(st.key, { x: 10 + i * (NODE_W + GAP_X), y: 10 + j * (NODE_H + GAP_Y) })));
  const width = 20 + columns.length * (NODE_W + GAP_X) - GAP_X;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;

  const edges = steps.flatMap((st) =>
    st.depends_on.map((d) => {
      const a = pos.get(d);
      const b = pos.get(st.key)!;
      if (!a) return null;
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x;
      const y2 = b.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      return s('path', { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2}`, class: 'edge', 'marker-end': 'url(#arrow)' });
    }),
  );
  const nodes = steps.map((st) => {
    const p = pos.get(st.key)!;
    const label = st.key.length > 18 ? `${st.key.slice(0, 17)}…` : st.key;
    return s(
      'a',
      { href: hrefFor('tasks', [st.task_id]), class: `node st-${st.status}`, 'data-step': st.key },
      s('rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6 }),
      // One text element, so the link's name reads "key status" with the space kept.
      s('text', { x: p.x + 10, y: p.y + 18 }, s('tspan', { class: 'node-key' }, `${label} `), s('tspan', { x: p.x + 10, dy: 17, class: 'node-status' }, st.status)),
    );
  });
  return s(
    'svg',
    { class: 'dag', viewBox: `0 0 ${width} ${height}`, width, height, role: 'group', 'aria-label': `Workflow graph: ${steps.length} steps` },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }))),
    ...edges,
    ...nodes,
  );
}
