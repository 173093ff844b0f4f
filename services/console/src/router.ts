/** Hash routes (#/tasks/ID?…): the page never reloads, and the key never enters a URL. */
export interface PageContext {
  main: HTMLElement;
  /** The path's parts after the page name, decoded. */
  params: string[];
  query: URLSearchParams;
  isAdmin: boolean;
  /** Registers work to stop when the page is left (a poll, a timer). */
  onLeave(fn: () => void): void;
}

export type Page = (ctx: PageContext) => void | Promise<void>;

export function parseHash(hash: string): { page: string; params: string[]; query: URLSearchParams } {
  const raw = hash.replace(/^#\/?/, '');
  const [path = '', search = ''] = raw.split('?', 2);
  // A part that is not valid percent-encoding (a mistyped or cut link) is kept as it is: the page
  // then answers for it, where decodeURIComponent's URIError left the page before it up.
  const parts = path.split('/').filter(Boolean).map(decodePart);
  return { page: parts[0] ?? 'overview', params: parts.slice(1), query: new URLSearchParams(search) };
}

function decodePart(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

export function hrefFor(page: string, params: string[] = [], query: Record<string, string> = {}): string {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== ''));
  const qs = q.toString();
  return `#/${[page, ...params].map(encodeURIComponent).join('/')}${qs ? `?${qs}` : ''}`;
}

/** Repeats `fn` every `ms` until the page is left; one run at a time, errors shown by `fn` itself. */
export function poll(ctx: PageContext, ms: number, fn: () => Promise<void>): void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    if (stopped) return;
    await fn().catch(() => undefined);
    if (!stopped) timer = setTimeout(tick, ms);
  };
  ctx.onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });
  void tick();
}
