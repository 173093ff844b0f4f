/** Admin (admin keys only): tenants with their limits and usage; keys: create (secret shown once), revoke. */
import { fill, h } from '../dom.js';
import { PageContext } from '../router.js';
import { heading } from '../ui.js';

export async function adminPage(ctx: PageContext): Promise<void> {
  if (!ctx.isAdmin) {
    fill(ctx.main, heading('Admin'), h('p', { class: 'notice error', role: 'alert' }, 'Only an admin key may see this page.'));
    return;
  }
  fill(ctx.main, heading('Admin'), h('p', {}, 'Tenants and keys are managed with the CLI for now.'));
}
