// Shared helpers of the benchmarks in test/bench: processes, ports, /proc readings, the sink,
// a private Postfix instance and a small raw-socket SMTP client for time-to-250.
// Plain ESM, Node 20, no dependencies. Linux only (reads /proc).
import { spawn, execFileSync } from 'node:child_process';
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  writeFileSync,
  chmodSync,
  chownSync,
  existsSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export const now = () => performance.timeOrigin + performance.now();

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port; rejects after `timeoutMs`. */
export async function waitForPort(port, timeoutMs = 15_000, host = '127.0.0.1') {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    const ok = await new Promise((resolve) => {
      const s = connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
}

/** Runs a command to completion; rejects on a non-zero exit or after `timeoutMs`. */
export function run(cmd, args, { input, timeoutMs = 60_000, env, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env, cwd });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout: out, stderr: err });
      else
        reject(
          new Error(`${cmd} ${args.join(' ')}: exit ${code ?? signal}: ${(err || out).trim().slice(0, 500)}`),
        );
    });
    child.stdin.end(input ?? '');
  });
}

/** Waits for a child to exit, SIGKILLing it after `timeoutMs`. */
export function waitExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc

function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // comm may contain spaces and parentheses: fields start after the last ')'.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds of one process (all its threads); with children=true also reaped children's. */
export function cpuSeconds(pid, children = false) {
  const f = statFields(pid); // f[0] is field 3 (state)
  let ticks = Number(f[11]) + Number(f[12]); // utime, stime
  if (children) ticks += Number(f[13]) + Number(f[14]); // cutime, cstime
  return ticks / CLK_TCK;
}

