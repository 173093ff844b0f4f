/** A small SVG line of the last samples; its title says what it shows, for those who cannot see it. */
import { s } from './dom.js';

const W = 120;
const H = 28;

export function sparkline(values: number[], label: string): SVGSVGElement {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? W / (values.length - 1) : W;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`).join(' ');
  const last = values.length ? values[values.length - 1] : 0;
  return s(
    'svg',
    { class: 'spark', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': `${label}: now ${last}, peak ${max}` },
    s('title', {}, `${label}: now ${last}, peak ${max}`),
    s('line', { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: 'spark-base' }),
    values.length > 1 ? s('polyline', { points, class: 'spark-line', fill: 'none' }) : null,
  );
}
