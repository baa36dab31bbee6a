import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { interopTool } from '../helpers/interop.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

const tool = interopTool('/usr/sbin/smtp-sink', 'postfix');

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.skipIf(!tool.available)(
  `delivery to Postfix's smtp-sink${tool.available ? '' : `: ${tool.reason}`}`,
  () => {
    let sinkDir: string;
    let sink: ChildProcess;
    let port: number;
    let t: TestDir;
    let daemon: Daemon;

    beforeAll(async () => {
      sinkDir = mkdtempSync(join(tmpdir(), 'petrel-smtp-sink-'));
      chmodSync(sinkDir, 0o777);
      port = await freePort();
      // -D appends every message it accepts to one file, which the test reads back.
      sink = spawn(
        '/usr/sbin/smtp-sink',
        ['-u', 'nobody', '-D', join(sinkDir, 'dump'), `127.0.0.1:${port}`, '64'],
        { stdio: 'ignore' },
      );
      await until(async () => {
        try {
          const c = await RawSmtp.connect(port);
          c.close();
          return true;
        } catch {
          return false;
        }
      }, 5000);
      t = makeTestDir(`
[delivery]
poll_interval = "200ms"

[routes."postfix.test"]
host = "127.0.0.1"
port = ${port}
`);
      addUser(t, 'app', ['example.com'], 'pw');
      daemon = await startDaemon(t);
    });

    afterAll(async () => {
      await daemon?.stop();
      sink?.kill('SIGTERM');
      t?.cleanup();
      if (sinkDir) rmSync(sinkDir, { recursive: true, force: true });
    });

    it('delivers several messages with dot-stuffing and 8-bit bodies intact, and records each delivery', async () => {
      const c = await RawSmtp.connect(daemon.ports.submission);
      await c.login('app', 'pw');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        await c.command('MAIL FROM:<sender@example.com>');
        await c.command(`RCPT TO:<r${i}@postfix.test>`);
        const r = await c.data(
          `From: sender@example.com\r\nSubject: interop ${i}\r\n\r\n..leading dot and Grüße ${i}\r\n`,
        );
        expect(r.code).toBe(250);
        ids.push(/queued as (\S+)/.exec(r.text)![1]!);
      }
      c.close();
      const dump = join(sinkDir, 'dump');
      await until(
        () =>
          existsSync(dump) && (readFileSync(dump, 'latin1').match(/Subject: interop \d/g) ?? []).length === 5,
      );
      const text = readFileSync(dump).toString('utf8');
      for (let i = 0; i < 5; i++) expect(text).toContain(`.leading dot and Grüße ${i}`);
      const spool = openSpool(t.dataDir);
      try {
        await until(async () => {
          for (const id of ids)
            if (!(await spool.queue.events(id)).some((e) => e.type === 'delivery')) return false;
          return true;
        });
      } finally {
        await spool.close();
      }
    });
  },
);
