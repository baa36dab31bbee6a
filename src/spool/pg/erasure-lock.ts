import type { PgQuery } from './db.js';

/**
 * The last transaction of an erasure must see every message that names the address, which on
 * SQLite its write lock guarantees. Here each transaction that inserts messages takes this lock
 * shared as its first statement, and the erasure's last transaction takes it exclusive as its
 * first: that one starts once the inserts under way have committed, and none commits a message
 * until it is done. Both take it before any row lock, so neither waits for the other while
 * holding rows the other needs.
 */
const ERASURE_LOCK = 0x65726173; // "eras"

/** BEGIN and the shared lock in one round trip (the writer's groups). */
export const BEGIN_SHARING_ERASURE_LOCK = `BEGIN; SELECT pg_advisory_xact_lock_shared(${ERASURE_LOCK})`;

/** For a transaction that inserts messages: before its first statement. */
export async function shareErasureLock(q: PgQuery): Promise<void> {
  await q.run('SELECT pg_advisory_xact_lock_shared($1)', [ERASURE_LOCK]);
}

/** For the last transaction of an erasure: before its first statement. */
export async function takeErasureLock(q: PgQuery): Promise<void> {
  await q.run('SELECT pg_advisory_xact_lock($1)', [ERASURE_LOCK]);
}
