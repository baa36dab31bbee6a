import { readFileSync } from 'node:fs';
import { loadShapingRules, type Config } from '../config/index.js';
import { createSigner, resignMessage } from '../dkim/index.js';
import { createMxResolver, openSession, type DestinationResolver, type MxHost } from '../delivery/index.js';
import type { Logger } from '../logging/index.js';
import {
  compileRules,
  createAdaptive,
  createScheduler,
  warmupsOf,
  type Scheduler,
  type Throttle,
  type Transport,
} from '../queue/index.js';
import { ConfigError, errorMessage, type Clock } from '../shared/index.js';
import type { RecipientUpdate } from '../spool/index.js';
import { blockingEntry, createSuppressionPolicy } from '../suppression/index.js';
import type { Part } from './part.js';
import type { Storage } from './storage.js';

/** What the other parts use of the queue. */
export interface Queue {
  /** Looks for due work now (a message was just queued). */
  wake(): void;
}

export interface QueueDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly storage: Storage;
  /** Replaces DNS for outbound delivery (tests); default: MX lookups through [dns] servers. */
  readonly resolver?: DestinationResolver;
  /** Limits shared with the node's other workers, or with every node (Redis). */
  readonly throttle?: Throttle;
  /** False in a node's worker: its primary has recovered earlier runs' leases. */
  readonly recover?: boolean;
}

const OUTCOME_OF_STATE: Record<string, string> = {
  delivered: 'delivered',
  queued: 'deferred',
  bounced: 'bounced',
  expired: 'expired',
  suppressed: 'suppressed',
  cancelled: 'cancelled',
};

