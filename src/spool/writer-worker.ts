import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage, isPetrelError } from '../shared/index.js';
import { createCommitter } from './committer.js';
import { openDatabase } from './db.js';
import { checkpointTruncate, prepareHotOps, type HotOp } from './hot-ops.js';
import type { WriterReply } from './writer.js';

// The spool's writer thread (see threadWriter): one write connection, group commit of the
// operations the main thread posts, one reply per operation after its commit.
const port = parentPort!;
const db = openDatabase((workerData as { path: string }).path);
// Waiting here blocks no event loop that serves clients: give a long admin write time to end.
db.exec('PRAGMA busy_timeout = 60000');
const exec = prepareHotOps(db);
const post = (m: WriterReply): void => port.postMessage(m);
const committer = createCommitter(db, (err) =>
  post({ type: 'fatal', code: isPetrelError(err) ? err.code : 'PETREL_SPOOL_WRITE', message: err.message }),
);

port.on('message', (m: { seq: number; op: HotOp } | { close: true }) => {
  if ('close' in m) {
    setImmediate(() => {
      db.close();
      port.close();
    });
    return;
  }
  if (m.op.op === 'checkpoint') {
    // Between group commits, never inside one; setImmediate lets a scheduled group go first.
    setImmediate(() => {
      try {
        post({ type: 'reply', seq: m.seq, ok: true, value: checkpointTruncate(db, false) });
      } catch (err) {
        post({
          type: 'reply',
          seq: m.seq,
          ok: false,
          code: 'PETREL_SPOOL_WRITE',
          message: errorMessage(err),
        });
      }
    });
    return;
  }
  committer
    .run(() => exec(m.op))
    .then(
      (value) => post({ type: 'reply', seq: m.seq, ok: true, value }),
      (err: unknown) =>
        post({
          type: 'reply',
          seq: m.seq,
          ok: false,
          code: isPetrelError(err) ? err.code : 'PETREL_SPOOL_WRITE',
          message: errorMessage(err),
        }),
    );
});
