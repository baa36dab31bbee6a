import { statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { systemClock, type Clock } from '../shared/index.js';
import { createAccountStore, type AccountStore } from './account-store.js';
import { openDatabase, pragma, type Db } from './db.js';
import { MIGRATIONS } from './migrations.js';
import type { FatalHandler } from './committer.js';
import { inProcessWriter, threadWriter } from './writer.js';
import { watchSpace } from './space-watch.js';
import { createMessageStore, type MessageStore } from './message-store.js';
import { createQueueStore, type QueueStore } from './queue-store.js';
import { createDkimKeyStore, type DkimKeyStore } from './dkim-store.js';
import { createSuppressionStore, type SuppressionStore } from './suppression-store.js';
import { createEventStore, type EventStore } from './event-store.js';
import { createEgressStore, type EgressStore } from './egress-store.js';
import { createKeyStore, type ApiKeyStore } from './key-store.js';
import { createIdempotencyStore, type IdempotencyStore } from './idempotency-store.js';
import { createGuardStore, type GuardStore } from './guard-store.js';
import { createPrivacyStore, type PrivacyStore } from './privacy-store.js';

/**
 * The single source of truth for Petrel's state. The daemon and the CLI each open their own
 * Spool on the same database; every connection keeps synchronous=FULL and secure_delete=ON.
 * Everything the rest of Petrel calls returns promises, so another backend can replace SQLite.
 */
export interface Spool {
  readonly path: string;
  readonly messages: MessageStore;
  readonly accounts: AccountStore;
  readonly queue: QueueStore;
  readonly dkimKeys: DkimKeyStore;
  readonly suppressions: SuppressionStore;
  /** The delivery log as a stream (CLI tail, webhooks) and the webhook cursors. */
  readonly events: EventStore;
  readonly privacy: PrivacyStore;
  /** Accounts' complaint and bounce rates, and the pauses they led to. */
  readonly guard: GuardStore;
  /** Warm-up counts of the [[egress]] sources. */
  readonly egress: EgressStore;
  /** API keys (hashes of their secrets, scopes, networks). */
  readonly keys: ApiKeyStore;
  /** Idempotency-Key records of API calls. */
  readonly idempotency: IdempotencyStore;
  /** The per-install secret; VERP tokens and keyed hashes derive their keys from it. */
  readonly secret: Buffer;
  /** Changes whenever another connection (the CLI) commits; cheap to poll. */
  dataVersion(): Promise<number>;
  /**
   * Which backend, where, and whether a commit there survives a crash of the machine
   * (SQLite synchronous=FULL; PostgreSQL fsync and synchronous_commit on), for the start-up
   * warning and `petrel doctor`.
   */
  health(): Promise<SpoolHealth>;
  /**
   * Whether this process may run the cluster's one `job` now (a webhook receiver's dispatch,
   * the retention sweep), taking it when it is free. Held until this process, or its database
   * connection, goes; another node then takes it. With SQLite there is one node: always true.
   */
  claim(job: string): Promise<boolean>;
  /** Reads a PRAGMA for diagnostics and the durability tests. */
  pragma(name: 'synchronous' | 'secure_delete' | 'journal_mode'): Promise<string | number>;
  /**
   * True when a durable write succeeds now (readiness); false too while a message was last
   * refused for want of space and the disk has no room for it yet.
   */
  writable(): Promise<boolean>;
  /** Bytes of the database, WAL and shared-memory files. */
  fileBytes(): number;
  /** Whether the filesystem has room for a message of `bytes` (with the margin a commit needs). */
  roomFor(bytes: number): boolean;
  /** Checkpoints the WAL into the main file and truncates it. */
  checkpoint(): Promise<void>;
  /** A consistent copy of the database at `file` while it stays in use (VACUUM INTO: one snapshot). */
  backup(file: string): Promise<void>;
  close(): Promise<void>;
}

export interface SpoolHealth {
  readonly backend: 'sqlite' | 'postgres';
  /** The file, or the URL without its password. */
  readonly location: string;
  readonly durable: boolean;
  /** The settings durability rests on, as read, e.g. "synchronous=FULL". */
  readonly settings: string;
  /** Schema version applied, and the one this Petrel knows. */
  readonly schema: { readonly current: number; readonly latest: number };
}

export interface SpoolOptions {
  readonly clock?: Clock;
  /** Called once when the storage fails in a way that makes further writes unsafe. */
  readonly onFatal?: FatalHandler;
  /**
   * Commit new mail, leases and delivery outcomes on a worker thread with its own connection
   * (the daemon), rather than on the caller's thread (the CLI, which writes little).
   */
  readonly writerThread?: boolean;
  /** Called when a write is refused for want of space (a node's other workers are told). */
  readonly onSpaceShort?: (bytes: number) => void;
}

export const SPOOL_FILE = 'petrel.db';

/** How long a readiness write may take before the spool counts as not writable. */
const WRITABLE_DEADLINE_MS = 2000;

/** The database path for a data directory. */
export function spoolPath(dataDir: string): string {
  return join(dataDir, SPOOL_FILE);
}

export function openSpool(dataDir: string, options: SpoolOptions = {}): Spool {
  const path = spoolPath(dataDir);
  const db: Db = openDatabase(path);
  const clock = options.clock ?? systemClock;
  const secret = (
    db.prepare("SELECT value FROM settings WHERE key = 'install_secret'").get() as { value: Buffer }
  ).value;
  let closed = false;
  const onFatal = options.onFatal ?? (() => undefined);
  const space = watchSpace(
    options.writerThread ? threadWriter(path, onFatal) : inProcessWriter(db, onFatal),
    dirname(path),
    options.onSpaceShort,
  );
  const writer = space.writer;
  const suppressions = createSuppressionStore(db, secret, clock, writer);
  return {
    path,
    messages: createMessageStore(db, clock, writer),
    accounts: createAccountStore(db, clock),
    queue: createQueueStore(db, clock, writer),
    dkimKeys: createDkimKeyStore(db, clock),
    suppressions,
    events: createEventStore(db, clock, writer),
    guard: createGuardStore(db, clock),
    egress: createEgressStore(db),
    keys: createKeyStore(db),
    idempotency: createIdempotencyStore(db),
    privacy: createPrivacyStore(db, suppressions, clock, writer),
    secret,
    async dataVersion() {
      return pragma(db, 'data_version') as number;
    },
    async pragma(name) {
      return pragma(db, name) as string | number;
    },
    claim: async () => true,
    async health() {
      const synchronous = pragma(db, 'synchronous') as number;
      const current = pragma(db, 'user_version') as number;
      return {
        backend: 'sqlite',
        location: path,
        durable: synchronous >= 2,
        settings: `synchronous=${['OFF', 'NORMAL', 'FULL', 'EXTRA'][synchronous] ?? synchronous}`,
        schema: { current, latest: MIGRATIONS.length },
      };
    },
    roomFor: (bytes) => space.roomFor(bytes),
    async writable() {
      if (space.short()) return false;
      // Through the writer, so that the probe never waits for SQLite's lock on the event loop;
      // a write that has not committed within the deadline counts as a failure.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), WRITABLE_DEADLINE_MS);
      });
      try {
        const ok = await Promise.race([
          writer.run({ op: 'probe', now: clock.now() }).then(
            () => true,
            () => false,
          ),
          deadline,
        ]);
        if (ok) space.clear();
        return ok;
      } finally {
        clearTimeout(timer);
      }
    },
    fileBytes() {
      let total = 0;
      for (const suffix of ['', '-wal', '-shm']) {
        try {
          total += statSync(`${path}${suffix}`).size;
        } catch {
          // A missing -wal or -shm simply has no size.
        }
      }
      return total;
    },
    async backup(file) {
      // VACUUM INTO reads one snapshot, like the online backup, without its native Backup object
      // (see db.ts), and leaves no free pages behind. It fills an empty file: made owner-only
      // first, so the copy's personal data is never readable by others, not even for a moment.
      writeFileSync(file, '', { mode: 0o600, flag: 'wx' });
      db.prepare('VACUUM INTO ?').run(file);
    },
    async checkpoint() {
      pragma(db, 'wal_checkpoint(TRUNCATE)', true);
    },
    async close() {
      if (closed) return;
      closed = true;
      // Writes under way finish before the handles go away.
      await writer.close();
      try {
        // PASSIVE: TRUNCATE would wait for the daemon's writer (every CLI command closes so), and
        // erasure truncates the WAL on its own.
        pragma(db, 'wal_checkpoint(PASSIVE)', true);
      } finally {
        db.close();
      }
    },
  };
}
