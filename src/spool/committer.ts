import { SpoolError, errorMessage } from '../shared/index.js';
import { isStorageFailure, isStorageFull, type Db } from './db.js';

/** Storage failures (EIO on fsync) leave the handle in an unknown state: stop using it. */
export type FatalHandler = (err: Error) => void;

/**
 * Group commit for every write on the hot path (message inserts, delivery outcomes): work queued
 * while the previous commit held the event loop runs in one transaction with one fsync, and each
 * caller's promise settles only after that commit. Each piece runs in its own savepoint, so one
 * that fails is rolled back alone; a failed commit fails the whole group.
 */
export interface Committer {
  run<T>(work: () => T): Promise<T>;
}

interface Pending {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

const MAX_BATCH = 512;

function wrap(err: unknown): SpoolError {
  const code = isStorageFull(err) ? 'PETREL_SPOOL_FULL' : 'PETREL_SPOOL_WRITE';
  return err instanceof SpoolError
    ? err
    : new SpoolError(code, `spool write failed: ${errorMessage(err)}`, { cause: err });
}

export function createCommitter(db: Db, onFatal: FatalHandler): Committer {
  const pending: Pending[] = [];
  let scheduled = false;
  let broken: SpoolError | null = null;

  const runBatch = db.transaction((batch: readonly Pending[]) =>
    batch.map((p) => {
      try {
        // A nested transaction is a savepoint: a failing piece is undone without the others.
        return { ok: true as const, value: db.transaction(p.work)() };
      } catch (err) {
        if (isStorageFailure(err) || isStorageFull(err)) throw err;
        return { ok: false as const, err: wrap(err) };
      }
    }),
  );

  const flush = (): void => {
    scheduled = false;
    while (pending.length > 0) {
      const batch = pending.splice(0, MAX_BATCH);
      if (broken) {
        for (const p of batch) p.reject(broken);
        continue;
      }
      let results: ReturnType<typeof runBatch>;
      try {
        results = runBatch.immediate(batch);
      } catch (err) {
        const failure = wrap(err);
        if (!isStorageFull(err) && isStorageFailure(err)) {
          broken = failure;
          onFatal(failure);
        }
        for (const p of batch) p.reject(failure);
        continue;
      }
      results.forEach((r, i) => (r.ok ? batch[i]!.resolve(r.value) : batch[i]!.reject(r.err)));
    }
  };

  return {
    run<T>(work: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        if (broken) {
          reject(broken);
          return;
        }
        pending.push({ work, resolve: resolve as (v: unknown) => void, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}
