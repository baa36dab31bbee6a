import type pg from 'pg';
import { SpoolError, systemClock } from '../../shared/index.js';
import type { Spool, SpoolOptions } from '../spool.js';
import type { Account } from '../account-store.js';
import { createPgAccountStore, createPgDkimKeyStore, type AccountCache } from './accounts.js';
import { describeUrl, openPgDatabase } from './db.js';
import { PG_MIGRATIONS } from './migrations.js';
import { createPgEventStore } from './events.js';
import { createPgEgressStore } from './egress.js';
import { createPgKeyStore } from './keys.js';
import { createPgIdempotencyStore } from './idempotency.js';
import { createPgGuardStore } from './guard.js';
import { createPgPrivacyStore } from './privacy.js';
import { createPgMessageStore, createPgQueueStore } from './queue.js';
import { createPgSuppressionStore } from './suppressions.js';
import { pgWriter } from './writer.js';

/** The channel every change that other nodes must see at once is announced on. */
const CHANGES = 'petrel_changes';

/** How long a readiness write may take before the spool counts as not writable. */
const WRITABLE_DEADLINE_MS = 2000;

/**
 * The spool on PostgreSQL: the same functions as on SQLite, shared by every node. New mail,
 * leases and outcomes commit in groups on the writer's connection; everything else goes through
 * the pool. `dataVersion` counts change notifications (LISTEN/NOTIFY) instead of SQLite's
 * data_version, so a node re-reads accounts, keys, suspensions and fences when another node or
 * the CLI changed them.
 */
export async function openPgSpool(
  url: string,
  options: SpoolOptions = {},
  pgOptions: { readonly eraseRewrite?: boolean } = {},
): Promise<Spool> {
  const clock = options.clock ?? systemClock;
  const db = await openPgDatabase(url);
  const [secretRow] = await db.rows<{ value: Buffer }>(
    "SELECT value FROM settings WHERE key = 'install_secret'",
  );
  if (!secretRow) {
    await db.close();
    throw new SpoolError('PETREL_SPOOL_UNAVAILABLE', `spool ${describeUrl(url)} has no install secret`);
  }
  const secret = secretRow.value;
  const writer = pgWriter(db, options.onFatal ?? (() => undefined));
  let version = 0;
  const accountsByName = new Map<string, Account | null>();
  const accountCache: AccountCache = {
    get: (name) => (listener ? accountsByName.get(name) : undefined),
    set: (name, account, epoch) => {
      if (listener && epoch === version && accountsByName.size < 10_000) accountsByName.set(name, account);
    },
    epoch: () => version,
  };
  const changed = (): void => {
    version += 1;
    accountsByName.clear();
  };
  let listener: pg.Client | null = null;
  let closed = false;
  const listen = async (): Promise<void> => {
    try {
      const client = await db.client();
      client.on('notification', changed);
      client.on('error', () => {
        // A lost connection may have missed notifications: count one, and listen again.
        listener = null;
        changed();
      });
      await client.query(`LISTEN ${CHANGES}`);
      listener = client;
    } catch {
      listener = null;
    }
  };
  await listen();
  const notify = async (): Promise<void> => {
    changed();
    await db.run('SELECT pg_notify($1, $2)', [CHANGES, '']);
  };
  // Cluster-wide single jobs: session advisory locks on a connection of their own, which the
  // server drops with the connection when this node dies or is cut off.
  let jobs: pg.Client | null = null;
  const held = new Set<string>();
  const claim = async (job: string): Promise<boolean> => {
    if (closed) return false;
    try {
      if (!jobs) {
        held.clear();
        const client = await db.client();
        client.on('error', () => {
          if (jobs === client) {
            jobs = null;
            held.clear();
          }
        });
        jobs = client;
      }
      if (held.has(job)) {
        await jobs.query('SELECT 1');
        return true;
      }
      const r = await jobs.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_lock(hashtext('petrel job:' || $1)) AS ok",
        [job],
      );
      if (r.rows[0]?.ok) held.add(job);
      return held.has(job);
    } catch {
      const dead = jobs;
      jobs = null;
      held.clear();
      await dead?.end().catch(() => undefined);
      return false;
    }
  };
  const suppressions = createPgSuppressionStore(db, secret, clock);
  return {
    path: describeUrl(url),
    messages: createPgMessageStore(db, clock, writer),
    accounts: createPgAccountStore(db, clock, notify, accountCache),
    queue: createPgQueueStore(db, clock, writer, notify),
    dkimKeys: createPgDkimKeyStore(db, clock, notify),
    guard: createPgGuardStore(db, clock, notify),
    egress: createPgEgressStore(db),
    keys: createPgKeyStore(db),
    idempotency: createPgIdempotencyStore(db),
    suppressions,
    events: createPgEventStore(db, clock),
    privacy: createPgPrivacyStore(db, suppressions, clock, {
      notify,
      vacuumFull: pgOptions.eraseRewrite ?? false,
    }),
    secret,
    async dataVersion() {
      if (!listener && !closed) {
        changed();
        await listen();
      }
      return version;
    },
    claim,
    async health() {
      const [s] = await db.rows<{ fsync: string; sync: string; v: number | null }>(
        `SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync,
                (SELECT max(version) FROM schema_migrations) AS v`,
      );
      // remote_write and remote_apply wait for a standby as well; local and on flush here.
      const durable = s?.fsync === 'on' && s.sync !== 'off';
      return {
        backend: 'postgres',
        location: describeUrl(url),
        durable,
        settings: `fsync=${s?.fsync ?? '?'}, synchronous_commit=${s?.sync ?? '?'}`,
        schema: { current: s?.v ?? 0, latest: PG_MIGRATIONS.length },
      };
    },
    async pragma(name) {
      throw new SpoolError(
        'PETREL_SPOOL_UNAVAILABLE',
        `PRAGMA ${name} is SQLite's; this spool is PostgreSQL`,
      );
    },
    async writable() {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), WRITABLE_DEADLINE_MS);
      });
      try {
        return await Promise.race([
          writer.run({ op: 'probe', now: clock.now() }).then(
            () => true,
            () => false,
          ),
          deadline,
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    // The server's files are its own: no size or free space to watch from here.
    fileBytes: () => 0,
    roomFor: () => true,
    async checkpoint() {
      await db.run('CHECKPOINT').catch(() => undefined);
    },
    async backup() {
      throw new SpoolError(
        'PETREL_SPOOL_UNAVAILABLE',
        'a PostgreSQL spool is backed up with pg_dump or pg_basebackup, not petrel',
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      await writer.close();
      await listener?.end().catch(() => undefined);
      await jobs?.end().catch(() => undefined);
      await db.close();
    },
  };
}
