import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../logging/index.js';
import { aggregateMetrics } from '../metrics/index.js';
import { createThrottleTable } from '../queue/index.js';
import { PetrelError, createCounterTable, type Clock } from '../shared/index.js';
import type { Spool } from '../spool/index.js';
import { HOLDER_ENV, INDEX_ENV, type PrimaryMessage, type WorkerMessage } from './messages.js';

export interface SupervisorDeps {
  readonly workers: number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** The spool, opened by the primary: a dead worker's leases are requeued through it. */
  readonly spool: Spool;
  /** Names the primary's run; each worker's lease holder is this plus its slot and start count. */
  readonly holder: string;
  /** Where the workers' log lines go: whole lines, each ending in a newline (the primary owns the log files). */
  readonly writeLines: (lines: string) => void;
  /** Whether workers log their 'worker started' line (info is enabled): ready waits for it. */
  readonly startLine: boolean;
  /** Where the workers' stderr goes. */
  readonly writeError: (text: string) => void;
}

/** The node's primary: forks the workers, keeps them running, and is their shared state. */
export interface Supervisor {
  /** Forks every worker; resolves once all serve, rejects when one exits before it does. */
  start(): Promise<void>;
  /** Every worker re-reads its configuration and keys (SIGHUP). */
  reload(): void;
  /** SIGTERM to every worker, SIGKILL to those still running at the deadline; resolves when all are gone. */
  stop(deadlineMs: number): Promise<void>;
  /** Called when a worker that should be running exits (after its leases are requeued). */
  onDeath(handler: (slot: number, code: number | null, signal: string | null) => void): void;
}

interface Slot {
  readonly index: number;
  worker: Worker | null;
  holder: string;
  starts: number;
  startedAt: number;
  ready: boolean;
  /** The worker said it serves (IPC). */
  serving: boolean;
  /** Its 'worker started' line came through its log pipe, so every line before it did too. */
  logged: boolean;
  /** Failures in a row that came soon after a start: the restart backoff grows with them. */
  quickFailures: number;
  /** What the worker wrote to stderr before it served: the reason when it fails to start. */
  early: string;
}

/** A worker failed before it served: the message is its own reason, for the CLI's one line. */
export class WorkerStartError extends PetrelError {
  constructor(message: string) {
    super('PETREL_WORKER_FAILED', message);
  }
}

/** A worker that lived this long before dying is restarted at once; sooner, with backoff. */
const STABLE_MS = 30_000;
const BACKOFF_MS = [250, 1000, 2000, 5000, 10_000, 30_000];
const COLLECT_TIMEOUT_MS = 5000;

