import type { Config } from './config/index.js';
import type { Logger } from './logging/index.js';
import { lockDataDir, openSpool, type DataDirLock, type Spool } from './spool/index.js';
import { createSubmissionService, type BoundListener, type SubmissionService } from './submission/index.js';
import { loadTlsMaterial } from './tls/index.js';
import { createScheduler, type Scheduler, type Transport } from './queue/index.js';
import { createMxResolver, openSession, type DestinationResolver, type MxHost } from './delivery/index.js';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname as machineName } from 'node:os';
import { ConfigError, errorMessage, systemClock, type Clock } from './shared/index.js';
import { createKeyCache, createKeyRing, createSigner, type DkimKey, type KeyRing } from './dkim/index.js';
import { createHttpService, type HttpService } from './http/index.js';
import { createInboundService, type InboundService } from './inbound/index.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { blockingEntry, createSuppressionPolicy } from './suppression/index.js';
import { createVerp } from './verp/index.js';
import { createWebhookDispatcher, loadWebhookTargets, type WebhookDispatcher } from './webhooks/index.js';
import { startRetention } from './privacy/index.js';
import type { Outcome } from './queue/index.js';
import type { RecipientUpdate } from './spool/index.js';

export interface AppDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Called when the storage fails so that further acceptance would be unsafe. */
  readonly onFatal?: (err: Error) => void;
  /** Replaces DNS for outbound delivery (tests); default: MX lookups through [dns] servers. */
  readonly resolver?: DestinationResolver;
}

