import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';

function message(n: number, session: number): Buffer {
  // Distinct, 8-bit and multi-line, so a torn or mixed-up row cannot compare equal.
  const body = `message ${n} of session ${session}\r\n${'Grüße 📬 '.repeat(40)}\r\n`.repeat(8);
  return Buffer.from(
    `From: sender@example.com\r\nTo: r@dest.test\r\nSubject: durability ${session}/${n}\r\n` +
      `Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <d-${session}-${n}@example.com>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`,
  );
}

describe('durability', () => {
  const dirs: TestDir[] = [];
  afterAll(() => dirs.forEach((d) => d.cleanup()));

  it('keeps every message that got a 250 when the daemon is killed with SIGKILL mid-run', async () => {
    const t = makeTestDir();
    dirs.push(t);
    addUser(t, 'app', ['example.com'], 'pw');
    const daemon = await startDaemon(t);
    const acked = new Map<string, Buffer>();
    const SESSIONS = 8;
    let stop = false;

    const runSession = async (s: number): Promise<void> => {
      const c = await RawSmtp.connect(daemon.ports.submission);
      await c.login('app', 'pw');
      for (let n = 0; n < 400 && !stop; n++) {
        const msg = message(n, s);
        const mail = await c.command('MAIL FROM:<sender@example.com>');
        if (mail.code !== 250) break;
        if ((await c.command('RCPT TO:<r@dest.test>')).code !== 250) break;
        const r = await c.data(msg);
        if (r.code !== 250) break;
        acked.set(/queued as (\S+)/.exec(r.text)![1]!, msg);
      }
      c.close();
    };

    const sessions = Array.from({ length: SESSIONS }, (_, s) => runSession(s).catch(() => undefined));
    // Kill while sessions are mid-flight, once a fair number of messages has been acknowledged.
    const deadline = Date.now() + 15_000;
    while (acked.size < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    daemon.child.kill('SIGKILL');
    stop = true;
    await once(daemon.child, 'exit');
    await Promise.all(sessions);
    expect(acked.size).toBeGreaterThanOrEqual(150);

    const restarted = await startDaemon(t);
    await restarted.stop();
    const spool = openSpool(t.dataDir);
    try {
      let intact = 0;
      for (const [id, sent] of acked) {
        const stored = await spool.messages.get(id);
        expect(stored, `message ${id} acknowledged but missing`).not.toBeNull();
        expect(stored!.body.subarray(stored!.body.length - sent.length).equals(sent)).toBe(true);
        expect(stored!.recipients).toHaveLength(1);
        intact++;
      }
      expect(intact).toBe(acked.size);
    } finally {
      await spool.close();
    }
  }, 60_000);
});
