import type { Logger } from '../logging/index.js';
import { maskAddresses, parseAddress, type Clock } from '../shared/index.js';
import type { BounceWrite, RecipientUpdate, ReplyRecord, ShapingDecision, Spool } from '../spool/index.js';
import type { Adaptive } from './adaptive.js';
import type { LeaseLoop } from './lease-loop.js';
import type { Pool, Pools } from './pools.js';
import type { Outcome, OutboundSession, Transport } from './ports.js';
import type { Shaping } from './shaping.js';
import type { Throttle } from './throttle.js';
import { dsnsFor, isEnded, transitionsOf, type Job } from './transitions.js';

export interface SessionRunnerDeps {
  readonly spool: Spool;
  readonly transport: Transport;
  readonly holder: string;
  readonly hostname: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly leases: LeaseLoop;
  readonly pools: Pools;
  /** The node's connection slots per pool. */
  readonly throttle: Throttle;
  /** Aborted at the drain deadline of a shutdown. */
  readonly shutdown: AbortSignal;
  /** Aborted as soon as a shutdown begins: nothing new starts. */
  readonly stopped: AbortSignal;
  readonly stopping: () => boolean;
  readonly returnPath: ((recipientId: number) => string) | undefined;
  readonly suppressed:
    | ((
        accountId: number | null,
        address: string,
        stream: 'transactional' | 'marketing',
      ) => Promise<string | null>)
    | undefined;
  readonly onAttempt: ((seconds: number) => void) | undefined;
  readonly onTransition: ((update: RecipientUpdate, outcome: Outcome | null) => void) | undefined;
  readonly planBounce: SchedulerBouncePlanner | undefined;
  /** `[delivery] delay_warning` as it is now (reloadable): ms, or null for never. */
  readonly delayWarning: () => number | null;
  /** A DSN was queued: look for due work soon. */
  readonly onDsn: () => void;
  /** Shaping rules matched against replies; none when undefined. */
  readonly adaptive: Adaptive | undefined;
  /** A rule cut a destination's limits (store it, tell the node). */
  readonly onShapingDecision: ((decision: ShapingDecision, job: Job) => void) | undefined;
}

/**
 * What a remote 5xx for a recipient writes besides its outcome (the bounce record, maybe a
 * suppression), committed in the same transaction; `counted` runs once it is committed.
 */
export type SchedulerBouncePlanner = (
  rcpt: {
    readonly id: number;
    readonly messageId: string;
    readonly accountId: number | null;
    readonly address: string;
  },
  outcome: Outcome,
) => { readonly write: BounceWrite; counted(): void } | null;

/** Runs SMTP sessions for pools and records what each attempt did to its recipients. */
export interface SessionRunner {
  /** One session: the pool's busiest destination gets it, until its work or limits run out. */
  run(pool: Pool): Promise<void>;
  /** Records one outcome for every recipient of `job` (a destination that cannot be routed). */
  record(job: Job, outcomes: readonly Outcome[], shaping: Shaping): Promise<void>;
  /** Aborts the sends in progress to any of these recipients (an erasure fenced them). */
  abortSends(ids: ReadonlySet<number>): void;
  /** Puts every recipient of `job` back in the queue until `until`, untried, saying why. */
  postpone(job: Job, until: number, reply: ReplyRecord): Promise<void>;
}

/**
 * Delays before retrying an outcome commit that failed. After the last, the recipients are
 * abandoned to their lease's expiry: releasing them could undo a delivery that happened.
 */
const COMMIT_RETRY_MS = [250, 1000, 4000];

