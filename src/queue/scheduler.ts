import type { Config } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import type { Clock } from '../shared/index.js';
import type { DueRecipient, RecipientUpdate, ShapingDecision, Spool } from '../spool/index.js';
import type { Adaptive } from './adaptive.js';
import { createLeaseLoop } from './lease-loop.js';
import { warmupCap, type Warmup } from './egress.js';
import { createPools, type Pool } from './pools.js';
import type { Outcome, Transport } from './ports.js';
import { createSessionRunner, type SchedulerBouncePlanner } from './session-runner.js';
import { egressPoolKey, resolveShaping } from './shaping.js';
import { localThrottle, type Throttle } from './throttle.js';
import type { Job } from './transitions.js';

export interface SchedulerDeps {
  readonly spool: Spool;
  readonly transport: Transport;
  readonly delivery: Config['delivery'];
  readonly hostname: string;
  readonly logger: Logger;
  readonly clock: Clock;
  /**
   * Who holds this scheduler's leases: unique to this process run. The caller must hold the data
   * dir's lock, which proves every other holder on this machine gone (start-up recovery).
   */
  readonly holder: string;
  /** How long a lease lasts unless renewed; a lapsed lease is due again for anyone. */
  readonly leaseMs: number;
  /**
   * Whether start() takes back every other holder's leases. True for the data dir's only
   * process; a node's workers leave that to their primary, which knows which holders are gone.
   */
  readonly recover?: boolean;
  /** See LeaseLoopDeps.nodeTimeoutMs (default 30 s). */
  readonly nodeTimeoutMs?: number;
  /** Limits shared with the node's other workers; default: this process's own. */
  readonly throttle?: Throttle;
  /** How often due work is looked for when nothing wakes the scheduler. */
  readonly pollIntervalMs?: number;
  /** Most recipients leased at once; bounds memory whatever the queue size. */
  readonly maxInflight?: number;
  /**
   * The envelope sender for one recipient (VERP). When set, each recipient gets its own
   * transaction (the session is still shared); DSNs keep the null sender.
   */
  readonly returnPath?: (recipientId: number) => string;
  /** Why mail to this recipient must not go out now (suppression), or null. */
  readonly suppressed?: (
    accountId: number | null,
    address: string,
    stream: 'transactional' | 'marketing',
  ) => Promise<string | null>;
  /** Called with the duration of each delivery attempt (seconds). */
  readonly onAttempt?: (seconds: number) => void;
  /** Called after each applied state transition (metrics). */
  readonly onTransition?: (update: RecipientUpdate, outcome: Outcome | null) => void;
  /** What a remote 5xx writes with its outcome (suppression policy). */
  readonly planBounce?: SchedulerBouncePlanner;
  /** Shaping rules and the decisions they made (shared through the spool). */
  readonly adaptive?: Adaptive;
  /** Accounts whose marketing mail stays queued (the guard paused it). */
  readonly pausedAccounts?: () => readonly number[];
  /** A rule made a decision, now stored (events, metrics). */
  readonly onShapingDecision?: (decision: ShapingDecision, job: Job) => void;
  /** The account's own [[egress]] source, which comes before the destination's; null: none. */
  readonly accountEgress?: (accountId: number | null) => string | null;
  /** Warm-up schedules of the sources that have one, by source name. */
  readonly warmups?: ReadonlyMap<string, Warmup>;
}

export interface Scheduler {
  /** Requeues work whose holder is gone, then starts leasing. */
  start(): Promise<void>;
  /** Looks for due work now (new mail, a CLI retry). */
  wake(): void;
  /**
   * Checks every lease still held against the database (one read): work fenced by an erasure,
   * cancelled or gone is dropped from its pool, and a send to it in progress is aborted before
   * the final dot. Called when another connection committed (data_version changed).
   */
  checkFences(): Promise<void>;
  /**
   * Stops taking work; sessions in flight get `drainMs` to finish, then are aborted and their
   * recipients deferred. Leased but untried recipients are released. Idempotent.
   */
  stop(drainMs: number): Promise<void>;
  /** Recipients leased right now. */
  inflight(): number;
  /** New shaping (SIGHUP): applies to pools from now on, their connection limits included. */
  setDelivery(delivery: Config['delivery']): void;
}

const ROUTE_TTL_MS = 60_000;

/**
 * The delivery core: a lease loop (the only owner of leases, their counts and renewal) feeds
 * destination pools (caps, pacing, lingering sessions), whose sessions a session runner drives.
 */
