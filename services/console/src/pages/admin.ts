/** Admin (admin keys only): tenants with their limits and usage; keys: create (its text shown once), revoke. */
import { call, get } from '../api.js';
import { fill, h } from '../dom.js';
import { badge, time } from '../format.js';
import { PageContext } from '../router.js';
import { errorText, field, heading, notice, oneAtATime, table } from '../ui.js';
import type { AdminTenant, ApiKeyInfo } from '../../../client/types';

type Tenant = AdminTenant;
type Key = ApiKeyInfo;

const limit = (n: number | null | undefined) => (n === null || n === undefined ? 'default' : n === 0 ? 'unlimited' : String(n));

export async function adminPage(ctx: PageContext): Promise<void> {
  if (!ctx.isAdmin) {
    fill(ctx.main, heading('Admin'), h('p', { class: 'notice error', role: 'alert' }, 'Only an admin key may see this page.'));
    return;
  }
  const msg = notice();
  const secret = h('div', { id: 'new-key', 'aria-live': 'polite' });
  const tenants = h('div', {});
  const keys = h('div', {});
  const tenantIn = h('input', { id: 'key-tenant', type: 'text', required: true, autocomplete: 'off' });
  const descIn = h('input', { id: 'key-description', type: 'text', autocomplete: 'off' });
  const scopeBoxes = (['tasks:read', 'tasks:write', 'admin'] as const).map((sc) => ({ sc, box: h('input', { type: 'checkbox', value: sc, checked: sc !== 'admin' }) }));
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Create a key' },
    field('Tenant', tenantIn),
    field('Description', descIn),
    h('fieldset', { class: 'scopes' }, h('legend', {}, 'Scopes'), ...scopeBoxes.map(({ sc, box }) => h('label', { class: 'check' }, box, sc))),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create key')),
  );
  const create = oneAtATime(async () => {
    const scopes = scopeBoxes.filter((s) => s.box.checked).map((s) => s.sc);
    let k: Key & { key: string };
    try {
      k = (await call<Key & { key: string }>('POST', '/admin/keys', { body: { tenant: tenantIn.value.trim(), scopes, description: descIn.value } })).body;
    } catch (err) {
      msg.say(`Could not create the key: ${errorText(err)}`, 'error');
      return;
    }
    fill(secret, h('p', {}, `Key ${k.id} for tenant ${k.tenant} created. Copy it now: it is not shown again.`), h('code', { class: 'secret', id: 'new-key-text' }, k.key));
    msg.say('');
    await load();
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void create();
  });

  const revoke = oneAtATime(async (k: Key) => {
    try {
      await call('POST', `/admin/keys/${k.id}/revoke`);
      msg.say(`Key ${k.id} revoked: every API replica refuses it within a second.`, 'ok');
    } catch (err) {
      msg.say(`Could not revoke: ${errorText(err)}`, 'error');
    }
    await load();
  });

  const load = async () => {
    const [t, k] = await Promise.all([get<{ tenants: Tenant[] }>('/admin/tenants'), get<{ keys: Key[] }>('/admin/keys')]);
    fill(
      tenants,
      table('Tenants', ['Tenant', 'Unfinished', 'Max unfinished', 'Rate / s', 'Burst', 'Max running', 'Weight'], t.tenants.map((x) => [
        document.createTextNode(x.name),
        document.createTextNode(String(x.unfinished)),
        document.createTextNode(limit(x.effective.max_unfinished)),
        document.createTextNode(limit(x.effective.rate_limit)),
        document.createTextNode(limit(x.effective.burst)),
        document.createTextNode(limit(x.max_running)),
        document.createTextNode(x.weight === null ? 'default' : String(x.weight)),
      ])),
    );
    fill(
      keys,
      table('API keys', ['ID', 'Tenant', 'Scopes', 'State', 'Created', 'Last used', 'Description', ''], k.keys.map((x) => [
        h('span', { class: 'mono' }, x.id),
        document.createTextNode(x.tenant),
        document.createTextNode(x.scopes.join(', ')),
        badge(x.revoked_at ? 'revoked' : x.expires_at && Date.parse(x.expires_at) < Date.now() ? 'expired' : 'active'),
        document.createTextNode(time(x.created_at)),
        document.createTextNode(time(x.last_used_at)),
        document.createTextNode(x.description),
        x.revoked_at ? document.createTextNode('') : h('button', { type: 'button', 'aria-label': `Revoke key ${x.id}`, onclick: () => void revoke(x) }, 'Revoke'),
      ])),
    );
  };
  fill(ctx.main, heading('Admin'), h('h2', {}, 'Tenants'), tenants, h('h2', {}, 'API keys'), msg.el, form, secret, keys);
  await load();
}