export function createSupervisor(deps: SupervisorDeps): Supervisor {
  const { logger, clock, spool } = deps;
  const slots: Slot[] = [];
  const bySlotOwner = new Map<Worker, Slot>();
  const throttle = createThrottleTable(clock);
  const counters = createCounterTable(clock);
  const grants = new Map<string, () => void>();
  let stopping = false;
  let startFailed = false;
  const exits = new Set<Promise<void>>();
  let collectSeq = 0;
  const collects = new Map<number, { pending: Set<Worker>; results: unknown[]; done: () => void }>();
  let deathHandler: ((slot: number, code: number | null, signal: string | null) => void) | null = null;
  let startup: { resolve: () => void; reject: (err: Error) => void } | null = null;

  const owner = (w: Worker): string => String(w.id);
  const tell = (w: Worker, m: PrimaryMessage): void => {
    if (w.isConnected()) w.send(m);
  };

  const scrape = async (): Promise<{ contentType: string; body: string }> => {
    const live = slots.flatMap((s) => (s.worker && s.ready && s.worker.isConnected() ? [s.worker] : []));
    const id = ++collectSeq;
    const results: unknown[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => finish(), COLLECT_TIMEOUT_MS);
      const finish = (): void => {
        clearTimeout(timer);
        collects.delete(id);
        resolve();
      };
      const pending = new Set(live);
      collects.set(id, { pending, results, done: finish });
      if (pending.size === 0) finish();
      for (const w of live) tell(w, { t: 'collect', id });
    });
    return aggregateMetrics(results);
  };

  // Ready once it serves and its start line is through: "petrel started" then follows every
  // worker's earlier lines ("listening …"), which readers of the log rely on.
  const markReady = (slot: Slot): void => {
    if (slot.ready || !slot.serving || (deps.startLine && !slot.logged)) return;
    slot.ready = true;
    logger.debug({ worker: slot.index, pid: slot.worker?.process.pid }, 'worker serving');
    if (startup && slots.every((s) => s.ready)) {
      startup.resolve();
      startup = null;
    }
  };

  const onMessage = (slot: Slot, w: Worker, m: WorkerMessage): void => {
    switch (m.t) {
      case 'ready':
        slot.serving = true;
        markReady(slot);
        return;
      case 'acquire': {
        const grantKey = `${w.id}:${m.id}`;
        const grant = (): void => {
          grants.delete(grantKey);
          tell(w, { t: 'granted', id: m.id });
        };
        if (throttle.acquire(owner(w), m.key, m.max, grant)) tell(w, { t: 'granted', id: m.id });
        else grants.set(grantKey, grant);
        return;
      }
      case 'cancel': {
        const grantKey = `${w.id}:${m.id}`;
        const grant = grants.get(grantKey);
        if (grant) {
          grants.delete(grantKey);
          throttle.cancel(grant);
        }
        return;
      }
      case 'release':
        throttle.release(owner(w), m.key);
        return;
      case 'reserve':
        tell(w, { t: 'reserved', id: m.id, at: throttle.reserve(m.key, m.rate) });
        return;
      case 'take':
        tell(w, { t: 'took', id: m.id, ok: counters.take(owner(w), m.key, m.max) });
        return;
      case 'give':
        counters.give(owner(w), m.key);
        return;
      case 'hit':
        tell(w, { t: 'counted', id: m.id, count: counters.hit(m.key, m.windowMs) });
        return;
      case 'consume':
        tell(w, { t: 'consumed', id: m.id, count: counters.consume(m.key, m.max, m.windowMs) });
        return;
      case 'raise':
        tell(w, { t: 'counted', id: m.id, count: counters.raise(m.key, m.floor, m.windowMs) });
        return;
      case 'count':
        tell(w, { t: 'counted', id: m.id, count: counters.count(m.key) });
        return;
      case 'reset':
        counters.reset(m.key);
        return;
      case 'scrape':
        void scrape().then(
          (r) => tell(w, { t: 'scraped', id: m.id, ...r }),
          (err: unknown) => {
            logger.error({ err }, 'cannot aggregate the workers’ metrics');
            tell(w, { t: 'scraped', id: m.id, contentType: 'text/plain', body: '' });
          },
        );
        return;
      case 'collected': {
        const c = collects.get(m.id);
        if (!c) return;
        c.results.push(m.metrics);
        c.pending.delete(w);
        if (c.pending.size === 0) c.done();
        return;
      }
    }
  };

  const pipeLines = (w: Worker): void => {
    // Whole lines, a chunk at a time: no line is split between two workers' writes, and a
    // busy node pays one write per chunk rather than one per line.
    let carry = '';
    w.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const end = chunk.lastIndexOf('\n');
      if (end === -1) {
        carry += chunk;
        return;
      }
      const lines = carry + chunk.slice(0, end + 1);
      carry = chunk.slice(end + 1);
      deps.writeLines(lines);
      const slot = bySlotOwner.get(w);
      if (slot && !slot.logged && lines.includes('"msg":"worker started"')) {
        slot.logged = true;
        markReady(slot);
      }
    });
    w.process.stderr?.on('data', (d: Buffer) => {
      const slot = bySlotOwner.get(w);
      // At the first start a worker's error is the node's, reported once by the primary.
      if (slot && !slot.ready && (startup || startFailed))
        slot.early = (slot.early + d.toString()).slice(-4096);
      else deps.writeError(d.toString());
    });
  };

  const fork = (slot: Slot): void => {
    slot.starts += 1;
    slot.holder = `${deps.holder}/w${slot.index}.${slot.starts}`;
    slot.ready = false;
    slot.serving = false;
    slot.logged = false;
    slot.early = '';
    slot.startedAt = clock.now();
    const w = cluster.fork({ [HOLDER_ENV]: slot.holder, [INDEX_ENV]: String(slot.index) });
    slot.worker = w;
    bySlotOwner.set(w, slot);
    pipeLines(w);
    w.on('message', (m: WorkerMessage) => onMessage(slot, w, m));
    w.once('exit', (code, signal) => {
      const done = exited(slot, w, code, signal).finally(() => exits.delete(done));
      exits.add(done);
    });
  };

  const exited = async (slot: Slot, w: Worker, code: number | null, signal: string | null): Promise<void> => {
    bySlotOwner.delete(w);
    throttle.forget(owner(w));
    counters.forget(owner(w));
    for (const key of [...grants.keys()]) if (key.startsWith(`${w.id}:`)) grants.delete(key);
    for (const c of collects.values()) {
      if (c.pending.delete(w) && c.pending.size === 0) c.done();
    }
    const holder = slot.holder;
    slot.worker = null;
    // Its recipients are due again now, not when their leases would have lapsed.
    let requeued = 0;
    try {
      requeued = await spool.queue.releaseHolder(holder);
    } catch (err) {
      logger.error({ err, worker: slot.index }, 'cannot requeue a dead worker’s leases; they lapse instead');
    }
    if (stopping) {
      if (requeued > 0)
        logger.warn({ worker: slot.index, recipients: requeued }, 'requeued a stopped worker’s leases');
      return;
    }
    const wasReady = slot.ready;
    slot.ready = false;
    if (startFailed) return;
    if (startup && !wasReady) {
      // Not a crash to restart: the node fails to start, with the worker's own one-line
      // reason ("petrel: tls.cert: cannot read …") or else its exit.
      const said = slot.early
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '')
        .at(-1)
        ?.replace(/^petrel: /, '');
      startFailed = true;
      startup.reject(
        new WorkerStartError(said ?? `worker ${slot.index} exited (${signal ?? code}) before it started`),
      );
      startup = null;
      return;
    }
    logger.error(
      { worker: slot.index, pid: w.process.pid, code, signal, requeued },
      'worker exited; restarting it',
    );
    deathHandler?.(slot.index, code, signal);
    const lived = clock.now() - slot.startedAt;
    slot.quickFailures = lived >= STABLE_MS ? 0 : slot.quickFailures + 1;
    const delay =
      slot.quickFailures === 0 ? 0 : BACKOFF_MS[Math.min(slot.quickFailures, BACKOFF_MS.length) - 1]!;
    setTimeout(() => {
      if (!stopping) fork(slot);
    }, delay).unref();
  };

  return {
    start() {
      // Workers log to a pipe read here: whole lines reach the one log file the primary owns.
      cluster.setupPrimary({ silent: true });
      return new Promise<void>((resolve, reject) => {
        startup = { resolve, reject };
        for (let i = 0; i < deps.workers; i++) {
          const slot: Slot = {
            index: i + 1,
            worker: null,
            holder: '',
            starts: 0,
            startedAt: 0,
            ready: false,
            serving: false,
            logged: false,
            quickFailures: 0,
            early: '',
          };
          slots.push(slot);
          fork(slot);
        }
      });
    },
    reload() {
      for (const s of slots) if (s.worker) tell(s.worker, { t: 'reload' });
    },
    async stop(deadlineMs) {
      stopping = true;
      const running = slots.flatMap((s) => (s.worker ? [s.worker] : []));
      const gone = running.map(
        (w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))),
      );
      for (const w of running) w.process.kill('SIGTERM');
      const timer = setTimeout(() => {
        for (const w of running) if (!w.isDead()) w.process.kill('SIGKILL');
      }, deadlineMs);
      await Promise.all(gone);
      clearTimeout(timer);
      // The exit handlers requeue what the workers still held.
      await Promise.all([...exits]);
    },
    onDeath(fn) {
      deathHandler = fn;
    },
  };
}
