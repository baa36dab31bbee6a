import type { Command } from 'commander';
import { normalizeDomain } from '../../shared/index.js';
import type { QueueEntry, RecipientState } from '../../spool/index.js';
import { showMessage } from '../../ops/index.js';
import { CliError, configFor, globals, print, withSpool } from '../context.js';
import { describeDecision } from './shaping.js';

const STATES: readonly RecipientState[] = [
  'queued',
  'inflight',
  'delivered',
  'bounced',
  'expired',
  'suppressed',
  'cancelled',
];

function domainArg(text: string): string {
  const d = normalizeDomain(text);
  if (!d) throw new CliError(`invalid domain "${text}"`, 2);
  return d;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function entryJson(e: QueueEntry): Record<string, unknown> {
  return {
    id: e.messageId,
    recipientId: e.recipientId,
    recipient: e.address,
    domain: e.domain,
    state: e.state,
    attempts: e.attempts,
    nextAttemptAt: iso(e.nextAttemptAt),
    receivedAt: iso(e.receivedAt),
    lastReply: e.lastReply,
  };
}

export function register(program: Command): void {
  const queue = program.command('queue').description('the delivery queue');

  queue
    .command('list')
    .description('recipients waiting for delivery (or in a given state)')
    .option('--domain <domain>', 'only this destination domain')
    .option('--state <state>', `one of ${STATES.join(', ')}`)
    .option('--limit <n>', 'at most this many rows', '1000')
    .action(async (opts: { domain?: string; state?: string; limit: string }, cmd: Command) => {
      if (opts.state && !STATES.includes(opts.state as RecipientState))
        throw new CliError(`unknown state "${opts.state}"`, 2);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new CliError('--limit takes a positive whole number', 2);
      const rows = await withSpool(cmd, (spool) =>
        spool.queue.list({
          ...(opts.domain ? { domain: domainArg(opts.domain) } : {}),
          ...(opts.state ? { state: opts.state as RecipientState } : {}),
          limit,
        }),
      );
      if (globals(cmd).json) return rows.forEach((r) => print(JSON.stringify(entryJson(r))));
      if (rows.length === 0) return print('queue is empty');
      for (const r of rows) {
        print(
          `${r.messageId}  ${r.state.padEnd(9)} ${String(r.attempts).padStart(3)}  ${iso(r.nextAttemptAt)}  ${r.address}${r.lastReply ? `  (${r.lastReply})` : ''}`,
        );
      }
    });

  queue
    .command('show <id>')
    .description('one message: envelope, recipients and its delivery log')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const found = await withSpool(cmd, (spool) => showMessage(spool, id));
      if (!found) throw new CliError(`no message ${id}`);
      const { accountId: _account, stream: _stream, ...doc } = found;
      if (globals(cmd).json) return print(JSON.stringify(doc));
      print(
        `${doc.id}  from <${doc.mailFrom}>  ${doc.size} bytes  received ${doc.receivedAt}  ${doc.messageId ?? ''}`,
      );
      for (const r of doc.recipients)
        print(
          `  ${r.state.padEnd(9)} ${r.recipient}  attempts ${r.attempts}${r.lastReply ? `  ${r.lastReply}` : ''}`,
        );
      for (const e of doc.events) {
        print(
          `  ${e.at}  ${e.type}${e.mx ? `  ${e.mx}` : ''}${e.reply ? `  ${e.reply.code} ${e.reply.enhanced} ${e.reply.text}` : ''}`,
        );
      }
    });

  queue
    .command('retry [id]')
    .description('make a message (or every message to --domain) due now')
    .option('--domain <domain>', 'every queued recipient at this domain')
    .action(async (id: string | undefined, opts: { domain?: string }, cmd: Command) => {
      if (!id === !opts.domain) throw new CliError('give a message id or --domain', 2);
      const n = await withSpool(cmd, (spool) =>
        id ? spool.queue.retryMessage(id) : spool.queue.retryDomain(domainArg(opts.domain!)),
      );
      print(`${n} recipient${n === 1 ? '' : 's'} due now`);
    });

  queue
    .command('delete <id>')
    .description('cancel every undelivered recipient of a message')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const n = await withSpool(cmd, async (spool) => {
        if (!(await spool.messages.get(id))) throw new CliError(`no message ${id}`);
        return spool.queue.cancelMessage(id);
      });
      print(`${n} recipient${n === 1 ? '' : 's'} cancelled`);
    });

  queue
    .command('suspend <domain>')
    .description('hold deliveries to a domain until resumed (the daemon stops within a second)')
    .option('--reason <text>', 'why, for the record', '')
    .action(async (domain: string, opts: { reason: string }, cmd: Command) => {
      const d = domainArg(domain);
      await withSpool(cmd, (spool) => spool.queue.suspend(d, opts.reason));
      print(`deliveries to ${d} suspended`);
    });

  queue
    .command('resume <domain>')
    .description('resume deliveries to a suspended domain')
    .action(async (domain: string, _opts: unknown, cmd: Command) => {
      const d = domainArg(domain);
      const was = await withSpool(cmd, (spool) => spool.queue.resume(d));
      if (!was) throw new CliError(`${d} was not suspended`);
      print(`deliveries to ${d} resumed`);
    });

  queue
    .command('stats')
    .description('recipients by state, and the queue per destination domain')
    .action(async (_opts: unknown, cmd: Command) => {
      const { counts, domains, suspended, decisions } = await withSpool(cmd, async (spool) => ({
        counts: await spool.queue.counts(),
        domains: await spool.queue.stats(),
        suspended: await spool.queue.suspended(),
        decisions: await spool.queue.shapingDecisions(),
      }));
      const now = Date.now();
      const delivery = configFor(cmd).delivery;
      const shaping = decisions
        .map((d) => describeDecision(delivery, d, now))
        .filter((r) => r.phase !== 'done');
      if (globals(cmd).json) {
        print(
          JSON.stringify({
            counts,
            suspended,
            shaping,
            domains: domains.map((d) => ({
              ...d,
              oldestSeconds: Math.round((now - d.oldestReceivedAt) / 1000),
            })),
          }),
        );
        return;
      }
      print(STATES.map((s) => `${s} ${counts[s]}`).join('  '));
      for (const d of domains) {
        print(
          `  ${d.domain.padEnd(30)} queued ${d.queued}  in flight ${d.inflight}  oldest ${Math.round((now - d.oldestReceivedAt) / 1000)}s${suspended.includes(d.domain) ? '  (suspended)' : ''}`,
        );
      }
      for (const r of shaping)
        print(
          `  shaping ${r.destination}: ${r.phase === 'action' ? `${r.action}, ${r.actionLeftSeconds}s left` : 'ramping up'}, connections ${r.maxConnections}/${r.configuredMaxConnections}, rate ${r.rate} (rule ${r.rule})`,
        );
    });
}
