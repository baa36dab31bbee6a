import PQueue from 'p-queue';
import type { Config } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import { maskAddresses, type Clock } from '../shared/index.js';
import type { DueRecipient, RecipientUpdate, Spool } from '../spool/index.js';
import type { Outcome, OutboundSession, Transport } from './ports.js';
import { resolveShaping, type Shaping } from './shaping.js';
import { dsnFor, isEnded, transitionsOf, type Job } from './transitions.js';


interface Pool {
  readonly key: string;
  shaping: Shaping;
  readonly jobs: Map<string, Job[]>;
  readonly sessions: PQueue;
  nextSendAt: number;
  /** Sessions idling for more work, woken when jobs arrive. */
  readonly idle: Set<() => void>;
}

/** How long an open session waits for more mail to its destination before it quits. */
const SESSION_LINGER_MS = 1000;

export interface SchedulerDeps {
  readonly spool: Spool;
  readonly transport: Transport;
  readonly delivery: Config['delivery'];
  readonly hostname: string;
  readonly logger: Logger;
  readonly clock: Clock;
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
  readonly suppressed?: (accountId: number | null, address: string, stream: 'transactional' | 'marketing') => Promise<string | null>;
  /** Called with the duration of each delivery attempt (seconds). */
  readonly onAttempt?: (seconds: number) => void;
  /** Called after each applied state transition (metrics). */
  readonly onTransition?: (update: RecipientUpdate, outcome: Outcome | null) => void;
}

export interface Scheduler {
  /** Requeues work left in flight by a crash, then starts polling. */
  start(): Promise<void>;
  /** Looks for due work now (new mail, a CLI retry). */
  wake(): void;
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

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { spool, transport, logger, clock } = deps;
  let delivery = deps.delivery;
  const pollIntervalMs = deps.pollIntervalMs ?? 1000;
  const maxInflight = deps.maxInflight ?? 2000;
  const pools = new Map<string, Pool>();
  const routes = new Map<string, { at: number; result: ReturnType<Transport['resolve']> }>();
  const abort = new AbortController();
  let leased = 0;
  let timer: NodeJS.Timeout | null = null;
  let polling = false;
  let again = false;
  let stopping: Promise<void> | null = null;