export function createSessionRunner(deps: SessionRunnerDeps): SessionRunner {
  const { spool, transport, logger, clock, leases, pools, holder } = deps;
  const sending = new Map<AbortController, readonly number[]>();

  const completeOrAbandon = async (
    updates: readonly RecipientUpdate[],
    followUps?: Parameters<Spool['queue']['complete']>[2],
    bounces?: readonly BounceWrite[],
  ): Promise<RecipientUpdate[]> => {
    const ids = updates.map((u) => u.recipientId);
    for (let attempt = 0; ; attempt++) {
      try {
        const applied = await spool.queue.complete(holder, updates, followUps, bounces);
        leases.finish(ids);
        return applied;
      } catch (err) {
        const wait = COMMIT_RETRY_MS[attempt];
        if (wait === undefined) {
          logger.error(
            { err, recipients: ids.length },
            'outcome not recorded; the recipients are due again when their lease lapses',
          );
          leases.abandon(ids);
          return [];
        }
        logger.warn(
          { err, recipients: ids.length, retryInMs: wait },
          'recording an outcome failed; retrying',
        );
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  };

  // The recipients' local parts are masked too: a reply may quote one without its domain.
  const logTransition = (job: Job, u: RecipientUpdate, outcome: Outcome | null): void => {
    const locals = job.recipients.map((r) => parseAddress(r.address)?.local ?? r.address);
    logger.info(
      {
        event: u.event,
        msgId: u.messageId,
        rcptId: u.recipientId,
        queue: u.domain,
        mx: u.mx,
        reply: u.reply
          ? {
              code: u.reply.code,
              enhanced: u.reply.enhanced,
              text: maskAddresses(u.reply.text, locals).slice(0, 312),
            }
          : null,
        ...(u.nextAttemptAt !== undefined ? { nextAttemptAt: new Date(u.nextAttemptAt).toISOString() } : {}),
        ...(u.delayWarned ? { delayNotice: true } : {}),
      },
      u.event,
    );
    deps.onTransition?.(u, outcome);
  };

  /** Outcomes as the shaping rules read them; a rule's decision is announced once. */
  const observed = (job: Job, outcomes: readonly Outcome[], destination: string | undefined): Outcome[] => {
    const adaptive = deps.adaptive;
    if (!adaptive || destination === undefined) return [...outcomes];
    return outcomes.map((o) => {
      const seen = adaptive.observe(destination, job.domain, o);
      if (seen.decision) deps.onShapingDecision?.(seen.decision, job);
      return seen.outcome;
    });
  };

  const record = async (
    job: Job,
    raw: readonly Outcome[],
    shaping: Shaping,
    body?: Buffer,
    destination?: string,
  ): Promise<void> => {
    const outcomes = observed(job, raw, destination);
    const now = clock.now();
    const updates = transitionsOf(job, outcomes, shaping, now, deps.delayWarning());
    const owesDsn = updates.some((u) => isEnded(u) || u.delayWarned === true);
    const original = body ?? (owesDsn ? await spool.queue.body(job.messageId) : null);
    let dsnQueued = false;
    // A remote 5xx is a bounce as much as a DSN is: its record commits with the outcome.
    const bounces = updates.flatMap((u, i) => {
      const outcome = outcomes[i] ?? outcomes[0]!;
      if (u.state !== 'bounced' || outcome.mx === null || !deps.planBounce) return [];
      const r = job.recipients[i]!;
      const plan = deps.planBounce(
        { id: r.id, messageId: job.messageId, accountId: job.accountId, address: r.address },
        outcome,
      );
      return plan ? [plan] : [];
    });
    const applied = await completeOrAbandon(
      updates,
      (done) => {
        const dsns = original ? dsnsFor(deps.hostname, job, done, original, shaping, now) : [];
        dsnQueued = dsns.length > 0;
        return dsns.map((message) => ({ id: spool.messages.newId(), message }));
      },
      bounces.map((b) => b.write),
    );
    const ended = new Set(applied.map((u) => u.recipientId));
    for (const b of bounces) if (ended.has(b.write.recipientId)) b.counted();
    for (const u of applied)
      logTransition(job, u, outcomes[job.recipients.findIndex((r) => r.id === u.recipientId)] ?? null);
    if (dsnQueued && applied.length > 0) deps.onDsn();
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
          recipientId: r.id,
          messageId: job.messageId,
          accountId: job.accountId,
          domain: job.domain,
          state: 'suppressed',
          event: 'suppressed',
          attempted: false,
          mx: null,
          reply: { code: 550, enhanced: '5.7.1', text: `Recipient suppressed (${why})` },
        });
      }
    }
    if (ended.length > 0) for (const u of await completeOrAbandon(ended)) logTransition(job, u, null);
    return { ...job, recipients: keep };
  };

  const deliverJob = async (session: OutboundSession, job: Job, pool: Pool): Promise<void> => {
    const body = await spool.queue.body(job.messageId);
    if (!body) {
      // Erased or expired by retention while waiting: whatever is still leased goes back untouched.
      await leases.release(job.recipients.map((r) => r.id));
      return;
    }
    const sendable = await withoutSuppressed(job);
    if (sendable.recipients.length === 0) return;
    await pools.pace(pool, deps.stopped);
    if (deps.stopping()) {
      // Shutdown came while this waited for its turn: it was never tried.
      await leases.release(sendable.recipients.map((r) => r.id));
      return;
    }
    const started = clock.now();
    // An erasure may fence these recipients mid-send (abortSends): abort before the final dot.
    const stop = new AbortController();
    const onShutdown = (): void => stop.abort();
    deps.shutdown.addEventListener('abort', onShutdown, { once: true });
    sending.set(
      stop,
      sendable.recipients.map((r) => r.id),
    );
    let outcomes: Outcome[];
    try {
      if (deps.returnPath && sendable.mailFrom !== '') {
        outcomes = [];
        for (const r of sendable.recipients) {
          const [o] = await session.send(
            { mailFrom: deps.returnPath(r.id), rcptTo: [r.address], message: body },
            { signal: stop.signal },
          );
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
      sending.delete(stop);
      deps.shutdown.removeEventListener('abort', onShutdown);
    }
    logger.debug(
      { msgId: job.messageId, queue: job.domain, mx: session.mx, durationMs: clock.now() - started },
      'attempt finished',
    );
    deps.onAttempt?.((clock.now() - started) / 1000);
    // A session lost part-way leaves later recipients untried: they go back unchanged.
    const tried = { ...sendable, recipients: sendable.recipients.slice(0, outcomes.length) };
    const untried = sendable.recipients.slice(outcomes.length);
    if (untried.length > 0) await leases.release(untried.map((r) => r.id));
    await record(tried, outcomes, pool.shaping, body, pool.key);
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
    if (domain === undefined || deps.stopping()) return;
    const first = pools.takeJob(pool, domain);
    if (!first) return;
    const opened = await transport.open(domain, first.hosts, pool.shaping, deps.shutdown);
    if (!opened.ok) {
      // The destination is unreachable now: every job waiting for it shares this outcome.
      const failed = [first];
      for (let j = pools.takeJob(pool, domain); j; j = pools.takeJob(pool, domain)) failed.push(j);
      for (const job of failed)
        await record(
          job,
          job.recipients.map(() => opened.outcome),
          pool.shaping,
          undefined,
          pool.key,
        );
      return;
    }
    const session = opened.session;
    try {
      let job: Job | undefined = first;
      let sent = 0;
      while (job) {
        await deliverJob(session, job, pool);
        sent++;
        // A rule may have suspended the destination meanwhile: what waits goes back untried.
        if (pool.shaping.maxConnections === 0) break;
        if (sent >= pool.shaping.messagesPerConnection || !session.usable || deps.stopping()) break;
        job = pools.takeJob(pool, domain) ?? (await pools.lingerForJob(pool, domain, deps.stopping));
      }
    } finally {
      await session.close();
    }
  };

  return {
    async run(pool) {
      if (pool.jobs.size === 0 || deps.stopping()) return;
      if (pool.shaping.maxConnections === 0) {
        // Suspended by a shaping rule: its jobs wait in the queue, where no lease takes them.
        const jobs = [...pool.jobs.values()].flat();
        pool.jobs.clear();
        await leases.release(jobs.flatMap((j) => j.recipients.map((r) => r.id)));
        return;
      }
      // max_connections is the node's: this session waits for one of the pool's slots.
      const release = await deps.throttle.acquire(pool.key, pool.shaping.maxConnections, deps.stopped);
      if (!release) return;
      try {
        await runSession(pool);
      } finally {
        release();
      }
    },
    record: (job, outcomes, shaping) => record(job, outcomes, shaping),
    async postpone(job, until, reply) {
      const updates = job.recipients.map((r): RecipientUpdate => ({
        recipientId: r.id,
        messageId: job.messageId,
        accountId: job.accountId,
        domain: job.domain,
        state: 'queued',
        nextAttemptAt: until,
        attempted: false,
        reply,
        mx: null,
        event: 'transient_failure',
      }));
      for (const u of await completeOrAbandon(updates)) logTransition(job, u, null);
    },
    abortSends(ids) {
      for (const [stop, rcpts] of sending) if (rcpts.some((id) => ids.has(id))) stop.abort();
    },
  };
}
