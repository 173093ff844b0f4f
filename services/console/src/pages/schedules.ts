/** Schedules: the list with next ticks; one schedule's next fire times and latest tasks; pause, resume, trigger. */
import { call, get } from '../api.js';
import { fill, h } from '../dom.js';
import { badge, json, time } from '../format.js';
import { hrefFor, PageContext } from '../router.js';
import { dl, errorText, heading, link, notice, oneAtATime, refresher, table } from '../ui.js';
import type { ScheduleDetail } from '../../../client/types';

type Schedule = ScheduleDetail;

export async function schedulesPage(ctx: PageContext): Promise<void> {
  if (ctx.params[0]) return schedulePage(ctx, ctx.params[0]);
  const cursor = ctx.query.get('cursor') ?? '';
  const page = await get<{ schedules: Schedule[]; next_cursor: string | null }>('/schedules', { cursor, limit: 100 });
  const rows = page.schedules.map((sc) => [
    link(hrefFor('schedules', [sc.name]), sc.name),
    h('span', { class: 'mono' }, sc.cron),
    document.createTextNode(sc.timezone),
    document.createTextNode(sc.task.type),
    sc.paused ? badge('paused') : badge('active'),
    document.createTextNode(sc.paused ? '–' : time(sc.next_tick)),
    document.createTextNode(`${time(sc.last_tick)}${sc.last_outcome ? ` (${sc.last_outcome})` : ''}`),
  ]);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of schedules' }, page.next_cursor ? link(hrefFor('schedules', [], { cursor: page.next_cursor }), 'Next page', { rel: 'next' }) : null);
  fill(ctx.main, heading('Schedules'), table('Schedules by name', ['Name', 'Cron', 'Zone', 'Task type', 'State', 'Next tick', 'Last tick'], rows, 'No schedule yet.'), pager);
}

async function schedulePage(ctx: PageContext, name: string): Promise<void> {
  const msg = notice();
  const stale = refresher();
  const body = h('div', {});
  fill(ctx.main, h('p', {}, link(hrefFor('schedules'), '← Schedules')), heading(`Schedule ${name}`), msg.el, stale.el, body);
  const path = `/schedules/${encodeURIComponent(name)}`;
  const act = oneAtATime(async (what: 'pause' | 'resume' | 'trigger') => {
    try {
      if (what === 'trigger') {
        const r = await call<{ id: string }>('POST', `${path}/trigger`);
        msg.say(`Triggered: task ${r.body.id} created.`, 'ok');
      } else {
        await call('PATCH', path, { body: { paused: what === 'pause' } });
        msg.say(what === 'pause' ? 'Paused: it fires nothing until resumed.' : 'Resumed: ticks missed while paused are not run.', 'ok');
      }
    } catch (err) {
      msg.say(`Could not ${what}: ${errorText(err)}`, 'error');
    }
    // Read again to show what the action did; a read that fails says so rather than leave the state before it.
    await stale.run(load);
  });
  const load = async () => {
    const sc = await get<Schedule>(path, { preview: 5 });
    fill(
      body,
      h(
        'div',
        { class: 'toolbar' },
        h('span', { class: 'status-line' }, 'State ', badge(sc.paused ? 'paused' : 'active')),
        sc.paused ? h('button', { type: 'button', id: 'resume-schedule', onclick: () => void act('resume') }, 'Resume') : h('button', { type: 'button', id: 'pause-schedule', onclick: () => void act('pause') }, 'Pause'),
        h('button', { type: 'button', id: 'trigger-schedule', class: 'primary', onclick: () => void act('trigger') }, 'Trigger now'),
      ),
      dl([
        ['Cron', `${sc.cron} (${sc.timezone})`],
        ['Misfire', sc.misfire],
        ['Overlap', sc.overlap],
        ['Last tick', `${time(sc.last_tick)}${sc.last_outcome ? ` (${sc.last_outcome})` : ''}`],
      ]),
      h('h2', {}, 'Next ticks'),
      table('Next fire times', ['UTC', 'In the schedule\'s zone'], (sc.next_ticks ?? []).map((t) => [document.createTextNode(time(t.at)), document.createTextNode(t.local)]), 'No tick ahead.'),
      h('h2', {}, 'Latest tasks'),
      table('Latest tasks of this schedule', ['Task', 'Status', 'Tick', 'Created'], (sc.last_runs ?? []).map((r) => [
        link(hrefFor('tasks', [r.id]), r.id, { class: 'mono' }),
        badge(r.status),
        document.createTextNode(r.scheduled_for ? time(r.scheduled_for) : 'triggered'),
        document.createTextNode(time(r.created_at)),
      ]), 'No task yet.'),
      h('h2', {}, 'Task template'),
      h('pre', { class: 'json', tabindex: 0, 'aria-label': 'Task template' }, json(sc.task)),
    );
  };
  await load();
}