/** kB values from /proc/PID/status (VmRSS, VmHWM, Threads…). */
export function procStatus(pid) {
  const out = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** The pid and every descendant of it, from /proc. */
export function processTree(root) {
  const parent = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      parent.set(Number(name), Number(statFields(name)[1]));
    } catch {
      // exited meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length && i < 100_000; i++) {
    for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

/**
 * CPU seconds of a whole process tree, counting exited children through their reaper's
 * cutime/cstime (Postfix's master reaps its daemons). Take it before and after; use the difference.
 */
export function treeCpuSeconds(root) {
  let total = 0;
  for (const pid of processTree(root)) {
    try {
      total += cpuSeconds(pid, true);
    } catch {
      // exited between the listing and the read; its time moves to the parent's cutime
    }
  }
  return total;
}

/**
 * Memory of a process tree as the sum of PSS (proportional set size: shared pages divided among
 * the processes sharing them), so Postfix's many daemons sharing libraries are not counted twice.
 */
export function treePssKb(root) {
  let total = 0;
  for (const pid of processTree(root)) {
    try {
      const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      total += m ? Number(m[1]) : 0;
    } catch {
      // exited
    }
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// smtp-sink

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Starts `smtp-sink -c` on a loopback port and follows its running counter of received messages,
 * so deliveries are counted (and timed) at the receiver.
 */
export async function startSink({ port, backlog = 1000 } = {}) {
  port ??= await freePort();
  const args = [
    '-c',
    ...(asRoot ? ['-u', 'nobody'] : []),
    '-m',
    '1000',
    `127.0.0.1:${port}`,
    String(backlog),
  ];
  const child = spawn('smtp-sink', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const sink = {
    port,
    child,
    count: 0,
    firstAt: null,
    lastAt: null,
    waiters: [],
    get stderr() {
      return stderr;
    },
    /** Resolves with the time the counter reached `n`, or null after `timeoutMs`. */
    waitFor(n, timeoutMs) {
      if (sink.count >= n) return Promise.resolve(sink.lastAt);
      return new Promise((resolve) => {
        const w = { n, resolve };
        sink.waiters.push(w);
        setTimeout(() => {
          const i = sink.waiters.indexOf(w);
          if (i >= 0) {
            sink.waiters.splice(i, 1);
            resolve(null);
          }
        }, timeoutMs).unref();
      });
    },
    async stop() {
      child.kill('SIGTERM');
      await waitExit(child, 3000);
    },
  };
  let partial = '';
  child.stdout.on('data', (d) => {
    const at = now();
    const parts = (partial + d.toString('latin1')).split('\r');
    partial = parts.pop() ?? '';
    let max = sink.count;
    for (const p of parts) {
      const m = /mesg=(\d+)/.exec(p);
      if (m) max = Math.max(max, Number(m[1]));
    }
    const m = /mesg=(\d+)$/.exec(partial);
    if (m) max = Math.max(max, Number(m[1]));
    if (max > sink.count) {
      if (sink.count === 0) sink.firstAt = at;
      sink.count = max;
      sink.lastAt = at;
      for (const w of [...sink.waiters]) {
        if (sink.count >= w.n) {
          sink.waiters.splice(sink.waiters.indexOf(w), 1);
          w.resolve(at);
        }
      }
    }
  });
  await waitForPort(port, 5000);
  return sink;
}

// ---------------------------------------------------------------------------------------------
// smtp-source

/**
 * One `smtp-source` run. Returns its start and end times (it exits when the last message got its
 * reply), or throws with its stderr.
 */
export function smtpSource({ port, messages, sessions, size, persistent, from, to, timeoutMs }) {
  const args = ['-s', String(sessions), '-m', String(messages), '-l', String(size), '-f', from, '-t', to];
  if (persistent) args.push('-d');
  args.push(`127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const startedAt = now();
    const child = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const endedAt = now();
      if (code === 0) resolve({ startedAt, endedAt, command: `smtp-source ${args.join(' ')}` });
      else
        reject(
          new Error(
            `smtp-source exited ${code ?? signal}${signal === 'SIGKILL' ? ' (timeout)' : ''}: ${err.trim().slice(0, 300)}`,
          ),
        );
    });
  });
}

/**
 * The authenticated path as an application drives it: a nodemailer pool of `sessions`
 * connections, each upgraded with STARTTLS and logged in with `auth` when given, sending
 * `messages` raw messages with `sessions` × 2 in flight. Resolves like smtpSource.
 */
export async function nodemailerSource({ port, messages, sessions, size, from, to, auth, timeoutMs }) {
  const { default: nodemailer } = await import('nodemailer');
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    ...(auth ? { auth } : {}),
    pool: true,
    maxConnections: sessions,
    maxMessages: Infinity,
  });
  const bodies = Array.from({ length: 16 }, (_, i) => makeMessage({ from, to, size, i }).subarray(0, -3));
  const startedAt = now();
  let next = 0;
  let failed = null;
  const deadline = startedAt + timeoutMs;
  const worker = async () => {
    while (next < messages && failed === null && now() < deadline) {
      const i = next++;
      try {
        await transport.sendMail({ envelope: { from, to: [to] }, raw: bodies[i % bodies.length] });
      } catch (err) {
        failed = err;
      }
    }
  };
  await Promise.all(Array.from({ length: sessions * 2 }, worker));
  const endedAt = now();
  transport.close();
  if (failed) throw new Error(`nodemailer: ${failed.message}`);
  if (next < messages) throw new Error(`nodemailer: timed out after ${next}/${messages}`);
  const how = auth ? 'STARTTLS + AUTH' : 'STARTTLS';
  return {
    startedAt,
    endedAt,
    command: `nodemailer pool, ${sessions} connections, ${how}, ${messages} messages`,
  };
}

// ---------------------------------------------------------------------------------------------
// A private Postfix instance

/**
 * Creates and starts a Postfix instance in `dir` (own config and queue directory), listening on
 * 127.0.0.1:`port` and relaying everything to 127.0.0.1:`relayPort`. Needs root (Postfix does).
 */
export async function startPostfix({ dir, port, relayPort }) {
  const etc = join(dir, 'etc');
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  mkdirSync(etc, { recursive: true });
  mkdirSync(queue, { recursive: true });
  mkdirSync(data, { recursive: true });
  chmodSync(dir, 0o755);
  const pf = (() => {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('postfix:'));
    if (!line) throw new Error("no postfix user: install Debian's postfix package");
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  })();
  chownSync(data, pf.uid, pf.gid);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=postfix.bench.invalid',
      '-keyout',
      join(etc, 'key.pem'),
      '-out',
      join(etc, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  writeFileSync(
    join(etc, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      'myhostname = postfix.bench.invalid',
      'mydomain = bench.invalid',
      'myorigin = $myhostname',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'local_recipient_maps =',
      'alias_maps =',
      'alias_database =',
      'mynetworks = 127.0.0.0/8',
      `relayhost = [127.0.0.1]:${relayPort}`,
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      // STARTTLS as Petrel offers it, for the authenticated-path comparison (nodemailer).
      'smtpd_tls_security_level = may',
      `smtpd_tls_cert_file = ${join(etc, 'cert.pem')}`,
      `smtpd_tls_key_file = ${join(etc, 'key.pem')}`,
      'biff = no',
      // Postfix logs every message like Petrel does (to a file here, as there is no syslog).
      `maillog_file = ${join(dir, 'maillog')}`,
      `maillog_file_prefixes = ${dir}`,
      '',
    ].join('\n'),
  );
  // Debian's master.cf without chroot (a chroot would need copies of /etc files).
  const services = [
    `${port} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'tlsmgr unix - - n 1000? 1 tlsmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'proxywrite unix - - n - 1 proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'local unix - n n - - local',
    'lmtp unix - - n - - lmtp',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  writeFileSync(join(etc, 'master.cf'), `${services.join('\n')}\n`);
  await run('postfix', ['-c', etc, 'check'], { timeoutMs: 30_000 });
  await run('postfix', ['-c', etc, 'start'], { timeoutMs: 30_000 });
  await waitForPort(port, 15_000);
  const pidFile = join(queue, 'pid', 'master.pid');
  let masterPid = 0;
  for (let i = 0; i < 100 && !masterPid; i++) {
    if (existsSync(pidFile)) masterPid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!masterPid) await sleep(50);
  }
  if (!masterPid) throw new Error(`Postfix started but ${pidFile} is missing`);
  return {
    port,
    pid: masterPid,
    dir,
    async stop() {
      try {
        await run('postfix', ['-c', etc, 'stop'], { timeoutMs: 30_000 });
      } catch {
        await run('postfix', ['-c', etc, 'abort'], { timeoutMs: 30_000 }).catch(() => undefined);
      }
      for (let i = 0; i < 200; i++) {
        try {
          const state = statFields(masterPid)[0];
          if (state === 'Z') break;
        } catch {
          break;
        }
        await sleep(50);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Time-to-250: a raw-socket SMTP client (no pipelining, persistent sessions, paced sends)

/** One message of about `size` bytes of body, lines of 78 characters. */
export function makeMessage({ from, to, size, i }) {
  const head =
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: bench ${i}\r\n` +
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\nMessage-ID: <${i}.${Date.now()}@bench.invalid>\r\n\r\n`;
  const lines = [];
  let n = 0;
  for (let k = 0; n < size && k < 100_000; k++) {
    const line = `${k}`.padEnd(78, 'X');
    lines.push(line);
    n += line.length + 2;
  }
  return Buffer.from(`${head}${lines.join('\r\n')}\r\n.\r\n`, 'latin1');
}

function smtpSession(port) {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let buf = '';
  let waiter = null;
  const replies = [];
  const deliver = () => {
    for (;;) {
      const end = buf.indexOf('\r\n');
      if (end < 0) return;
      const line = buf.slice(0, end);
      buf = buf.slice(end + 2);
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        replies.push(line);
        if (waiter) {
          const w = waiter;
          waiter = null;
          w.resolve(replies.shift());
        }
      }
    }
  };
  socket.on('data', (d) => {
    buf += d.toString('latin1');
    deliver();
  });
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.on('error', (err) => {
    if (waiter) waiter.reject(err);
    waiter = null;
  });
  const reply = (timeoutMs = 30_000) =>
    new Promise((resolve, reject) => {
      if (replies.length) return resolve(replies.shift());
      const timer = setTimeout(() => {
        waiter = null;
        reject(new Error('reply timeout'));
      }, timeoutMs);
      waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  const expect = async (code) => {
    const r = await reply();
    if (!r.startsWith(String(code))) throw new Error(`expected ${code}, got: ${r}`);
    return r;
  };
  return {
    socket,
    reply,
    expect,
    write: (data) => socket.write(data),
    close: async () => {
      socket.end('QUIT\r\n');
      await Promise.race([closed, sleep(2000)]);
      socket.destroy();
    },
  };
}

/**
 * Offers `count` messages at `rate` msg/s over `sessions` persistent connections and measures,
 * for each, the time from the final "." to the 250 reply (time-to-250) and from its scheduled
 * send time to the 250 (which includes waiting for a free session when the server lags). With
 * `ports` (the nodes of a cluster) the sessions take them in turn.
 */
export async function latencyRun({ port, ports = [port], sessions, count, rate, size, from, to, timeoutMs }) {
  const start = now() + 200;
  const deadline = start + timeoutMs;
  let next = 0;
  const dotTo250 = [];
  const scheduleTo250 = [];
  let failures = 0;
  let firstError = null;
  const body = makeMessage({ from, to, size, i: 0 });
  const worker = async (k) => {
    const s = smtpSession(ports[k % ports.length]);
    try {
      await s.expect(220);
      s.write('EHLO latency.bench.invalid\r\n');
      await s.expect(250);
      for (;;) {
        const i = next++;
        if (i >= count || now() > deadline) break;
        const due = start + (i * 1000) / rate;
        const wait = due - now();
        if (wait > 0) await sleep(wait);
        s.write(`MAIL FROM:<${from}>\r\n`);
        await s.expect(250);
        s.write(`RCPT TO:<${to}>\r\n`);
        await s.expect(250);
        s.write('DATA\r\n');
        await s.expect(354);
        s.write(body);
        const dot = now();
        const r = await s.reply();
        const done = now();
        if (r.startsWith('250')) {
          dotTo250.push(done - dot);
          scheduleTo250.push(done - due);
        } else {
          failures++;
          firstError ??= r;
        }
      }
    } catch (err) {
      failures++;
      firstError ??= err.message;
    } finally {
      await s.close();
    }
  };
  const t0 = now();
  await Promise.all(Array.from({ length: sessions }, (_, k) => worker(k)));
  const elapsed = (now() - t0) / 1000;
  return {
    offeredRate: rate,
    sent: dotTo250.length,
    failures,
    firstError,
    achievedRate: dotTo250.length / elapsed,
    dotTo250: summarize(dotTo250),
    scheduleTo250: summarize(scheduleTo250),
  };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export function summarize(values) {
  const s = [...values].sort((a, b) => a - b);
  const r = (v) => (v === null ? null : Math.round(v * 100) / 100);
  return {
    n: s.length,
    p50: r(percentile(s, 50)),
    p90: r(percentile(s, 90)),
    p99: r(percentile(s, 99)),
    max: r(s.at(-1) ?? null),
  };
}

export function median(values) {
  const s = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