/** The outbound side of the queue: DNS/routes and SMTP sessions from src/delivery. */
function createTransport(
  config: Config,
  resolver: DestinationResolver,
  resign: (message: Buffer) => Promise<Buffer>,
): Transport {
  const credentials = new Map<string, { user: string; pass: string }>();
  for (const [domain, route] of Object.entries(config.routes)) {
    if (!route.auth_user) continue;
    let pass: string;
    try {
      pass = readFileSync(route.auth_password_file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(
        'PETREL_CONFIG_INVALID',
        `routes.${domain}.auth_password_file: cannot read: ${errorMessage(err)}`,
      );
    }
    credentials.set(domain, { user: route.auth_user, pass });
  }
  const sources = new Map(config.egress.map((e) => [e.name, e]));
  return {
    resolve: (domain) => resolver.resolve(domain),
    open: (domain, hosts, shaping, signal) => {
      const auth = credentials.get(domain);
      const source = shaping.egress === null ? undefined : sources.get(shaping.egress);
      // The hosts came from this resolver, so they are MxHosts.
      return openSession(hosts as readonly MxHost[], {
        hostname: source?.ehlo ?? config.hostname,
        ...(source ? { localAddress: source.local_address } : {}),
        tls: shaping.tls,
        signal,
        resign,
        ...(auth ? { auth } : {}),
      });
    },
  };
}

/**
 * The scheduler, its outbound transport, and the watch on the database that picks up what the
 * CLI commits. Reloads shaping, the drain deadline and the suppression thresholds for bounces
 * during delivery; DNS, routes, the MX port and the poll interval are fixed at start.
 */
export function createQueue(config: Config, deps: QueueDeps): Part<Queue> {
  const { logger, clock, storage } = deps;
  let live = config;
  let scheduler: Scheduler | null = null;
  let watcher: NodeJS.Timeout | null = null;

  // A 5xx during delivery is a bounce as much as a DSN is: same classifier, same policy.
  const policy = createSuppressionPolicy({
    stores: storage.spool,
    settings: () => live.suppression,
    now: () => clock.now(),
    onCounted: (category, reason) => storage.metrics.bounces.inc({ category, reason }),
  });

  const onTransition = (u: RecipientUpdate): void => {
    const label = OUTCOME_OF_STATE[u.state];
    if (label) storage.metrics.recipientOutcomes.inc({ outcome: label });
  };

  return {
    reloadable: [
      'delivery.default',
      'delivery.domain',
      'delivery.mx',
      'delivery.drain_timeout',
      'delivery.delay_warning',
      'suppression',
    ],
    async start() {
      const { spool, metrics, verp } = storage;
      const resolver =
        deps.resolver ??
        createMxResolver({
          servers: config.dns.servers,
          routes: config.routes,
          port: config.delivery.mx_port,
        });
      const signer = createSigner({ clock });
      // Accounts' own sources, re-read whenever the CLI commits (user set --egress).
      const sourceNames = new Set(config.egress.map((e) => e.name));
      const warned = new Set<string>();
      let accountEgress = new Map<number, string>();
      const readAccountEgress = async (): Promise<void> => {
        const next = new Map<number, string>();
        for (const a of await spool.accounts.list()) {
          const name = a.limits.egress;
          if (name === null) continue;
          if (sourceNames.has(name)) next.set(a.id, name);
          else if (!warned.has(`${a.id}:${name}`)) {
            warned.add(`${a.id}:${name}`);
            logger.warn(
              { accountId: a.id, egress: name },
              'the account names an egress source the config does not have; its mail goes out as if it named none',
            );
          }
        }
        accountEgress = next;
      };
      await readAccountEgress();
      const adaptive = createAdaptive(
        compileRules(loadShapingRules(config.shaping), config.shaping.ramp),
        clock,
      );
      const s = createScheduler({
        spool,
        // A message downgraded to 7 bits is signed again with the keys that signed it.
        transport: createTransport(config, resolver, (message) =>
          resignMessage(message, signer, (domain) => storage.keys.keysFor(domain)),
        ),
        delivery: config.delivery,
        hostname: config.hostname,
        logger: logger.child({ component: 'queue' }),
        clock,
        pollIntervalMs: config.delivery.poll_interval,
        holder: storage.holder,
        leaseMs: config.delivery.lease_time,
        // A worker's primary has recovered earlier runs' leases; the other workers' are live.
        recover: deps.recover ?? true,
        nodeTimeoutMs: config.cluster.node_timeout,
        ...(deps.throttle ? { throttle: deps.throttle } : {}),
        returnPath: (id) => verp.returnPath(id),
        suppressed: async (accountId, address, stream) =>
          (await blockingEntry(spool.suppressions, accountId, address, stream))?.reason ?? null,
        onAttempt: (seconds) => metrics.deliveryAttemptSeconds.observe(seconds),
        onTransition,
        planBounce: (rcpt, outcome) => policy.planReply(rcpt, outcome.reply),
        adaptive,
        pausedAccounts: () => storage.pausedAccounts(),
        accountEgress: (id) => (id === null ? null : (accountEgress.get(id) ?? null)),
        warmups: warmupsOf(config.egress),
        onShapingDecision: (d, job) => {
          metrics.shapingDecisions.inc({ rule: d.rule, action: d.action });
          void spool.events
            .record({
              type: 'shaping',
              msgId: job.messageId,
              recipientId: null,
              accountId: job.accountId,
              domain: job.domain,
              details: {
                destination: d.destination,
                rule: d.rule,
                action: d.action,
                until: new Date(d.until).toISOString(),
                reply: d.reply,
              },
            })
            .catch((err: unknown) => logger.error({ err }, 'shaping event not recorded'));
        },
      });
      scheduler = s;
      await s.start();
      // The CLI changes keys, accounts and suspensions in the database; data_version tells
      // this connection when another one committed, so changes apply within a second.
      let seen = await spool.dataVersion();
      watcher = setInterval(() => {
        void (async () => {
          const now = await spool.dataVersion();
          if (now === seen) return;
          seen = now;
          // Erasure fences and cancellations come from the CLI: one check for every lease.
          await s.checkFences();
          await storage.refresh();
          await readAccountEgress();
          s.wake();
        })().catch((err: unknown) => logger.error({ err }, 'database watch failed'));
      }, 1000);
      watcher.unref();
      return { wake: () => s.wake() };
    },
    async reload(next) {
      scheduler?.setDelivery(next.delivery);
      live = next;
    },
    async close() {
      if (watcher) clearInterval(watcher);
      await scheduler?.stop(live.delivery.drain_timeout);
    },
  };
}