/** The outbound side of the queue: DNS/routes and SMTP sessions from src/delivery. */
function createTransport(config: Config, resolver: DestinationResolver): Transport {
  const credentials = new Map<string, { user: string; pass: string }>();
  for (const [domain, route] of Object.entries(config.routes)) {
    if (!route.auth_user) continue;
    let pass: string;
    try {
      pass = readFileSync(route.auth_password_file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError('PETREL_CONFIG_INVALID', `routes.${domain}.auth_password_file: cannot read: ${errorMessage(err)}`);
    }
    credentials.set(domain, { user: route.auth_user, pass });
  }
  return {
    resolve: (domain) => resolver.resolve(domain),
    open: (domain, hosts, shaping, signal) => {
      const auth = credentials.get(domain);
      // The hosts came from this resolver, so they are MxHosts.
      return openSession(hosts as readonly MxHost[], {
        hostname: config.hostname,
        tls: shaping.tls,
        signal,
        ...(auth ? { auth } : {}),
      });
    },
  };
}

/** A whole Petrel, without touching `process`: tests run it in-process, main.ts runs it for real. */
export interface App {
  /** Opens the spool, then binds listeners; on failure closes what started and rethrows. */
  start(): Promise<BoundListener[]>;
  /**
   * SIGHUP: applies a new configuration's hot parts (shaping, DKIM policy, suppression thresholds,
   * TLS certificate) and re-reads DKIM keys. Listeners and the data directory need a restart. A
   * certificate that does not load keeps the old one; `next` absent reloads keys only.
   */
  reload(next?: Config): Promise<void>;
  /** Idempotent: stops listeners (open sessions finish or get 421), then closes the spool. */
  close(): Promise<void>;
  readonly spool: Spool | null;
  readonly metrics: Metrics | null;
}

const OUTCOME_OF_STATE: Record<string, string> = {
  delivered: 'delivered',
  queued: 'deferred',
  bounced: 'bounced',
  expired: 'expired',
  suppressed: 'suppressed',
  cancelled: 'cancelled',
};

export function createApp(config: Config, deps: AppDeps): App {
  const logger = deps.logger;
  const clock = deps.clock ?? systemClock;
  let spool: Spool | null = null;
  let lock: DataDirLock | null = null;
  // Names this run's leases: another run (or, later, another node) never mistakes them for its own.
  const holder = `${machineName()}:${randomBytes(6).toString('hex')}`;
  let submission: SubmissionService | null = null;
  let scheduler: Scheduler | null = null;
  let keyring: KeyRing | null = null;
  let watcher: NodeJS.Timeout | null = null;
  let inbound: InboundService | null = null;
  let http: HttpService | null = null;
  let metrics: Metrics | null = null;
  let webhooks: WebhookDispatcher | null = null;
  let listening = false;
  let stopRetention: (() => void) | null = null;
  let closing: Promise<void> | null = null;
  // The parts of the configuration that SIGHUP may change read from here.
  let live = config;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      listening = false;
      if (watcher) clearInterval(watcher);
      stopRetention?.();
      // Intake stops first; deliveries drain meanwhile; the spool closes last, since a session
      // finishing its DATA and a delivery recording its outcome both still need it. HTTP goes
      // after the spool so that /readyz reports the shutdown until the end.
      const results = await Promise.allSettled([
        submission?.close(),
        inbound?.close(),
        scheduler?.stop(config.delivery.drain_timeout),
        webhooks?.stop(),
      ]);
      results.push(...(await Promise.allSettled([spool?.close()])));
      results.push(...(await Promise.allSettled([http?.close()])));
      // Last: until the spool is closed this run may still hold leases.
      lock?.release();
      for (const r of results) if (r.status === 'rejected') logger.error({ err: r.reason }, 'error while closing');
    })();
    return closing;
  };

  return {
    get spool() {
      return spool;
    },
    get metrics() {
      return metrics;
    },
    async start() {
      try {
        // Before anything touches the queue: a second daemon on this data dir stops here.
        lock = lockDataDir(config.data_dir);
        spool = openSpool(config.data_dir, {
          clock,
          writerThread: true,
          onFatal: (err) => {
            logger.fatal({ err }, 'spool storage failed; refusing new mail');
            deps.onFatal?.(err);
          },
        });
        if ((await spool.messages.purgeStaged()) > 0)
          logger.warn('deleted copies left staged by an unanswered DATA');
        const store = spool;
        const m = createMetrics({
          queueDepth: async () => {
            const now = clock.now();
            return (await store.queue.stats()).map((d) => ({
              domain: d.domain,
              recipients: d.queued + d.inflight,
              oldestSeconds: Math.max(0, (now - d.oldestReceivedAt) / 1000),
            }));
          },
          spoolBytes: () => store.fileBytes(),
        });
        metrics = m;
        const verp = createVerp({
          secret: store.secret,
          bounceDomain: config.inbound.bounce_domain,
          clock,
          maxAgeMs: config.inbound.verp_max_age,
        });
        const onTransition = (u: RecipientUpdate, outcome: Outcome | null): void => {
          const label = OUTCOME_OF_STATE[u.state];
          if (label) m.recipientOutcomes.inc({ outcome: label });
          if (u.state === 'bounced' && outcome) {
            syncBounce(u, outcome).catch((err: unknown) => logger.error({ err }, 'recording a bounce failed'));
          }
        };
        // A 5xx during delivery is a bounce as much as a DSN is: same classifier, same policy.
        const syncBounce = async (u: RecipientUpdate, outcome: Outcome): Promise<void> => {
          if (outcome.mx === null) return;
          const policy = createSuppressionPolicy({ stores: store, settings: () => live.suppression, now: () => clock.now(), onCounted: (category, reason) => m.bounces.inc({ category, reason }) });
          await policy.onReply(u.recipientId, outcome.reply);
        };
        const resolver =
          deps.resolver ??
          createMxResolver({ servers: config.dns.servers, routes: config.routes, port: config.delivery.mx_port });
        scheduler = createScheduler({
          spool,
          transport: createTransport(config, resolver),
          delivery: config.delivery,
          hostname: config.hostname,
          logger: logger.child({ component: 'queue' }),
          clock,
          pollIntervalMs: config.delivery.poll_interval,
          holder,
          leaseMs: config.delivery.lease_time,
          returnPath: (id) => verp.returnPath(id),
          suppressed: async (accountId, address, stream) =>
            (await blockingEntry(store.suppressions, accountId, address, stream))?.reason ?? null,
          onAttempt: (seconds) => m.deliveryAttemptSeconds.observe(seconds),
          onTransition,
        });
        await scheduler.start();
        const ring = createKeyRing(() => spool!.dkimKeys.active(), createKeyCache());
        keyring = ring;
        for (const f of await ring.refresh()) logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
        const signer = createSigner({ clock });
        const sign = async (message: Buffer, fromDomain: string): Promise<{ header: Buffer; aligned: boolean } | null> => {
          const own = ring.keysFor(fromDomain);
          const extra: readonly DkimKey[] = live.dkim.also_sign_as ? ring.keysFor(live.dkim.also_sign_as) : [];
          // The platform signature alone is still better than none for a domain without a key.
          const keys = [...own, ...extra.filter((k) => !own.some((o) => o.domain === k.domain))];
          return keys.length === 0 ? null : { header: await signer.sign(message, keys), aligned: own.length > 0 };
        };
        // The CLI changes keys, accounts and suspensions in the database; data_version tells
        // this connection when another one committed, so new keys are used within a second.
        let seen = await spool.dataVersion();
        let erasures = await store.privacy.erasures();
        m.privacyErasures.inc(erasures);
        stopRetention = startRetention(store, config.retention, logger.child({ component: 'retention' }), (c) => {
          m.retentionDeleted.inc({ kind: 'bodies' }, c.bodies);
          m.retentionDeleted.inc({ kind: 'messages' }, c.messages);
          m.retentionDeleted.inc({ kind: 'events' }, c.events);
          m.retentionDeleted.inc({ kind: 'bounces' }, c.bounces);
        });
        watcher = setInterval(() => {
          void (async () => {
            const now = await spool!.dataVersion();
            if (now === seen) return;
            seen = now;
            // Erasure fences and cancellations come from the CLI: one check for every lease.
            await scheduler?.checkFences();
            for (const f of await ring.refresh()) logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
            logger.debug({ keys: ring.loaded() }, 'DKIM keys refreshed');
            const total = await store.privacy.erasures();
            if (total > erasures) m.privacyErasures.inc(total - erasures);
            erasures = total;
            scheduler?.wake();
          })().catch((err: unknown) => logger.error({ err }, 'database watch failed'));
        }, 1000);
        watcher.unref();
        http = createHttpService({
          listen: config.http.listen,
          spool: store,
          logger: logger.child({ component: 'http' }),
          metrics: () => m.render(),
          metricsToken: config.http.metrics_token,
          ready: async () => listening && (await store.writable()),
          onUnsubscribe: () => m.unsubscribes.inc({ source: 'one-click' }),
        });
        const web = await http.start();
        webhooks = createWebhookDispatcher({
          events: store.events,
          targets: loadWebhookTargets(config.webhooks),
          logger: logger.child({ component: 'webhooks' }),
          clock,
        });
        await webhooks.start();
        logger.info({ listener: 'http', address: `${web.host}:${web.port}` }, 'listening');
        const tls = await loadTlsMaterial(config.tls, config.data_dir, config.hostname);
        if (tls.origin === 'self-signed') logger.warn('using a self-signed TLS certificate; set [tls] cert and key');
        inbound = createInboundService({
          settings: {
            listen: config.inbound.listen,
            bounceDomain: config.inbound.bounce_domain,
            fblAddress: config.inbound.fbl_address,
            maxMessageSize: config.inbound.max_message_size,
            maxConnections: config.inbound.max_connections,
            maxConnectionsPerIp: config.inbound.max_connections_per_ip,
            idleTimeoutMs: config.inbound.idle_timeout,
            dataTimeoutMs: config.inbound.data_timeout,
            greetingPauseMs: config.inbound.greeting_pause,
          },
          hostname: config.hostname,
          tls,
          spool: store,
          verp,
          logger: logger.child({ component: 'inbound' }),
          suppression: () => live.suppression,
          now: () => clock.now(),
          onReport: (category, reason) => {
            if (category === 'unsubscribe') m.unsubscribes.inc({ source: 'mailto' });
            else m.bounces.inc({ category, reason });
          },
        });
        for (const b of await inbound.start()) logger.info({ listener: 'inbound', address: `${b.host}:${b.port}` }, 'listening');
        const publicUrl = config.http.public_url.replace(/\/$/, '');
        const unsubscribeHeaders = async (accountId: number, address: string): Promise<string[]> => {
          const token = await store.suppressions.unsubscribeToken(accountId, address, config.http.unsubscribe_ttl);
          return [
            `List-Unsubscribe: <${publicUrl}/u/${token}>,\r\n <mailto:unsub-${token}@${config.inbound.bounce_domain}?subject=unsubscribe>\r\n`,
            'List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n',
          ];
        };
        submission = createSubmissionService({
          config: config.submission,
          hostname: config.hostname,
          tls,
          spool,
          logger: logger.child({ component: 'submission' }),
          clock,
          onQueued: (listener, seconds) => {
            m.messagesReceived.inc({ listener });
            m.submissionSeconds.observe(seconds);
            scheduler?.wake();
          },
          sign,
          requireSignature: () => live.dkim.require,
          unsubscribeHeaders,
        });
        const bound = await submission.start();
        for (const b of bound) logger.info({ listener: b.name, address: `${b.host}:${b.port}` }, 'listening');
        listening = true;
        return bound;
      } catch (err) {
        await close();
        throw err;
      }
    },
    close,
    async reload(next) {
      if (next) {
        const restartOnly = ['hostname', 'data_dir', 'log_dir', 'submission', 'inbound', 'http', 'dns', 'routes'] as const;
        const changed = restartOnly.filter((k) => JSON.stringify(next[k]) !== JSON.stringify(live[k]));
        if (changed.length > 0) logger.warn({ keys: changed }, 'these settings change only at restart');
        if (JSON.stringify(next.tls) !== JSON.stringify(live.tls) || next.tls.cert) {
          try {
            const tls = await loadTlsMaterial(next.tls, live.data_dir, live.hostname);
            submission?.updateTls(tls);
            inbound?.updateTls(tls);
          } catch (err) {
            logger.error({ err }, 'TLS certificate reload failed; keeping the one in use');
          }
        }
        scheduler?.setDelivery(next.delivery);
        live = next;
        logger.info('configuration reloaded');
      }
      if (!keyring) return;
      for (const f of await keyring.reload()) logger.error({ path: f.path, err: f.error }, 'cannot reload DKIM key');
      logger.info('reloaded DKIM keys');
    },
  };
}
