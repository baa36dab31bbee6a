import type { Command } from 'commander';
import type { Config } from '../../config/index.js';
import { decisionState, resolveShaping, shapedBy, splitPoolKey, type Shaping } from '../../queue/index.js';
import { normalizeDomain } from '../../shared/index.js';
import type { ShapingDecision } from '../../spool/index.js';
import { CliError, configFor, globals, print, withSpool } from '../context.js';

/**
 * A destination as the queue keys it: "domain:example.com" or "mx:google.com", with "@SOURCE"
 * when sent from an [[egress]] source.
 */
function destinationArg(text: string): string {
  const { destination, egress } = splitPoolKey(text);
  const m = /^(domain|mx):(.+)$/.exec(destination);
  const name = normalizeDomain(m ? m[2]! : destination);
  if (!name || egress === '')
    throw new CliError(
      `invalid destination "${text}" (a domain, domain:NAME or mx:SUFFIX, then @SOURCE if any)`,
      2,
    );
  return `${m ? m[1] : 'domain'}:${name}${egress === null ? '' : `@${egress}`}`;
}

function baseOf(delivery: Config['delivery'], key: string): Shaping {
  const { destination } = splitPoolKey(key);
  const name = destination.slice(destination.indexOf(':') + 1);
  return destination.startsWith('mx:')
    ? resolveShaping(delivery, '', [name]).shaping
    : resolveShaping(delivery, name, []).shaping;
}

const rateText = (perSecond: number): string =>
  !Number.isFinite(perSecond)
    ? 'unlimited'
    : perSecond >= 1
      ? `${Math.round(perSecond * 10) / 10}/s`
      : `${Math.round(perSecond * 600) / 10}/min`;

function seconds(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${s % 60}s`
      : `${s}s`;
}

/** One decision as status shows it, limits computed from the configured shaping. */
export function describeDecision(delivery: Config['delivery'], d: ShapingDecision, now: number) {
  const base = baseOf(delivery, d.destination);
  const state = decisionState(d, now, base.ratePerSecond);
  const limits = shapedBy(base, d, now);
  return {
    destination: d.destination,
    rule: d.rule,
    action: d.action,
    phase: state.phase,
    reply: d.reply,
    startedAt: new Date(d.startedAt).toISOString(),
    until: new Date(d.until).toISOString(),
    actionLeftSeconds: Math.max(0, Math.round((d.until - now) / 1000)),
    nextChangeAt: state.nextChangeAt === null ? null : new Date(state.nextChangeAt).toISOString(),
    maxConnections: limits.maxConnections,
    configuredMaxConnections: base.maxConnections,
    rate: rateText(limits.ratePerSecond),
    configuredRate: rateText(base.ratePerSecond),
  };
}

export function register(program: Command): void {
  const shaping = program
    .command('shaping')
    .description("shaping rules' decisions: suspended and throttled destinations");

  shaping
    .command('status')
    .description('destinations a rule suspended or throttled, their limits now and the time left')
    .option('--all', 'also decisions that have ramped back to normal')
    .action(async (opts: { all?: boolean }, cmd: Command) => {
      const config = configFor(cmd);
      const decisions = await withSpool(cmd, (spool) => spool.queue.shapingDecisions());
      const now = Date.now();
      const rows = decisions
        .map((d) => describeDecision(config.delivery, d, now))
        .filter((r) => opts.all || r.phase !== 'done');
      if (globals(cmd).json) {
        print(JSON.stringify(rows));
        return;
      }
      if (rows.length === 0) {
        print('no destination is suspended or throttled');
        return;
      }
      for (const r of rows) {
        const left =
          r.phase === 'action'
            ? `${r.action} for ${seconds(r.actionLeftSeconds * 1000)} more`
            : r.phase === 'ramp'
              ? `ramping up, next step in ${seconds(Date.parse(r.nextChangeAt!) - now)}`
              : 'back to normal';
        print(
          `${r.destination}  ${left}  connections ${r.maxConnections}/${r.configuredMaxConnections}  rate ${r.rate} (configured ${r.configuredRate})  rule ${r.rule}`,
        );
        print(`    ${r.reply}`);
      }
    });

  shaping
    .command('reset <destination>')
    .description(
      "lift a rule's decision at once: the configured limits apply again (a domain, domain:NAME or mx:SUFFIX)",
    )
    .action(async (destination: string, _opts: unknown, cmd: Command) => {
      const d = destinationArg(destination);
      const was = await withSpool(cmd, (spool) => spool.queue.clearShapingDecision(d));
      if (!was) throw new CliError(`${d} has no shaping decision`);
      print(`${d}: configured limits apply again`);
    });
}
