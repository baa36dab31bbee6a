import type { Config } from './config/index.js';
import type { Logger } from './logging/index.js';
import { openSpool, type Spool } from './spool/index.js';
import { createSubmissionService, type BoundListener, type SubmissionService } from './submission/index.js';
import { loadTlsMaterial } from './tls/index.js';
import { createScheduler, type Scheduler, type Transport } from './queue/index.js';
import { createMxResolver, openSession, type DestinationResolver, type MxHost } from './delivery/index.js';
import { readFileSync } from 'node:fs';
import { ConfigError, errorMessage, systemClock, type Clock } from './shared/index.js';
import { createKeyCache, createKeyRing, createSigner, type DkimKey, type KeyRing } from './dkim/index.js';

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
  /** Re-reads DKIM keys and key files (SIGHUP); a bad file keeps the key in use. */
  reload(): Promise<void>;
  /** Idempotent: stops listeners (open sessions finish or get 421), then closes the spool. */
  close(): Promise<void>;
  readonly spool: Spool | null;
}

export function createApp(config: Config, deps: AppDeps): App {
  const logger = deps.logger;
  const clock = deps.clock ?? systemClock;
  let spool: Spool | null = null;
  let submission: SubmissionService | null = null;
  let scheduler: Scheduler | null = null;
  let keyring: KeyRing | null = null;
  let watcher: NodeJS.Timeout | null = null;
  let closing: Promise<void> | null = null;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (watcher) clearInterval(watcher);
      // Intake stops first; deliveries drain meanwhile; the spool closes last, since a session
      // finishing its DATA and a delivery recording its outcome both still need it.
      const results = await Promise.allSettled([submission?.close(), scheduler?.stop(config.delivery.drain_timeout)]);
      results.push(...(await Promise.allSettled([spool?.close()])));
      for (const r of results) if (r.status === 'rejected') logger.error({ err: r.reason }, 'error while closing');
    })();
    return closing;
  };

  return {
    get spool() {
      return spool;
    },
    async start() {
      try {
        spool = openSpool(config.data_dir, {
          clock,
          onFatal: (err) => {
            logger.fatal({ err }, 'spool storage failed; refusing new mail');
            deps.onFatal?.(err);
          },
        });
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
        });
        await scheduler.start();
        const ring = createKeyRing(() => spool!.dkimKeys.active(), createKeyCache());
        keyring = ring;
        for (const f of await ring.refresh()) logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
        const signer = createSigner({ clock });
        const sign = async (message: Buffer, fromDomain: string): Promise<Buffer | null> => {
          const own = ring.keysFor(fromDomain);
          if (own.length === 0) return null;
          const extra: readonly DkimKey[] = config.dkim.also_sign_as ? ring.keysFor(config.dkim.also_sign_as) : [];
          return signer.sign(message, [...own, ...extra.filter((k) => !own.some((o) => o.domain === k.domain))]);
        };
        // The CLI changes keys, accounts and suspensions in the database; data_version tells
        // this connection when another one committed, so new keys are used within a second.
        let seen = await spool.dataVersion();
        watcher = setInterval(() => {
          void (async () => {
            const now = await spool!.dataVersion();
            if (now === seen) return;
            seen = now;
            for (const f of await ring.refresh()) logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
            scheduler?.wake();
          })().catch((err: unknown) => logger.error({ err }, 'database watch failed'));
        }, 1000);
        watcher.unref();
        const tls = await loadTlsMaterial(config.tls, config.data_dir, config.hostname);
        if (tls.origin === 'self-signed') logger.warn('using a self-signed TLS certificate; set [tls] cert and key');
        submission = createSubmissionService({
          config: config.submission,
          hostname: config.hostname,
          tls,
          spool,
          logger: logger.child({ component: 'submission' }),
          clock,
          onQueued: () => scheduler?.wake(),
          sign,
          requireSignature: config.dkim.require,
        });
        const bound = await submission.start();
        for (const b of bound) logger.info({ listener: b.name, address: `${b.host}:${b.port}` }, 'listening');
        return bound;
      } catch (err) {
        await close();
        throw err;
      }
    },
    close,
    async reload() {
      if (!keyring) return;
      for (const f of await keyring.reload()) logger.error({ path: f.path, err: f.error }, 'cannot reload DKIM key');
      logger.info('reloaded DKIM keys');
    },
  };
}
