import { changedSettings, type Config } from './config/index.js';
import type { DestinationResolver } from './delivery/index.js';
import type { Logger } from './logging/index.js';
import type { Metrics } from './metrics/index.js';
import { connectRedisShaping, type RedisShaping } from './cluster/index.js';
import type { Throttle } from './queue/index.js';
import { localCounters, systemClock, type Clock, type SharedCounters } from './shared/index.js';
import type { Spool } from './spool/index.js';
import type { BoundListener, SubmissionService } from './submission/index.js';
import {
  coveredBy,
  createCertificates,
  createHttp,
  createInbound,
  createQueue,
  createRetention,
  createGuard,
  createStorage,
  createSubmission,
  createWebhooks,
  type Part,
  type Storage,
} from './app/index.js';

export interface AppDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Called when the storage fails so that further acceptance would be unsafe. */
  readonly onFatal?: (err: Error) => void;
  /** Replaces DNS for outbound delivery (tests); default: MX lookups through [dns] servers. */
  readonly resolver?: DestinationResolver;
  /** Set when this app is one worker of a node (`[server] workers`); absent: it is the node. */
  readonly worker?: WorkerRole;
  /** Opens DKIM keys kept sealed in a shared spool (readSpoolKey); null or absent: none. */
  readonly spoolKey?: Buffer | null;
}

/**
 * What a worker gets from its primary. The primary holds the data dir's lock, purges staged
 * copies and requeues earlier runs' leases before any worker starts, and requeues a worker's
 * leases when it dies; the worker does none of that itself.
 */
export interface WorkerRole {
  /** This worker run's lease holder, unique in the node. */
  readonly holder: string;
  /**
   * Limits shared by the node's workers: delivery connection slots and send bookings, and the
   * listeners' sessions per client address, AUTH failures and the accounts' limits.
   */
  readonly throttle: Throttle & SharedCounters;
  /**
   * The one worker that runs the node's single jobs (the webhook dispatcher, the retention
   * sweep) and reports what concerns the node once (settings that need a restart).
   */
  readonly lead: boolean;
  /** The node's metrics, every worker's summed (a scrape may reach any worker). */
  readonly nodeMetrics: () => Promise<{ contentType: string; body: string }>;
}

/** A whole Petrel, without touching `process`: tests run it in-process, main.ts runs it for real. */
export interface App {
  /** Opens the spool, then binds listeners; on failure closes what started and rethrows. */
  start(): Promise<BoundListener[]>;
  /**
   * SIGHUP: each part applies what it can of `next` (shaping, DKIM policy, suppression
   * thresholds, retention, webhooks, TLS certificate, metrics token, log level) and the DKIM keys
   * are re-read. Every other changed setting is logged by its key as needing a restart. `next`
   * absent (the new file was refused) reloads keys only.
   */
  reload(next?: Config): Promise<void>;
  /** Idempotent: stops listeners (open sessions finish or get 421), then closes the spool. */
  close(): Promise<void>;
  readonly spool: Spool | null;
  readonly metrics: Metrics | null;
}

type PartName =
  | 'storage'
  | 'queue'
  | 'retention'
  | 'guard'
  | 'http'
  | 'webhooks'
  | 'certificates'
  | 'inbound'
  | 'submission';

/** The root logger's level is the app's own reloadable setting; the parts log through its children. */
const APP_RELOADABLE = ['log_level'];

