/** The sign-in form: the key is checked against GET /queues, then kept in sessionStorage only. */
import { call, ApiError, session } from './api.js';
import { fill, h } from './dom.js';
import { heading, notice } from './ui.js';

export function renderSignIn(main: HTMLElement, reason: string, done: () => void): void {
  const input = h('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'api-key-help' });
  const msg = notice();
  if (reason) msg.say(reason, 'error');
  const form = h(
    'form',
    { class: 'sign-in', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'api-key' }, 'API key'), input),
    h('p', { id: 'api-key-help', class: 'help' }, 'A key of your tenant (tsk_…). It is kept in this browser tab only, and forgotten when the tab closes.'),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    msg.el,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) {
      msg.say('Enter an API key.', 'error');
      input.focus();
      return;
    }
    msg.say('Checking the key…');
    call('GET', '/queues', { key }).then(
      () => {
        session.signIn(key);
        input.value = '';
        done();
      },
      (err: unknown) => {
        const status = err instanceof ApiError ? err.status : 0;
        msg.say(status === 401 ? 'The API refused this key (401): it is unknown, revoked or expired.' : status === 403 ? 'This key may not read tasks (403).' : `Could not sign in: ${(err as Error).message}`, 'error');
        input.focus();
      },
    );
  });
  fill(main, h('section', { class: 'card narrow' }, heading('Sign in'), form));
  input.focus();
}
