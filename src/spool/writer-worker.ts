import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage, isPetrelError } from '../shared/index.js';
import { createCommitter } from './committer.js';
import { openDatabase } from './db.js';
import { checkpointTruncate, prepareHotOps, type HotOp } from './hot-ops.js';
import type { WriterOpReply, WriterReply, WriterRequest } from './writer.js';

// The spool's writer thread (see threadWriter): one write connection, group commit of the
// operations the main thread posts, one reply per operation after its commit.
const port = parentPort!;
const db = openDatabase((workerData as { path: string }).path);
// Waiting here blocks no event loop that serves clients: give a long admin write time to end.
db.exec('PRAGMA busy_timeout = 60000');
const exec = prepareHotOps(db);
const post = (m: WriterReply): void => port.postMessage(m);
// The replies a group commit settles go back in one message (their promises settle in one
// microtask run, so a microtask after the first sees them all).
let outbox: WriterOpReply[] = [];
const reply = (r: WriterOpReply): void => {
  if (outbox.length === 0)
    queueMicrotask(() => {
      const replies = outbox;
      outbox = [];
      post({ type: 'replies', replies });
    });
  outbox.push(r);
};
const committer = createCommitter(db, (err) =>
  post({ type: 'fatal', code: isPetrelError(err) ? err.code : 'PETREL_SPOOL_WRITE', message: err.message }),
);

const run = ({ seq, op }: { seq: number; op: HotOp }): void => {
  const failed = (err: unknown, code = isPetrelError(err) ? err.code : 'PETREL_SPOOL_WRITE'): void =>
    reply({ seq, ok: false, code, message: errorMessage(err) });
  if (op.op === 'checkpoint') {
    // Between group commits, never inside one; setImmediate lets a scheduled group go first.
    setImmediate(() => {
      try {
        reply({ seq, ok: true, value: checkpointTruncate(db, false) });
      } catch (err) {
        failed(err, 'PETREL_SPOOL_WRITE');
      }
    });
    return;
  }
  committer.run(() => exec(op)).then((value) => reply({ seq, ok: true, value }), failed);
};

port.on('message', (m: WriterRequest) => {
  if ('close' in m) {
    setImmediate(() => {
      db.close();
      port.close();
    });
    return;
  }
  for (const o of m.ops) run(o);
});
