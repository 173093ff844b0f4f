/** Entry: sign in, then the page the hash names; pages are left (their polls stopped) on every change. */
import { call, session, whenUnauthorized } from './api.js';
import { dismissDialogs } from './bulk.js';
import { fill, h } from './dom.js';
import { Page, PageContext, parseHash } from './router.js';
import { renderSignIn } from './sign-in.js';
import { errorText } from './ui.js';
import { overviewPage } from './pages/overview.js';
import { tasksPage } from './pages/tasks.js';
import { taskPage } from './pages/task-detail.js';
import { deadLettersPage } from './pages/dead-letters.js';
import { workflowsPage } from './pages/workflows.js';
import { schedulesPage } from './pages/schedules.js';
import { adminPage } from './pages/admin.js';

const NAV: [string, string][] = [
  ['overview', 'Overview'],
  ['tasks', 'Tasks'],
  ['dead', 'Dead letters'],
  ['workflows', 'Workflows'],
  ['schedules', 'Schedules'],
];

const PAGES: Record<string, Page> = {
  overview: overviewPage,
  tasks: (ctx) => (ctx.params[0] ? taskPage(ctx) : tasksPage(ctx)),
  dead: deadLettersPage,
  workflows: workflowsPage,
  schedules: schedulesPage,
  admin: adminPage,
};

const main = document.getElementById('main') as HTMLElement;
const top = document.getElementById('top') as HTMLElement;
let leaving: (() => void)[] = [];
let isAdmin = false;
/** Routes rendered so far: the latest is the page shown. */
let routes = 0;

function leave(): void {
  for (const fn of leaving) fn();
  leaving = [];
  dismissDialogs();
}

function header(page: string): void {
  const links = [...NAV, ...(isAdmin ? [['admin', 'Admin'] as [string, string]] : [])].map(([id, label]) =>
    h('li', {}, h('a', { href: `#/${id}`, 'aria-current': id === page ? 'page' : null }, label)),
  );
  const signOut = h('button', { type: 'button', class: 'link-button', onclick: () => signOutNow('') }, 'Sign out');
  let tenant: HTMLElement | null = null;
  if (isAdmin) {
    const input = h('input', { id: 'acting-tenant', type: 'text', value: session.tenant(), placeholder: 'own', size: 10, autocomplete: 'off' });
    input.addEventListener('change', () => {
      session.setTenant(input.value.trim());
      route();
    });
    tenant = h('div', { class: 'tenant' }, h('label', { for: 'acting-tenant' }, 'Acting on tenant'), input);
  }
  fill(top, h('span', { class: 'brand' }, 'task-scheduler'), h('nav', { 'aria-label': 'Pages' }, h('ul', {}, ...links)), tenant, signOut);
}

function signOutNow(reason: string): void {
  leave();
  routes++;
  session.signOut();
  isAdmin = false;
  fill(top, h('span', { class: 'brand' }, 'task-scheduler'));
  renderSignIn(main, reason, () => void start());
}

async function route(): Promise<void> {
  leave();
  const shown = ++routes;
  const { page, params, query } = parseHash(location.hash);
  header(page);
  const render = PAGES[page];
  // Each page draws into a view of its own: one left while it still waited for its data draws into
  // a view no longer shown, never over the page that followed it, and its polls stop at once.
  const view = h('div', { class: 'view' });
  fill(main, view);
  const ctx: PageContext = { main: view, params, query, isAdmin, onLeave: (fn) => (shown === routes ? leaving.push(fn) : fn()) };
  fill(view, h('p', {}, 'Loading…'));
  try {
    if (!render) throw new Error(`There is no page "${page}".`);
    await render(ctx);
  } catch (err) {
    fill(view, h('h1', { id: 'page-title' }, 'Something went wrong'), h('p', { class: 'notice error', role: 'alert' }, errorText(err)));
  }
}

/** Whether the key is an admin key: only those may read GET /admin/tenants. */
async function checkAdmin(): Promise<boolean> {
  try {
    await call('GET', '/admin/tenants', { key: session.key() ?? '' });
    return true;
  } catch {
    return false;
  }
}

async function start(): Promise<void> {
  isAdmin = await checkAdmin();
  if (!location.hash) history.replaceState(null, '', '#/overview');
  await route();
  // Focus moves to the new page, so keyboard and screen-reader users start at its heading.
  main.focus();
}

whenUnauthorized(() => signOutNow('Your key was refused (401); sign in again.'));
window.addEventListener('hashchange', () => {
  if (session.key()) void route().then(() => main.focus());
});
if (session.key()) void start();
else signOutNow('');