  const schedule = (delay: number): void => {
    if (stopping) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void poll(), delay);
  };

  const poll = async (): Promise<void> => {
    if (stopping) return;
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    let full = false;
    try {
      await dropSuspended();
      const room = Math.min(maxInflight - leased, 500);
      if (room > 0) {
        const due = await spool.queue.leaseDue(room);
        leased += due.length;
        full = due.length === room;
        if (due.length > 0) void dispatch(due).catch((err: unknown) => logger.error({ err }, 'dispatch failed'));
      }
    } catch (err) {
      logger.error({ err }, 'queue poll failed');
    } finally {
      polling = false;
    }
    if (again || full) {
      again = false;
      schedule(0);
    } else schedule(pollIntervalMs);
  };

  const dropSuspended = async (): Promise<void> => {
    const suspended = new Set(await spool.queue.suspended());
    if (suspended.size === 0) return;
    for (const pool of pools.values()) {
      for (const domain of suspended) {
        const jobs = pool.jobs.get(domain);
        if (!jobs) continue;
        pool.jobs.delete(domain);
        await releaseJobs(jobs);
      }
    }
  };

  const releaseJobs = async (jobs: readonly Job[]): Promise<void> => {
    const ids = jobs.flatMap((j) => j.recipients.map((r) => r.id));
    if (ids.length === 0) return;
    await spool.queue.release(ids);
    leased -= ids.length;
  };

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
            recipients: rs.map((r) => ({ id: r.id, address: r.address, attempts: r.attempts })),
            hosts: resolved.ok ? resolved.hosts : [],
          };
        });
        if (stopping) return releaseJobs(jobs);
        if (!resolved.ok) {
          routes.delete(domain);
          const { shaping } = resolveShaping(delivery, domain, []);
          for (const job of jobs) await record(job, job.recipients.map(() => resolved.outcome), shaping);
          return;
        }
        const { shaping, poolKey } = resolveShaping(delivery, domain, resolved.hosts.map((h) => h.name));
        const pool = poolFor(poolKey, shaping);
        const list = pool.jobs.get(domain) ?? [];
        list.push(...jobs);
        pool.jobs.set(domain, list);
        for (const wake of pool.idle) wake();
        spawn(pool);
      }),
    );
  };

  const poolFor = (key: string, shaping: Shaping): Pool => {
    let pool = pools.get(key);
    if (pool && pool.shaping !== shaping) {
      pool.shaping = shaping;
      pool.sessions.concurrency = shaping.maxConnections;
    }
    if (!pool) {
      pool = {
        key,
        shaping,
        jobs: new Map(),
        sessions: new PQueue({ concurrency: shaping.maxConnections }),
        nextSendAt: 0,
        idle: new Set(),
      };
      pools.set(key, pool);
    }
    return pool;
  };

  const pendingJobs = (pool: Pool): number => {
    let n = 0;
    for (const list of pool.jobs.values()) n += list.length;
    return n;
  };

  const spawn = (pool: Pool): void => {
    while (!stopping && pool.sessions.size + pool.sessions.pending < Math.min(pool.shaping.maxConnections, pendingJobs(pool))) {
      // Re-checked when each session ends: jobs that arrived while every session was busy
      // (or stuck, then aborted) must not be stranded.
      void pool.sessions
        .add(() => runSession(pool))
        .catch((err: unknown) => logger.error({ err, queue: pool.key }, 'session failed'))
        .finally(() => spawn(pool));
    }
  };

  const takeJob = (pool: Pool, domain: string): Job | undefined => {
    const list = pool.jobs.get(domain);
    const job = list?.shift();
    if (list && list.length === 0) pool.jobs.delete(domain);
    return job;
  };

  /** Keeps a connection open a little while, so a steady trickle of mail reuses it. */
  const lingerForJob = async (pool: Pool, domain: string): Promise<Job | undefined> => {
    let wake!: () => void;
    const woken = new Promise<void>((r) => (wake = r));
    pool.idle.add(wake);
    const timer = setTimeout(wake, SESSION_LINGER_MS);
    await woken;
    clearTimeout(timer);
    pool.idle.delete(wake);
    return stopping ? undefined : takeJob(pool, domain);
  };

  /** Spaces sends so that a pool never exceeds its rate, whatever its number of sessions. */
  const pace = async (pool: Pool): Promise<void> => {
    if (!Number.isFinite(pool.shaping.ratePerSecond)) return;
    const now = clock.now();
    const at = Math.max(now, pool.nextSendAt);
    pool.nextSendAt = at + 1000 / pool.shaping.ratePerSecond;
    if (at > now) await new Promise((r) => setTimeout(r, at - now));
  };

  const runSession = async (pool: Pool): Promise<void> => {
    // The domain with the most waiting messages gets this connection.
    let domain: string | undefined;
    let most = 0;
    for (const [d, list] of pool.jobs) {
      if (list.length > most) {
        domain = d;
        most = list.length;
      }
    }
    if (domain === undefined || stopping) return;
    const first = takeJob(pool, domain);
    if (!first) return;
    const opened = await transport.open(domain, first.hosts, pool.shaping, abort.signal);
    if (!opened.ok) {
      // The destination is unreachable now: every job waiting for it shares this outcome.
      const failed = [first];
      for (let j = takeJob(pool, domain); j; j = takeJob(pool, domain)) failed.push(j);
      for (const job of failed) await record(job, job.recipients.map(() => opened.outcome), pool.shaping);
      return;
    }
    const session = opened.session;
    try {
      let job: Job | undefined = first;
      let sent = 0;
      while (job) {
        await deliverJob(session, job, pool);
        sent++;
        if (sent >= pool.shaping.messagesPerConnection || !session.usable || stopping) break;
        job = takeJob(pool, domain) ?? (await lingerForJob(pool, domain));
      }
    } finally {
      await session.close();
    }
  };

  const deliverJob = async (session: OutboundSession, job: Job, pool: Pool): Promise<void> => {
    const body = await spool.queue.body(job.messageId);
    const ids = job.recipients.map((r) => r.id);
    if (!body || !(await spool.queue.stillLeased(ids))) {
      // Cancelled or erased while waiting: whatever is still leased goes back untouched.
      await releaseJobs([job]);
      return;
    }
    const sendable = await withoutSuppressed(job);
    if (sendable.recipients.length === 0) return;
    await pace(pool);
    const started = clock.now();
    // An erasure may fence these recipients mid-send: abort before the final dot if it does.
    const stop = new AbortController();
    const onShutdown = (): void => stop.abort();
    abort.signal.addEventListener('abort', onShutdown, { once: true });
    const ids2 = sendable.recipients.map((r) => r.id);
    const fenceWatch = setInterval(() => {
      spool.queue.stillLeased(ids2).then((ok) => ok || stop.abort(), () => undefined);
    }, 250);
    let outcomes: Outcome[];
    try {
      if (deps.returnPath && sendable.mailFrom !== '') {
        outcomes = [];
        for (const r of sendable.recipients) {
          const [o] = await session.send({ mailFrom: deps.returnPath(r.id), rcptTo: [r.address], message: body }, { signal: stop.signal });
          outcomes.push(o!);
          if (!session.usable || stop.signal.aborted) break;
        }
      } else {
        outcomes = await session.send(
          { mailFrom: sendable.mailFrom, rcptTo: sendable.recipients.map((r) => r.address), message: body },
          { signal: stop.signal },
        );
      }
    } finally {
      clearInterval(fenceWatch);
      abort.signal.removeEventListener('abort', onShutdown);
    }
    logger.debug({ msgId: job.messageId, queue: job.domain, mx: session.mx, durationMs: clock.now() - started }, 'attempt finished');
    deps.onAttempt?.((clock.now() - started) / 1000);
    // A session lost part-way leaves later recipients untried: they go back unchanged.
    const tried = { ...sendable, recipients: sendable.recipients.slice(0, outcomes.length) };
    const untried = sendable.recipients.slice(outcomes.length);
    if (untried.length > 0) await releaseJobs([{ ...sendable, recipients: untried }]);
    await record(tried, outcomes, pool.shaping, body);
  };

  /** Ends suppressed recipients (no attempt, no DSN) and returns the job without them. */
  const withoutSuppressed = async (job: Job): Promise<Job> => {
    if (!deps.suppressed || job.mailFrom === '') return job;
    const keep: Job['recipients'] = [];
    const ended: RecipientUpdate[] = [];
    for (const r of job.recipients) {
      const why = await deps.suppressed(job.accountId, r.address, job.stream);
      if (why === null) keep.push(r);
      else {
        ended.push({
          recipientId: r.id, messageId: job.messageId, accountId: job.accountId, domain: job.domain,
          state: 'suppressed', event: 'suppressed', attempted: false, mx: null,
          reply: { code: 550, enhanced: '5.7.1', text: `Recipient suppressed (${why})` },
        });
      }
    }
    if (ended.length > 0) {
      let applied: RecipientUpdate[];
      try {
        applied = await spool.queue.complete(ended);
      } finally {
        // Left in flight when the commit failed: the lease is recovered at the next start.
        leased -= ended.length;
      }
      for (const u of applied) {
        logger.info({ event: u.event, msgId: u.messageId, rcptId: u.recipientId, queue: u.domain }, u.event);
        deps.onTransition?.(u, null);
      }
    }
    return { ...job, recipients: keep };
  };

  const record = async (job: Job, outcomes: readonly Outcome[], shaping: Shaping, body?: Buffer): Promise<void> => {
    const now = clock.now();
    const updates = transitionsOf(job, outcomes, shaping, now);
    const original = body ?? (updates.some(isEnded) ? await spool.queue.body(job.messageId) : null);
    let dsnQueued = false;
    // Left in flight when the commit fails: the lease is recovered at the next start.
    const applied = await spool.queue.complete(updates, (done) => {
      const dsn = original ? dsnFor(deps.hostname, job, done, original, now) : null;
      dsnQueued = dsn !== null;
      return dsn ? [{ id: spool.messages.newId(), message: dsn }] : [];
    }).finally(() => {
      leased -= job.recipients.length;
    });
    for (const u of applied) {
      const outcome = outcomes[job.recipients.findIndex((r) => r.id === u.recipientId)] ?? null;
      logger.info(
        {
          event: u.event,
          msgId: u.messageId,
          rcptId: u.recipientId,
          queue: u.domain,
          mx: u.mx,
          reply: u.reply ? { code: u.reply.code, enhanced: u.reply.enhanced, text: maskAddresses(u.reply.text).slice(0, 312) } : null,
          ...(u.nextAttemptAt !== undefined ? { nextAttemptAt: new Date(u.nextAttemptAt).toISOString() } : {}),
        },
        u.event,
      );
      deps.onTransition?.(u, outcome);
    }
    if (dsnQueued) wakeSoon();
  };

  const wakeSoon = (): void => {
    if (!stopping) schedule(0);
  };

  return {
    async start() {
      const recovered = await spool.queue.recoverInflight();
      if (recovered > 0) logger.info({ recipients: recovered }, 'requeued work that was in flight at the last stop');
      schedule(0);
    },
    wake: wakeSoon,
    inflight: () => leased,
    setDelivery(next) {
      delivery = next;
      // Pools re-read their shaping when a job next arrives; limits change at once.
      for (const pool of pools.values()) {
        const domain = pool.key.startsWith('domain:') ? pool.key.slice(7) : '';
        const suffix = pool.key.startsWith('mx:') ? [pool.key.slice(3)] : [];
        pool.shaping = resolveShaping(next, domain, suffix).shaping;
        pool.sessions.concurrency = pool.shaping.maxConnections;
      }
    },
    stop(drainMs) {
      stopping ??= (async () => {
        if (timer) clearTimeout(timer);
        while (polling) await new Promise((r) => setTimeout(r, 10));
        for (const pool of pools.values()) {
          const jobs = [...pool.jobs.values()].flat();
          pool.jobs.clear();
          await releaseJobs(jobs);
          for (const wake of pool.idle) wake();
        }
        const idle = Promise.all([...pools.values()].map((p) => p.sessions.onIdle()));
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
