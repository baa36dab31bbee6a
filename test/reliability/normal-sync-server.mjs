// Negative control for the strace ordering check (RELIABILITY.md case 2): a minimal SMTP server
// that stores each message with better-sqlite3 in WAL mode with synchronous=NORMAL, the library's
// default that Petrel overrides. It answers 250 without an fsync of the WAL, which the check must
// catch. Never part of Petrel; prints "listening <port> <pid>" once ready.
// A plain-Node control process outside Petrel, run only on the machine's Node; its pragmas are
// exec'd so that it makes no statement beyond the one it keeps.
// eslint-disable-next-line no-restricted-syntax
import Database from 'better-sqlite3';
import { SMTPServer } from 'smtp-server';

const db = new Database(process.argv[2]);
db.exec('PRAGMA journal_mode = WAL');
db.exec('PRAGMA synchronous = NORMAL');
db.exec('CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
const insert = db.prepare('INSERT INTO messages (body) VALUES (?)');

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData(stream, _session, callback) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      const { lastInsertRowid } = insert.run(Buffer.concat(chunks));
      callback(null, `2.0.0 OK queued as ${lastInsertRowid}`);
    });
  },
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.server.address().port} ${process.pid}`));
// Stop at once: server.close() would wait for clients that hang up without QUIT.
process.on('SIGTERM', () => process.exit(0));
