/** `dlq list|redrive`: the dead-letter queue (the tenant's dead tasks) through the API. */
import { API_OPTIONS, apiClient } from './api-client';
import { parse, UsageError } from './args';
import type { Io } from './io';
import { mayHaveHappened } from './lost-answer';
import { json } from './output';
import { progressBar } from './progress-bar';
import { countDead, redrive } from './redrive';
import { FILTER_OPTIONS, parseFilter } from './task-filter';
import { LIST_MAX, printListing } from './task-listing';
import { cursorOption, parseCount } from './tasks-command';

const DLQ_FILTER = '[--type T] [--priority P] [--created-after TIME] [--created-before TIME] [--schedule NAME]';
export const DLQ_USAGE = `dlq list ${DLQ_FILTER} [--limit N] [--cursor C] [--json]
  dlq redrive ${DLQ_FILTER} [--limit N] [--dry-run] [--json]`;

const { status: _status, ...DEAD_FILTER_OPTIONS } = FILTER_OPTIONS;
/** Dead tasks per step of a redrive: each step is one bulk call of at most this many. */
const REDRIVE_STEP = 500;

export async function dlqCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'list': {
      const { values } = parse(rest, { ...DEAD_FILTER_OPTIONS, ...API_OPTIONS, limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
      const filter = { ...parseFilter(values), status: 'dead' };
      return printListing(apiClient(values, env), filter, { limit: parseCount(values.limit, '--limit', 50, LIST_MAX), cursor: cursorOption(values.cursor), json: values.json === true }, io);
    }
    case 'redrive': {
      const { values } = parse(rest, { ...DEAD_FILTER_OPTIONS, ...API_OPTIONS, limit: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
      const filter = parseFilter(values);
      const limit = values.limit === undefined ? null : parseCount(values.limit, '--limit', 0, 1_000_000_000);
      const client = apiClient(values, env);
      // The count first: what --dry-run reports, and the length of the progress bar.
      const count = await countDead(client, filter, limit);
      const counted = `${count.matched}${count.has_more ? '+' : ''}`;
      if (values['dry-run']) {
        if (values.json) io.out(json({ matched: count.matched, changed: 0, has_more: count.has_more, dry_run: true }));
        else io.out(`${counted} dead task(s) match; nothing was changed (--dry-run)\n`);
        return 0;
      }
      if (count.matched === 0) {
        if (values.json) io.out(json({ matched: 0, changed: 0, calls: 0, limited: false }));
        else io.out('no dead task matches; nothing to redrive\n');
        return 0;
      }
      const bar = count.matched > REDRIVE_STEP ? progressBar(io, 'redrive', count.matched, counted) : progressBar({ ...io, tty: false }, '', 0);
      let result;
      try {
        result = await redrive(client, filter, { limit, step: REDRIVE_STEP, progress: bar });
      } catch (err) {
        mayHaveHappened(err, 'dead tasks may have been queued again before it failed: see dlq list, and run redrive again to carry on (it takes only tasks still dead)');
      } finally {
        bar.end();
      }
      if (values.json) io.out(json(result));
      else {
        io.out(`${result.changed} dead task(s) queued again (${result.matched} matched in ${result.calls} call(s))\n`);
        if (result.limited) io.err(`stopped at --limit ${limit}; run again to carry on\n`);
        else if (result.changed < result.matched) io.err(`${result.matched - result.changed} matched task(s) were no longer dead when their turn came (another redrive or cancel took them)\n`);
      }
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? 'dlq needs a subcommand: list or redrive' : `unknown dlq subcommand ${JSON.stringify(sub)}`);
  }
}