export function createApp(config: Config, deps: AppDeps): App {
  const { logger } = deps;
  const clock = deps.clock ?? systemClock;
  let counters: SharedCounters = deps.worker?.throttle ?? localCounters(clock);
  let throttle: Throttle | undefined = deps.worker?.throttle;
  let shaping: RedisShaping | null = null;
  const lead = deps.worker?.lead ?? true;
  // In start order, which reload keeps too.
  const parts: { [K in PartName]?: Part<unknown> } = {};
  let storage: Storage | null = null;
  let submission: SubmissionService | null = null;
  let listening = false;
  let closing: Promise<void> | null = null;
  let reloads: Promise<void> = Promise.resolve();
  // What reloadable settings were last applied from; restart-only ones still run as in `config`.
  let live = config;

  const begin = <T>(name: PartName, part: Part<T>): Promise<T> => {
    parts[name] = part;
    return part.start();
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      listening = false;
      // A reload half-way would otherwise restart a part that is closing.
      await reloads;
      // Intake stops first; deliveries drain meanwhile; the spool closes last, since a session
      // finishing its DATA and a delivery recording its outcome both still need it. HTTP goes
      // after the spool so that /readyz reports the shutdown until the end.
      const results = await Promise.allSettled([
        parts.retention?.close(),
        parts.submission?.close(),
        parts.inbound?.close(),
        parts.queue?.close(),
        parts.webhooks?.close(),
        parts.certificates?.close(),
      ]);
      results.push(...(await Promise.allSettled([parts.storage?.close(), shaping?.close()])));
      results.push(...(await Promise.allSettled([parts.http?.close()])));
      for (const r of results)
        if (r.status === 'rejected') logger.error({ err: r.reason }, 'error while closing');
    })();
    return closing;
  };

  const apply = async (next: Config | undefined): Promise<void> => {
    if (closing) return;
    if (!next) {
      await parts.storage?.reload(live);
      return;
    }
    const started = Object.entries(parts);
    const reloadable = [...APP_RELOADABLE, ...started.flatMap(([, p]) => p.reloadable)];
    for (const key of changedSettings(config, next)) {
      if (!coveredBy(reloadable, key) && lead) logger.warn({ key }, 'this setting changes only at restart');
    }
    const applied = changedSettings(live, next).filter((key) => coveredBy(reloadable, key));
    logger.level = next.log_level;
    for (const [name, part] of started) {
      try {
        await part.reload(next);
      } catch (err) {
        logger.error({ err, part: name }, 'reload failed in part');
      }
    }
    live = next;
    if (applied.length > 0) logger.info({ keys: applied }, 'configuration reloaded');
    else logger.info('configuration reloaded; nothing reloadable changed');
  };

  return {
    get spool() {
      return storage?.spool ?? null;
    },
    get metrics() {
      return storage?.metrics ?? null;
    },
    async start() {
      try {
        if (config.cluster.redis !== '') {
          // Limits for the whole cluster; never refuses to start: without Redis, per node.
          shaping = await connectRedisShaping({
            url: config.cluster.redis,
            node: config.cluster.node,
            logger: logger.child({ component: 'shaping' }),
            clock,
          });
          counters = shaping.counters;
          throttle = shaping.throttle;
        }
        const s = await begin(
          'storage',
          createStorage(config, {
            logger,
            clock,
            ...(deps.onFatal ? { onFatal: deps.onFatal } : {}),
            ...(shaping ? { shapingDegraded: shaping.degraded } : {}),
            ...(deps.spoolKey ? { spoolKey: deps.spoolKey } : {}),
            ...(deps.worker ? { holder: deps.worker.holder, counters: deps.worker.throttle } : {}),
          }),
        );
        storage = s;
        const queue = await begin(
          'queue',
          createQueue(config, {
            logger,
            clock,
            storage: s,
            ...(deps.resolver ? { resolver: deps.resolver } : {}),
            ...(throttle ? { throttle } : {}),
            recover: deps.worker === undefined,
          }),
        );
        if (lead) await begin('retention', createRetention(config, { logger, storage: s }));
        if (lead) await begin('guard', createGuard(config, { logger, clock, storage: s }));
        await begin(
          'http',
          createHttp(config, {
            logger,
            storage: s,
            clock,
            counters,
            submit: () => submission?.submit ?? null,
            listening: () => listening,
            ...(deps.worker ? { metrics: deps.worker.nodeMetrics } : {}),
          }),
        );
        if (lead) await begin('webhooks', createWebhooks(config, { logger, clock, storage: s }));
        const certificates = await begin('certificates', createCertificates(config, { logger }));
        await begin('inbound', createInbound(config, { logger, clock, storage: s, certificates, counters }));
        const bound = await begin(
          'submission',
          createSubmission(config, {
            logger,
            clock,
            storage: s,
            queue,
            certificates,
            counters,
            onService: (service) => (submission = service),
          }),
        );
        listening = true;
        return bound;
      } catch (err) {
        await close();
        throw err;
      }
    },
    close,
    reload(next) {
      // One reload at a time, in signal order.
      const run = reloads.then(() => apply(next));
      reloads = run.catch(() => undefined);
      return run;
    },
  };
}
