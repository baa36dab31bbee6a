import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addUser,
  cliAsync,
  logFiles,
  makeTestDir,
  startDaemon,
  type Daemon,
  type LogLine,
  type TestDir,
} from '../helpers/daemon.js';
import { encodedForms, readFilesLower, softBreakForms } from '../helpers/grep.js';
import { routesTo } from '../helpers/routed.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { recordFigure } from './figures.js';

const REQUESTS = 20;
const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** How the address shows in its message; all but `plain` mention it only inside the content. */
const FORMS = ['plain', 'base64', 'qpsoft', 'rfc2047', 'mixedcase'] as const;
/** What the sink does with the message: the bounced ones come back as a DSN quoting it. */
const OUTCOMES = ['deliver', 'bounce', 'defer'] as const;

interface Subject {
  readonly address: string;
  readonly form: (typeof FORMS)[number];
  readonly outcome: (typeof OUTCOMES)[number];
  /** The spelling written into the message. */
  readonly written: string;
}

// Distinctive local parts of one length, so that no address is a part of another and a match
// can only come from that person's data. Forms and outcomes cycle so every pair occurs.
const SUBJECTS: Subject[] = Array.from({ length: REQUESTS }, (_, i) => {
  const address = `zqxer${String(i).padStart(2, '0')}k@dest.test`;
  const form = FORMS[i % FORMS.length]!;
  const written =
    form === 'mixedcase'
      ? [...address].map((ch, k) => (k % 2 === 0 ? ch.toUpperCase() : ch)).join('')
      : address;
  return { address, form, outcome: OUTCOMES[i % OUTCOMES.length]!, written };
});

/** The message naming `s`, to `s` itself when plain, else to a recipient of its own. */
function messageFor(s: Subject, i: number): { to: string; data: string } {
  const to = s.form === 'plain' ? s.address : `friend${i}@else.test`;
  const head = [`From: sender@example.com`, `To: ${to}`, `Subject: m${i} ${s.outcome}`];
  const body = ((): { headers: string[]; body: string } => {
    switch (s.form) {
      case 'plain':
        return { headers: [], body: `Hello ${s.address}.` };
      case 'base64':
        return {
          headers: ['MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b1"'],
          body: [
            '--b1',
            'Content-Type: text/plain; charset=utf-8',
            '',
            'See the HTML part.',
            '--b1',
            'Content-Type: text/html; charset=utf-8',
            'Content-Transfer-Encoding: base64',
            '',
            b64(`<p>Write to <a href="mailto:${s.address}">our colleague</a>.</p>`),
            '--b1--',
          ].join('\r\n'),
        };
      case 'qpsoft': {
        // The soft line break falls inside the address, at a different place each time.
        const k = 2 + (i % 10);
        return {
          headers: [
            'MIME-Version: 1.0',
            'Content-Type: text/plain; charset=utf-8',
            'Content-Transfer-Encoding: quoted-printable',
          ],
          body: `Please write to ${s.address.slice(0, k)}=\r\n${s.address.slice(k).replace('@', '=40')} today.`,
        };
      }
      case 'rfc2047':
        return { headers: [`Cc: =?utf-8?b?${b64(s.address)}?= <cc${i}@else.test>`], body: 'Copied by name.' };
      case 'mixedcase':
        return { headers: [], body: `Reach ${s.written} for details.` };
    }
  })();
  return { to, data: [...head, ...body.headers, '', body.body, ''].join('\r\n') };
}

/** Every spelling of the address a file could hold: plain in any case, base64, QP, soft-broken QP. */
function formsOf(s: Subject): string[] {
  return [...encodedForms(s.address, [s.written]), ...softBreakForms(s.address)].map((f) => f.toLowerCase());
}

function p95(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.ceil(0.95 * sorted.length) - 1]!;
}

/** A config with log_dir and small files, so that the run leaves rolled-over logs behind. */
function withLogDir(t: TestDir, logDir: string, maxSize: string, maxFiles: number): void {
  const config = readFileSync(t.configPath, 'utf8');
  writeFileSync(
    t.configPath,
    config.replace(
      'log_level = "debug"\n',
      `log_level = "debug"\nlog_dir = ${JSON.stringify(logDir)}\nlog_max_size = "${maxSize}"\nlog_max_files = ${maxFiles}\n`,
    ),
  );
}

