import { Worker } from 'node:worker_threads';
import { SpoolError, errorMessage, type PetrelErrorCode } from '../shared/index.js';
import { createCommitter, type FatalHandler } from './committer.js';
import type { Db } from './db.js';
import { checkpointTruncate, prepareHotOps, type HotOp, type HotResult } from './hot-ops.js';

/** Runs hot-path writes with group commit; each promise settles after its own fsync'd commit. */
export interface Writer {
  /**
   * The message bodies of `insert` and `stage` ops may be moved to another thread rather than
   * copied (see threadWriter): the caller must not read them once it has called run().
   */
  run<O extends HotOp>(op: O): Promise<HotResult<O['op']>>;
  /** Waits for the writes under way, then lets go of the write connection. */
  close(): Promise<void>;
}

/** Commits on the calling thread, on the spool's own connection (the CLI, tests). */
export function inProcessWriter(db: Db, onFatal: FatalHandler): Writer {
  const committer = createCommitter(db, onFatal);
  const exec = prepareHotOps(db);
  return {
    run: <O extends HotOp>(op: O) =>
      op.op === 'checkpoint'
        ? Promise.resolve(checkpointTruncate(db, true) as HotResult<O['op']>)
        : committer.run(() => exec(op) as HotResult<O['op']>),
    close: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

/** The settlement of one op the writer thread ran. */
export type WriterOpReply =
  | { readonly seq: number; readonly ok: true; readonly value: unknown }
  | { readonly seq: number; readonly ok: false; readonly code: PetrelErrorCode; readonly message: string };

/**
 * What the writer thread posts back (see writer-worker.ts): the replies of the ops a group
 * commit settled, in one message, or the end of the thread's usefulness.
 */
export type WriterReply =
  | { readonly type: 'replies'; readonly replies: readonly WriterOpReply[] }
  | { readonly type: 'fatal'; readonly code: PetrelErrorCode; readonly message: string };

/** What the main thread posts: the ops of one turn of its event loop, or the request to close. */
export type WriterRequest =
  { readonly ops: readonly { seq: number; op: HotOp }[] } | { readonly close: true };

/**
 * Commits on a worker thread that owns a second write connection, so that SQLite's commit and
 * its fsync never hold the event loop: submissions and deliveries go on while a group commits,
 * and the next group gathers meanwhile. Other writes (admin commands, privacy, suppressions) stay
 * on the spool's connection and take SQLite's write lock in turn.
 */
export function threadWriter(path: string, onFatal: FatalHandler): Writer {
  const worker = new Worker(new URL('./writer-worker.js', import.meta.url), { workerData: { path } });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let seq = 0;
  let broken: SpoolError | null = null;
  let closing: Promise<void> | null = null;
  let idle: (() => void) | null = null;
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      exited = true;
      resolve();
    }),
  );

  const rejectAll = (err: SpoolError): void => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
    idle?.();
  };
  const fail = (err: SpoolError): void => {
    if (!broken) {
      broken = err;
      onFatal(err);
    }
    rejectAll(err);
  };

  worker.on('message', (m: WriterReply) => {
    if (m.type === 'fatal') {
      fail(new SpoolError(m.code, m.message));
      return;
    }
    for (const r of m.replies) {
      const w = waiting.get(r.seq);
      if (!w) continue;
      waiting.delete(r.seq);
      if (r.ok) w.resolve(r.value);
      else w.reject(new SpoolError(r.code, r.message));
    }
    if (waiting.size === 0) idle?.();
  });
  worker.on('error', (err) =>
    fail(
      new SpoolError('PETREL_SPOOL_WRITE', `spool writer thread failed: ${errorMessage(err)}`, {
        cause: err,
      }),
    ),
  );
  worker.on('exit', (code) => {
    const err = new SpoolError('PETREL_SPOOL_WRITE', `spool writer thread exited (code ${code})`);
    // Expected once close() asked for it; replies still owed then are lost all the same.
    if (closing) rejectAll(err);
    else fail(err);
  });

  // The ops of one turn of the event loop go in one message: the thread commits them in one
  // group anyway, and each message costs a structured clone and a wake-up of the other side.
  let outbox: { seq: number; op: HotOp }[] = [];
  const post = (ops: { seq: number; op: HotOp }[]): boolean => {
    try {
      worker.postMessage({ ops } satisfies WriterRequest, [
        ...new Set(ops.flatMap((o) => transferable(o.op))),
      ]);
      return true;
    } catch (err) {
      if (ops.length > 1) return false;
      const { seq: id } = ops[0]!;
      const why = `spool write not sent to the writer thread: ${errorMessage(err)}`;
      waiting.get(id)?.reject(new SpoolError('PETREL_SPOOL_WRITE', why, { cause: err }));
      waiting.delete(id);
      if (waiting.size === 0) idle?.();
      return true;
    }
  };
  const send = (): void => {
    const ops = outbox;
    outbox = [];
    // An op that cannot be sent (one that does not clone) fails alone, not its whole turn.
    if (!post(ops)) for (const o of ops) post([o]);
  };

  return {
    run<O extends HotOp>(op: O): Promise<HotResult<O['op']>> {
      if (broken) return Promise.reject(broken);
      if (closing) return Promise.reject(new SpoolError('PETREL_SPOOL_WRITE', 'spool is closing'));
      return new Promise((resolve, reject) => {
        const id = ++seq;
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        if (outbox.length === 0) setImmediate(send);
        outbox.push({ seq: id, op });
      });
    },
    close() {
      closing ??= (async () => {
        if (!exited && waiting.size > 0)
          await Promise.race([new Promise<void>((resolve) => (idle = resolve)), exit]);
        if (!exited) worker.postMessage({ close: true } satisfies WriterRequest);
        await exit;
      })();
      return closing;
    },
  };
}

/**
 * The memory of the bodies an op carries that can move to the writer thread without a copy: a
 * Buffer that owns its whole ArrayBuffer. Small Buffers share Node's pool with other Buffers,
 * which moving would empty, so they are copied.
 */
function transferable(op: HotOp): ArrayBuffer[] {
  const bodies =
    op.op === 'insert' ? [op.message.body] : op.op === 'stage' ? op.copies.map((c) => c.message.body) : [];
  const out = new Set<ArrayBuffer>();
  for (const b of bodies) {
    if (b.buffer instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength)
      out.add(b.buffer);
  }
  return [...out];
}
