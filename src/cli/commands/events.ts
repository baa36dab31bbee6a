import type { Command } from 'commander';
import { maskAddresses } from '../../shared/index.js';
import { connectSpool, type EventEntry } from '../../spool/index.js';
import { CliError, configFor, globals, print } from '../context.js';

const FOLLOW_INTERVAL_MS = 500;

function eventJson(e: EventEntry): Record<string, unknown> {
  return {
    id: e.id,
    at: new Date(e.at).toISOString(),
    type: e.type,
    msgId: e.msgId,
    messageId: e.messageId,
    recipientId: e.recipientId,
    recipient: e.recipient,
    accountId: e.accountId,
    domain: e.domain,
    attempt: e.attempt,
    mx: e.mx,
    reply: e.reply,
    details: e.details,
  };
}

/**
 * One line for people. Recipients appear as `rcpt#<id> <domain>` and addresses in remote replies
 * are masked: this is the view left running in a terminal and pasted into tickets, so it follows
 * the rule of the logs. --json, for tools, carries the address.
 */
function eventLine(e: EventEntry): string {
  const parts = [new Date(e.at).toISOString(), String(e.id).padStart(6), e.msgId || '-', e.type.padEnd(17)];
  if (e.recipientId !== null) parts.push(`rcpt#${e.recipientId}`);
  if (e.domain) parts.push(e.domain);
  if (e.attempt !== null) parts.push(`attempt ${e.attempt}`);
  if (e.mx) parts.push(`mx ${e.mx}`);
  if (e.reply)
    parts.push(
      maskAddresses(`${e.reply.code} ${e.reply.enhanced} ${e.reply.text}`.replace(/\s+/g, ' ').trim()),
    );
  const d = e.details;
  if (d) {
    const facts = Object.entries(d)
      .filter(
        ([k, v]) =>
          k !== 'address' && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'),
      )
      .map(([k, v]) => `${k}=${maskAddresses(String(v))}`);
    if (facts.length > 0) parts.push(`(${facts.join(' ')})`);
  }
  return parts.join('  ');
}

export function register(program: Command): void {
  const events = program.command('events').description('the delivery log');

  events
    .command('tail')
    .description('the latest events of the delivery log, oldest first; --follow keeps printing new ones')
    .option('-f, --follow', 'keep printing events as they are recorded (Ctrl-C ends)')
    .option('--message <id>', 'only the events of this message (queue id)')
    .option('-n, --limit <n>', 'how many past events to print first', '20')
    .action(async (opts: { follow?: boolean; message?: string; limit: string }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 0) throw new CliError('--limit takes a whole number', 2);
      const json = globals(cmd).json ?? false;
      const show = (e: EventEntry): void => print(json ? JSON.stringify(eventJson(e)) : eventLine(e));
      const config = configFor(cmd);
      const spool = await connectSpool({ dataDir: config.data_dir, url: config.spool.url });
      try {
        const first = limit === 0 ? [] : await spool.events.tail(limit, opts.message);
        first.forEach(show);
        if (!opts.follow) return;
        let cursor = first.at(-1)?.id ?? (await spool.events.latestId());
        let stop: () => void = () => undefined;
        const stopped = new Promise<void>((resolve) => (stop = resolve));
        const onSignal = (): void => stop();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          for (;;) {
            const next = opts.message
              ? await spool.events.afterForMessage(opts.message, cursor, 1000)
              : await spool.events.after(cursor, 1000);
            next.forEach(show);
            if (next.length > 0) cursor = next.at(-1)!.id;
            if (next.length === 1000) continue;
            let timer: NodeJS.Timeout | undefined;
            const again = await Promise.race([
              new Promise<boolean>(
                (resolve) => (timer = setTimeout(() => resolve(true), FOLLOW_INTERVAL_MS)),
              ),
              stopped.then(() => false),
            ]);
            clearTimeout(timer);
            if (!again) break;
          }
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      } finally {
        await spool.close();
      }
    });
}