export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { spool, transport, logger, clock, holder } = deps;
  let delivery = deps.delivery;
  const throttle = deps.throttle ?? localThrottle(clock);
  const adaptive = deps.adaptive;
  const pools = createPools(
    delivery,
    clock,
    throttle,
    adaptive ? (key, base) => adaptive.shape(key, base) : undefined,
  );
  /** Decisions other workers and nodes made reach this one within this long. */
  const DECISIONS_REFRESH_MS = 1000;
  let decisionsReadAt = -Infinity;
  const routes = new Map<string, { at: number; result: ReturnType<Transport['resolve']> }>();
  const abort = new AbortController();
  const stopped = new AbortController();
  let stopping: Promise<void> | null = null;

  const releaseJobs = (jobs: readonly Job[]): Promise<void> =>
    leases.release(jobs.flatMap((j) => j.recipients.map((r) => r.id)));

  const refreshDecisions = async (): Promise<void> => {
    if (!adaptive) return;
    if (clock.now() - decisionsReadAt >= DECISIONS_REFRESH_MS) {
      decisionsReadAt = clock.now();
      adaptive.load(await spool.queue.shapingDecisions());
    }
    // At every lease, not only when decisions change: a ramp's limits grow with time.
    pools.reshape();
  };

  const announce = (decision: ShapingDecision, job: Job): void => {
    pools.reshape();
    logger.warn(
      {
        event: 'shaping',
        queue: decision.destination,
        rule: decision.rule,
        action: decision.action,
        until: new Date(decision.until).toISOString(),
        reply: decision.reply,
      },
      `shaping: ${decision.action} ${decision.destination} (rule ${decision.rule})`,
    );
    void spool.queue
      .putShapingDecision(decision)
      .then(() => deps.onShapingDecision?.(decision, job))
      .catch((err: unknown) =>
        logger.error({ err, queue: decision.destination }, 'shaping decision not stored'),
      )
      .finally(() => adaptive?.settled(decision));
  };

  const dropSuspended = async (): Promise<void> => {
    await refreshDecisions();
    const suspended = await spool.queue.suspended();
    for (const pool of pools.all()) {
      for (const domain of suspended) {
        const jobs = pool.jobs.get(domain);
        if (!jobs) continue;
        pool.jobs.delete(domain);
        await releaseJobs(jobs);
      }
    }
    // A pool a shaping rule suspended holds nothing (its recipients go back to the queue, where
    // this worker's lease no longer takes them); one the rule let go again starts its sessions,
    // since nothing else would start them for jobs it already holds.
    for (const pool of pools.all()) {
      if (pool.jobs.size === 0) continue;
      if (pool.shaping.maxConnections === 0) {
        const jobs = [...pool.jobs.values()].flat();
        pool.jobs.clear();
        await releaseJobs(jobs);
      } else spawn(pool);
    }
    pools.sweep();
  };

  const leases = createLeaseLoop({
    spool,
    holder,
    leaseMs: deps.leaseMs,
    recover: deps.recover ?? true,
    nodeTimeoutMs: deps.nodeTimeoutMs ?? 30_000,
    logger,
    clock,
    pollIntervalMs: deps.pollIntervalMs ?? 1000,
    maxInflight: deps.maxInflight ?? 2000,
    capOf: (domain) => pools.capOf(domain),
    presetCaps: () => pools.presetCaps(),
    beforeLease: dropSuspended,
    ...(deps.pausedAccounts ? { pausedAccounts: deps.pausedAccounts } : {}),
    onLeased: (due) => void dispatch(due).catch((err: unknown) => logger.error({ err }, 'dispatch failed')),
  });

  const runner = createSessionRunner({
    spool,
    transport,
    holder,
    hostname: deps.hostname,
    logger,
    clock,
    leases,
    pools,
    throttle,
    shutdown: abort.signal,
    stopped: stopped.signal,
    stopping: () => stopping !== null,
    returnPath: deps.returnPath,
    suppressed: deps.suppressed,
    onAttempt: deps.onAttempt,
    onTransition: deps.onTransition,
    planBounce: deps.planBounce,
    delayWarning: () => delivery.delay_warning,
    onDsn: () => {
      if (!stopping) leases.wake();
    },
    adaptive,
    onShapingDecision: announce,
  });

  const route = (domain: string): ReturnType<Transport['resolve']> => {
    const cached = routes.get(domain);
    if (cached && clock.now() - cached.at < ROUTE_TTL_MS) return cached.result;
    const result = transport.resolve(domain);
    routes.set(domain, { at: clock.now(), result });
    if (routes.size > 10_000) routes.delete(routes.keys().next().value!);
    return result;
  };

  const dispatch = async (due: readonly DueRecipient[]): Promise<void> => {
    const byDomain = new Map<string, Map<string, DueRecipient[]>>();
    for (const r of due) {
      let msgs = byDomain.get(r.domain);
      if (!msgs) byDomain.set(r.domain, (msgs = new Map()));
      const list = msgs.get(r.messageId);
      if (list) list.push(r);
      else msgs.set(r.messageId, [r]);
    }
    await Promise.all(
      [...byDomain].map(async ([domain, msgs]) => {
        const resolved = await route(domain);
        const jobs = [...msgs.values()].map((rs): Job => {
          const first = rs[0]!;
          return {
            messageId: first.messageId,
            domain,
            mailFrom: first.mailFrom,
            accountId: first.accountId,
            receivedAt: first.receivedAt,
            stream: first.stream,
            recipients: rs.map((r) => ({
              id: r.id,
              address: r.address,
              attempts: r.attempts,
              delayWarnedAt: r.delayWarnedAt,
            })),
            hosts: resolved.ok ? resolved.hosts : [],
          };
        });
        if (stopping) return releaseJobs(jobs);
        if (!resolved.ok) {
          routes.delete(domain);
          const { shaping } = resolveShaping(delivery, domain, []);
          for (const job of jobs)
            await runner.record(
              job,
              job.recipients.map(() => resolved.outcome),
              shaping,
            );
          return;
        }
        const mxHosts = resolved.hosts.map((h) => h.name);
        const { shaping, poolKey } = resolveShaping(delivery, domain, mxHosts);
        // Each source has a pool of its own at the destination (see egressPoolKey).
        const bySource = new Map<string | null, Job[]>();
        for (const job of jobs) {
          const egress = deps.accountEgress?.(job.accountId) ?? shaping.egress;
          const list = bySource.get(egress);
          if (list) list.push(job);
          else bySource.set(egress, [job]);
        }
        for (const [egress, all] of bySource) {
          const sendable = await withinWarmup(egress, domain, mxHosts, all);
          if (sendable.length === 0) continue;
          const pool = pools.join(
            egressPoolKey(poolKey, egress),
            egress === shaping.egress ? shaping : { ...shaping, egress },
            domain,
          );
          // Leased before this worker knew its pool was suspended (its lease cap came from the
          // domain alone): back to the queue at once, not stranded in a pool that runs nothing.
          if (pool.shaping.maxConnections === 0) {
            await releaseJobs(sendable);
            continue;
          }
          const list = pool.jobs.get(domain) ?? [];
          list.push(...sendable);
          pool.jobs.set(domain, list);
          for (const wake of pool.idle) wake();
          spawn(pool);
        }
      }),
    );
  };

  /**
   * The jobs a warming source may still send the destination's provider today; the others wait
   * for the next UTC day, untried (their attempt count stays). Counted in the spool, so every
   * worker and node shares the day's cap.
   */
  const withinWarmup = async (
    egress: string | null,
    domain: string,
    mxHosts: readonly string[],
    jobs: readonly Job[],
  ): Promise<Job[]> => {
    const warmup = egress === null ? undefined : deps.warmups?.get(egress);
    const cap = warmup ? warmupCap(warmup, domain, mxHosts, clock.now()) : null;
    if (!cap) return [...jobs];
    const keep: Job[] = [];
    for (const job of jobs) {
      if (await spool.egress.take(cap.source, cap.provider, cap.day, job.recipients.length, cap.cap)) {
        keep.push(job);
        continue;
      }
      await runner.postpone(job, cap.nextDayAt, {
        code: 451,
        enhanced: '4.7.0',
        text: `Warm-up of egress ${cap.source}: day ${cap.dayNumber} allows ${cap.cap} recipients at ${cap.provider}, all sent; next UTC day`,
      });
    }
    return keep;
  };

  const spawn = (pool: Pool): void => {
    while (
      !stopping &&
      pool.sessions.size + pool.sessions.pending <
        Math.min(pool.shaping.maxConnections, pools.pendingJobs(pool))
    ) {
      // Re-checked when each session ends: jobs that arrived while every session was busy
      // (or stuck, then aborted) must not be stranded.
      void pool.sessions
        .add(() => runner.run(pool))
        .catch((err: unknown) => logger.error({ err, queue: pool.key }, 'session failed'))
        .finally(() => spawn(pool));
    }
  };

  return {
    start: () => leases.start(),
    wake() {
      if (!stopping) leases.wake();
    },
    inflight: () => leases.count(),
    async checkFences() {
      if (stopping) return;
      const fenced = new Set(await spool.queue.fenced(holder, leases.held()));
      if (fenced.size === 0) return;
      runner.abortSends(fenced);
      for (const pool of pools.all()) {
        for (const [domain, jobs] of pool.jobs) {
          const keep = jobs.filter((j) => !j.recipients.some((r) => fenced.has(r.id)));
          if (keep.length === jobs.length) continue;
          if (keep.length > 0) pool.jobs.set(domain, keep);
          else pool.jobs.delete(domain);
          // Released only where still this holder's: an erasure then finds nothing in flight.
          await releaseJobs(jobs.filter((j) => !keep.includes(j)));
        }
      }
    },
    setDelivery(next) {
      delivery = next;
      pools.setDelivery(next);
    },
    stop(drainMs) {
      stopping ??= (async () => {
        stopped.abort();
        await leases.stop();
        const all = [...pools.all()];
        for (const pool of all) {
          const jobs = [...pool.jobs.values()].flat();
          pool.jobs.clear();
          await releaseJobs(jobs);
          for (const wake of pool.idle) wake();
        }
        const idle = Promise.all(all.map((p) => p.sessions.onIdle()));
        const deadline = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), drainMs).unref());
        if ((await Promise.race([idle, deadline])) === 'timeout') {
          logger.warn('drain deadline passed: aborting deliveries in flight');
          abort.abort();
          await idle;
        }
      })();
      return stopping;
    },
  };
}