async function submit(daemon: Daemon, to: string, data: string): Promise<number> {
  const c = await RawSmtp.connect(daemon.ports.submission);
  try {
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) return rcpt.code;
    return (await c.data(data)).code;
  } finally {
    c.close();
  }
}

const events = (logs: readonly LogLine[], event: string): LogLine[] =>
  logs.filter((l) => l['event'] === event);

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('privacy erasure', () => {
  it('cases 42, 56: after erasing 20 addresses, no file under the data and log dirs (db, WAL, SHM, rolled logs) nor /metrics holds a byte of any of them in any form', async () => {
    const sink: Sink = await startSink({
      data: (m) => {
        if (m.mailFrom === '') return undefined;
        const rcpt = m.rcptTo[0]!;
        if (m.body.includes(' bounce\r\n'))
          return { code: 550, text: `5.1.1 <${rcpt}>: mailbox unavailable` };
        if (m.body.includes(' defer\r\n')) return { code: 451, text: `4.3.0 <${rcpt}>: try again later` };
        return undefined;
      },
    });
    cleanups.push(() => sink.close());
    const t = makeTestDir(`
[delivery]
poll_interval = "200ms"

[delivery.default]
retry = ["1h"]

${routesTo(sink.port, 'dest.test', 'else.test', 'example.com')}
`);
    cleanups.push(() => t.cleanup());
    const logDir = join(t.dir, 'log');
    withLogDir(t, logDir, '8KB', 1000);
    addUser(t, 'app', ['example.com'], 'pw');
    let daemon = await startDaemon(t, { logDir });
    cleanups.push(async () => void (await daemon.stop()));

    for (const [i, s] of SUBJECTS.entries()) {
      const m = messageFor(s, i);
      expect(await submit(daemon, m.to, m.data)).toBe(250);
    }
    const count = (o: Subject['outcome']): number => SUBJECTS.filter((s) => s.outcome === o).length;
    // Every message tried once, and a DSN delivered for each bounce.
    await until(
      'every first attempt and DSN',
      () =>
        events(daemon.logs, 'bounce').length >= count('bounce') &&
        events(daemon.logs, 'transient_failure').length >= count('defer') &&
        events(daemon.logs, 'delivery').length >= count('deliver') + count('bounce'),
      20_000,
    );
    expect(sink.messages.filter((m) => m.mailFrom === '')).toHaveLength(count('bounce'));
    expect(logFiles(logDir).length, 'the logs rolled over').toBeGreaterThan(2);

    const dirs = [t.dataDir, logDir];
    const residue = (files: { path: string; text: string }[], metrics: string): Map<string, string[]> => {
      const found = new Map<string, string[]>();
      for (const s of SUBJECTS) {
        const hits = formsOf(s).flatMap((form) => [
          ...files
            .filter((f) => f.text.includes(form))
            .map((f) => `${basename(f.path)}: ${JSON.stringify(form)}`),
          ...(metrics.includes(form) ? [`/metrics: ${JSON.stringify(form)}`] : []),
        ]);
        if (hits.length > 0) found.set(s.address, [...new Set(hits)]);
      }
      return found;
    };
    const metricsText = async (): Promise<string> =>
      (await (await fetch(`http://127.0.0.1:${daemon.ports.http!}/metrics`)).text()).toLowerCase();

    // The grep sees every address before: each is stored in the form it was written in.
    const before = residue(readFilesLower(dirs), '');
    expect(SUBJECTS.filter((s) => !before.has(s.address)).map((s) => s.address)).toEqual([]);

    const seconds: number[] = [];
    for (const [i, s] of SUBJECTS.entries()) {
      // Half the requests spell the address in upper case: erasure matches any case.
      const asked = i % 2 === 0 ? s.address : s.address.toUpperCase();
      const started = performance.now();
      const erase = await cliAsync(t, ['--json', 'privacy', 'erase', asked]);
      seconds.push((performance.now() - started) / 1000);
      expect(erase.status, erase.stderr).toBe(0);
      const report = JSON.parse(erase.stdout) as { counts: Record<string, number> };
      // A DSN returns the header block: it names the address when the header block did.
      const quoted = s.outcome === 'bounce' && (s.form === 'plain' || s.form === 'rfc2047');
      expect(report.counts['messages'], s.address).toBe(quoted ? 2 : 1);
    }
    await until('the erasures counted', async () =>
      (await metricsText()).includes(`petrel_privacy_erasures_total ${REQUESTS}`),
    );

    const running = residue(readFilesLower(dirs), await metricsText());
    // Stopping checkpoints the WAL and flushes the last log lines; start again to read the
    // files as a restarted daemon leaves them.
    await daemon.stop();
    const stopped = residue(readFilesLower(dirs), '');
    daemon = await startDaemon(t, { logDir });
    const restarted = residue(readFilesLower(dirs), await metricsText());
    const left = new Map([...running, ...stopped, ...restarted]);
    recordFigure('erasure', {
      figure: 'erasure',
      requests: REQUESTS,
      residue: left.size,
      p95Seconds: p95(seconds),
    });

    expect(Object.fromEntries(left)).toEqual({});
  }, 120_000);

  it('case 45: a delivery failure whose reply names the address is written without it, and after log_max_files rotations its file is gone', async () => {
    const address = 'zqxlog45q@dest.test';
    const local = 'zqxlog45q';
    const sink = await startSink({
      rcpt: (a) =>
        a === address ? { code: 550, text: `5.1.1 <${a}>: no mailbox ${local} here` } : undefined,
    });
    cleanups.push(() => sink.close());
    const t = makeTestDir(`[delivery]\npoll_interval = "100ms"\n\n${routesTo(sink.port, 'dest.test')}`);
    cleanups.push(() => t.cleanup());
    const logDir = join(t.dir, 'log');
    const maxFiles = 2;
    withLogDir(t, logDir, '4KB', maxFiles);
    addUser(t, 'app', ['example.com'], 'pw');
    const daemon = await startDaemon(t, { logDir });
    cleanups.push(async () => void (await daemon.stop()));

    expect(
      await submit(daemon, address, `From: sender@example.com\r\nTo: ${address}\r\nSubject: x\r\n\r\nx\r\n`),
    ).toBe(250);
    const bounce = await until('the bounce line', () => events(daemon.logs, 'bounce')[0]);
    // The line as written, read from the file that holds it.
    const file = await until('the file holding the bounce line', () =>
      logFiles(logDir).find((f) => readFileSync(f, 'utf8').includes('"event":"bounce"')),
    );
    const line = readFileSync(file, 'utf8')
      .split('\n')
      .find((l) => l.includes('"event":"bounce"'))!;
    expect(JSON.parse(line)).toMatchObject({ msgId: bounce['msgId'], reply: { code: 550 } });
    expect(line).toMatch(/5\.1\.1/);
    expect(line.toLowerCase()).not.toContain(address);
    expect(line.toLowerCase()).not.toContain(local);

    // Each message writes its reception and delivery lines; send them until the file has rolled away.
    const n = (f: string): number => Number(basename(f).split('.')[1]);
    const current = await until(
      `${basename(file)} deleted`,
      async () => {
        await submit(daemon, 'other@dest.test', 'From: sender@example.com\r\nSubject: y\r\n\r\ny\r\n');
        return !existsSync(file) && n(logFiles(logDir).at(-1)!);
      },
      20_000,
    ).catch((err: unknown) => {
      throw new Error(
        `${String(err)}: ${logFiles(logDir)
          .map((f) => `${f} ${readFileSync(f).length}`)
          .join(', ')}`,
      );
    });
    // The new file opens before the oldest is deleted: once writing stops, limit.count remain
    // besides the current one.
    const files = await until('the oldest files deleted', () => {
      const now = logFiles(logDir);
      return now.length <= maxFiles + 1 && now;
    });
    expect(files).toHaveLength(maxFiles + 1);
    // Gone once the current file is limit.count + 1 ahead of it, not before.
    expect(current).toBeGreaterThanOrEqual(n(file) + maxFiles + 1);
    const kept = files.map((f) => readFileSync(f, 'utf8')).join('');
    expect(kept).not.toContain('"event":"bounce"');
    expect(kept.toLowerCase()).not.toContain(local);
  }, 60_000);
});
