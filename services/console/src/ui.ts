/** Small pieces every page uses: headings, messages, tables, labelled inputs. */
import { h } from './dom.js';
import { ApiError } from './api.js';

export function heading(text: string): HTMLElement {
  return h('h1', { id: 'page-title' }, text);
}

/** A live region: screen readers hear what happened after an action. */
export function notice(): { el: HTMLElement; say(text: string, kind?: 'ok' | 'error' | 'info'): void } {
  const el = h('p', { class: 'notice', role: 'status', 'aria-live': 'polite' });
  return {
    el,
    say(text, kind = 'info') {
      el.className = `notice ${kind}`;
      el.textContent = text;
    },
  };
}

/**
 * A page's periodic refresh: one that fails says so, and how old what is shown is, so the last
 * answer is not taken for the current state; the next that works clears it.
 */
export function refresher(): { el: HTMLElement; run(load: () => Promise<void>): Promise<void> } {
  const n = notice();
  let lastGood = new Date();
  return {
    el: n.el,
    async run(load) {
      try {
        await load();
        lastGood = new Date();
        n.say('');
      } catch (err) {
        n.say(`Could not refresh: ${errorText(err)}. What is shown is as of ${lastGood.toISOString().slice(11, 19)} UTC.`, 'error');
      }
    },
  };
}

/**
 * `fn`, but a call while an earlier one is still running does nothing: a double click sends an
 * action once (a second Trigger now would make a second task, a second Create key a key never shown).
 */
export function oneAtATime<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  let running = false;
  return async (...args) => {
    if (running) return;
    running = true;
    try {
      await fn(...args);
    } finally {
      running = false;
    }
  };
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.status} ${err.title}${err.detail ? `: ${err.detail}` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

export function table(caption: string, headers: string[], rows: Node[][], empty = 'Nothing to show.'): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption },
    h(
      'table',
      {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((c) => h('td', {}, c))))),
    ),
  );
}

export function field(label: string, input: HTMLInputElement | HTMLSelectElement): HTMLElement {
  const id = input.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

export function select(name: string, options: readonly string[], value: string, anyLabel = 'any'): HTMLSelectElement {
  const sel = h('select', { name });
  sel.append(h('option', { value: '' }, anyLabel), ...options.map((o) => h('option', { value: o }, o)));
  sel.value = value;
  return sel;
}

export function link(href: string, text: string, attrs: Record<string, string> = {}): HTMLAnchorElement {
  return h('a', { href, ...attrs }, text);
}

export function dl(pairs: [string, Node | string][]): HTMLElement {
  return h('dl', { class: 'facts' }, ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
