import type { Config } from '../config/index.js';
import { createKeyCache, createKeyRing, openSealedKey, type KeyRing } from '../dkim/index.js';
import type { Logger } from '../logging/index.js';
import { createMetrics, type Metrics } from '../metrics/index.js';
import type { Clock, SharedCounters } from '../shared/index.js';
import { randomBytes } from 'node:crypto';
import { connectSpool, lockDataDir, type DataDirLock, type Spool } from '../spool/index.js';
import { createVerp, type Verp } from '../verp/index.js';
import type { Part } from './part.js';

/** What the other parts use of the storage: the database and what is derived from it. */
export interface Storage {
  readonly spool: Spool;
  /**
   * Names this run's leases: unique to it, so another run (or, later, another node) never takes
   * them for its own. The data dir's lock proves every other holder on this machine gone.
   */
  readonly holder: string;
  readonly metrics: Metrics;
  /** Return paths signed with the database's secret. */
  readonly verp: Verp;
  /** DKIM keys named in the database, loaded and cached. */
  readonly keys: KeyRing;
  /** Another connection (the CLI) committed: re-reads what is cached from the database. */
  refresh(): Promise<void>;
  /** Whether the guard paused this account's marketing mail (as of the last refresh). */
  paused(accountId: number | null): boolean;
  /** Accounts whose marketing mail is paused. */
  pausedAccounts(): readonly number[];
  /**
   * Whether the spool takes mail: writable, and no write refused for want of space stands here
   * or, in a node, at another worker (until there is room for the largest message again).
   */
  ready(): Promise<boolean>;
}

/** The node-wide mark of a write refused for want of space; it lapses if no refusal renews it. */
const SPACE_KEY = 'spool:short';
const SPACE_MARK_MS = 60_000;
const NODE_ROOM_BYTES = 1024 * 1024;

export interface StorageDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly onFatal?: (err: Error) => void;
  /**
   * Set in a node's worker: its lease holder. The primary then holds the data dir's lock and
   * has purged staged copies; a worker doing so would delete another worker's DATA in progress.
   */
  readonly holder?: string;
  /** Set in a node's worker: where a refusal for want of space is told to the other workers. */
  readonly counters?: SharedCounters;
  /** With Redis: whether the shared limits are kept per node for now (a metric). */
  readonly shapingDegraded?: () => boolean;
  readonly spoolKey?: Buffer;
}

/**
 * The spool and what lives in it: metrics over it, VERP, DKIM keys, the erasure count. Nothing
 * in the configuration it uses reloads; SIGHUP re-reads the DKIM key files.
 */
export function createStorage(config: Config, deps: StorageDeps): Part<Storage> {
  const { logger, clock } = deps;
  let spool: Spool | null = null;
  let lock: DataDirLock | null = null;
  let keys: KeyRing | null = null;

  return {
    reloadable: [],
    async start() {
      // Before anything touches the queue: a second daemon on this data dir stops here.
      if (deps.holder === undefined) lock = lockDataDir(config.data_dir);
      const store = await connectSpool(
        { dataDir: config.data_dir, url: config.spool.url },
        {
          clock,
          writerThread: true,
          ...(deps.counters
            ? { onSpaceShort: () => void deps.counters?.hit(SPACE_KEY, SPACE_MARK_MS).catch(() => undefined) }
            : {}),
          onFatal: (err) => {
            logger.fatal({ err }, 'spool storage failed; refusing new mail');
            deps.onFatal?.(err);
          },
        },
      );
      spool = store;
      const health = await store.health();
      // 250 promises the message survives a crash; say at once when the spool cannot keep that.
      if (!health.durable)
        logger.warn(
          { spool: health.location, settings: health.settings },
          'the spool does not flush commits to disk: a crash can lose acknowledged mail',
        );
      if (deps.holder === undefined && (await store.messages.purgeStaged()) > 0)
        logger.warn('deleted copies left staged by an unanswered DATA');
      const metrics = createMetrics({
        queueDepth: async () => {
          const now = clock.now();
          return (await store.queue.stats()).map((d) => ({
            domain: d.domain,
            recipients: d.queued + d.inflight,
            oldestSeconds: Math.max(0, (now - d.oldestReceivedAt) / 1000),
          }));
        },
        spoolBytes: () => store.fileBytes(),
        ...(deps.shapingDegraded ? { shapingDegraded: deps.shapingDegraded } : {}),
      });
      const verp = createVerp({
        secret: store.secret,
        bounceDomain: config.inbound.bounce_domain,
        clock,
        maxAgeMs: config.inbound.verp_max_age,
      });
      const spoolKey = deps.spoolKey;
      const ring = createKeyRing(
        () => store.dkimKeys.active(),
        createKeyCache(),
        spoolKey ? (sealed, what) => openSealedKey(sealed, spoolKey, what) : undefined,
      );
      keys = ring;
      for (const f of await ring.refresh())
        logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
      let paused = new Set((await store.guard.pauses()).map((p) => p.accountId));
      let pausedList = [...paused];
      let erasures = await store.privacy.erasures();
      metrics.privacyErasures.inc(erasures);
      return {
        spool: store,
        holder: deps.holder ?? `${config.cluster.node}:${lock?.id ?? 'x'}.${randomBytes(6).toString('hex')}`,
        metrics,
        verp,
        keys: ring,
        async ready() {
          if (!(await store.writable())) return false;
          const counters = deps.counters;
          if (!counters || (await counters.count(SPACE_KEY)) === 0) return true;
          // Another worker was refused (for how much, it alone knows): ready again once a
          // message of a typical size, NODE_ROOM_BYTES, would fit.
          if (!store.roomFor(NODE_ROOM_BYTES)) return false;
          await counters.reset(SPACE_KEY);
          return true;
        },
        paused: (id) => id !== null && paused.has(id),
        pausedAccounts: () => pausedList,
        async refresh() {
          paused = new Set((await store.guard.pauses()).map((p) => p.accountId));
          pausedList = [...paused];
          for (const f of await ring.refresh())
            logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
          logger.debug({ keys: ring.loaded() }, 'DKIM keys refreshed');
          // Erasures run in the CLI; the counter counts them here.
          const total = await store.privacy.erasures();
          if (total > erasures) metrics.privacyErasures.inc(total - erasures);
          erasures = total;
        },
      };
    },
    async reload() {
      if (!keys) return;
      for (const f of await keys.reload())
        logger.error({ path: f.path, err: f.error }, 'cannot reload DKIM key');
      logger.info('reloaded DKIM keys');
    },
    async close() {
      try {
        await spool?.close();
      } finally {
        // Last: until the spool is closed this run may still hold leases.
        lock?.release();
      }
    },
  };
}
