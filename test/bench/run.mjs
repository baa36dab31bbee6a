// End-to-end benchmark: Petrel against Postfix on this machine, in the same run.
//
//   npm run bench                      # build, then the full run (20 000 × 5 KB, 20 sessions, 3 pairs)
//   node test/bench/run.mjs --quick    # under a minute: 2 000 messages, 1 pair, persistent sessions
//   node test/bench/run.mjs --size 50k --pairs 5 --variants persistent
//   node test/bench/run.mjs --help
//
// Needs Debian's `postfix` package (smtp-source, smtp-sink and the Postfix daemon; Postfix itself
// needs root, without it the comparison is skipped). Everything runs on 127.0.0.1.
//
// What one measurement does, for Petrel and Postfix alike:
//   a fresh smtp-sink (the receiver; its -c counter counts deliveries as they arrive), a fresh MTA
//   (Petrel: own data dir, route for the bench domain to the sink, trusted network + account,
//   RSA-2048 DKIM key for the sender domain, production durability — synchronous=FULL is always on;
//   Postfix: a private instance with its own queue directory, relayhost = the sink, no DKIM),
//   a warm-up, then smtp-source injects N messages over C sessions (the `authenticated` variant:
//   a nodemailer pool of C connections, STARTTLS and AUTH to Petrel, STARTTLS to Postfix, which
//   takes the bench client through mynetworks as there is no SASL here). Reported:
//   accepted msg/s   N / smtp-source's run time (it exits after the last 250)
//   delivered msg/s  N / (smtp-source start ≈ first 250 → the sink counting the last message)
//   CPU ms/msg       the MTA's CPU time (Petrel: its process, all threads; Postfix: master and
//                    every daemon, exited ones through master's cutime) over the measured window / N
//   peak RSS         Petrel: VmHWM; Postfix: the highest sum of PSS over its processes (sampled)
// Pairs alternate Petrel, Postfix, Petrel, Postfix…; the ratio is taken pair by pair. The loopback
// ceiling is smtp-source → smtp-sink directly. Time-to-250 comes from a small raw-socket client
// that offers half of each MTA's peak accepted rate over persistent sessions.
import { cpus, totalmem, release, tmpdir, availableParallelism } from 'node:os';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, openSync, closeSync, readdirSync } from 'node:fs';
import { spawn, execFileSync } from 'node:child_process';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  cpuSeconds,
  freePort,
  latencyRun,
  median,
  nodemailerSource,
  now,
  procStatus,
  run,
  smtpSource,
  startPostfix,
  startSink,
  treeCpuSeconds,
  treePssKb,
  waitExit,
  waitForPort,
} from './lib.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PETREL = join(ROOT, 'bin/petrel.js');
const FROM = 'sender@bench.test';
const TO = 'rcpt@dest.bench';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    sessions: { type: 'string' },
    size: { type: 'string' },
    pairs: { type: 'string' },
    variants: { type: 'string' },
    warmup: { type: 'string' },
    'skip-postfix': { type: 'boolean', default: false },
    'skip-ceiling': { type: 'boolean', default: false },
    'skip-latency': { type: 'boolean', default: false },
    'latency-rate': { type: 'string' },
    'latency-seconds': { type: 'string' },
    'cpu-prof': { type: 'string' },
    'log-level': { type: 'string' },
    out: { type: 'string' },
    tmp: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`usage: node test/bench/run.mjs [options]
  --quick               2 000 messages, 1 pair, persistent sessions only (under a minute)
  --messages N          messages per measurement (default 20000)
  --sessions C          concurrent smtp-source sessions (default 20)
  --size S              body bytes: 5120, 5k, 50k (default 5k)
  --pairs P             alternating Petrel/Postfix pairs (default 3)
  --variants LIST       persistent,per-message,authenticated (default all; --quick: persistent)
  --warmup N            messages sent (and delivered) before each measurement (default 500, quick 200)
  --skip-postfix | --skip-ceiling | --skip-latency
  --latency-rate R      msg/s offered in the time-to-250 phase (default: half of each MTA's peak)
  --latency-seconds S   length of that phase (default 15, quick 5)
  --cpu-prof DIR        run Petrel under node --cpu-prof, profiles in DIR (see profile-summary.mjs)
  --log-level L         Petrel's log level (default: info, as in production)
  --out FILE            result JSON (default bench-results/bench-<time>.json)
  --tmp DIR             where the spools and queues go (default: the OS temp dir; must be a real disk)
  --keep                keep the temporary directories`);
  process.exit(0);
}

function parseSize(text) {
  const m = /^(\d+)\s*(k|kb|kib)?$/i.exec(text.trim());
  if (!m) throw new Error(`--size: "${text}" is not a size like 5120, 5k, 50k`);
  return Number(m[1]) * (m[2] ? 1024 : 1);
}

function positive(name, text, fallback) {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} takes a positive whole number`);
  return n;
}

const quick = args.quick;
// How the load generator connects: smtp-source from a trusted network (persistent sessions or
// one connection per message), or an application's nodemailer pool with STARTTLS and AUTH.
const VARIANTS = {
  persistent: 'persistent sessions (smtp-source -d, trusted network)',
  'per-message': 'one connection per message (smtp-source, trusted network)',
  authenticated: 'nodemailer pool: STARTTLS + AUTH to Petrel, STARTTLS from mynetworks to Postfix',
};
const BENCH_PASSWORD = 'bench-password-not-used';
const opts = {
  messages: positive('messages', args.messages, quick ? 2000 : 20_000),
  sessions: positive('sessions', args.sessions, 20),
  size: args.size ? parseSize(args.size) : 5 * 1024,
  pairs: positive('pairs', args.pairs, quick ? 1 : 3),
  variants: (args.variants ?? (quick ? 'persistent' : 'persistent,per-message,authenticated'))
    .split(',')
    .map((s) => s.trim()),
  warmup: args.warmup !== undefined ? Number(args.warmup) : quick ? 200 : 500,
  postfix: !args['skip-postfix'],
  ceiling: !args['skip-ceiling'],
  latency: !args['skip-latency'],
  latencyRate: args['latency-rate'] ? Number(args['latency-rate']) : null,
  latencySeconds: positive('latency-seconds', args['latency-seconds'], quick ? 5 : 15),
  cpuProf: args['cpu-prof'] ? resolve(args['cpu-prof']) : null,
  logLevel: args['log-level'] ?? 'info',
  tmp: resolve(args.tmp ?? tmpdir()),
  keep: args.keep,
};
for (const v of opts.variants) {
  if (!VARIANTS[v]) throw new Error(`--variants: unknown "${v}" (${Object.keys(VARIANTS).join(', ')})`);
}
const isRoot = process.getuid?.() === 0;
if (opts.postfix && !isRoot) {
  console.error('Postfix needs root to start; skipping the comparison (run as root for it).');
  opts.postfix = false;
}
for (const tool of ['smtp-source', 'smtp-sink', ...(opts.postfix ? ['postfix'] : [])]) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    console.error(`${tool} not found: install Debian's postfix package (see the README's bench section)`);
    process.exit(1);
  }
}

// Generous per-measurement bound: the slowest plausible rate is ~30 msg/s.
const runTimeoutMs = Math.max(120_000, ((opts.messages + opts.warmup) / 30) * 1000);
const tempDirs = [];
function tempDir(prefix) {
  const dir = mkdtempSync(join(opts.tmp, prefix));
  tempDirs.push(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Petrel

async function petrel(cmdArgs, config, input) {
  return run(process.execPath, [PETREL, '--config', config, ...cmdArgs], { input, timeoutMs: 60_000 });
}

async function startPetrel({ sinkPort, label }) {
  const dir = tempDir('petrel-bench-');
  const [port, inboundPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const config = join(dir, 'petrel.toml');
  writeFileSync(
    config,
    `# written by test/bench/run.mjs
hostname = "petrel.bench.invalid"
data_dir = ${JSON.stringify(join(dir, 'data'))}
log_level = ${JSON.stringify(opts.logLevel)}

[submission]
listen = ["127.0.0.1:${port}"]
trusted_networks = ["127.0.0.0/8"]
trusted_account = "bench"
max_connections_per_ip = 1000

[inbound]
listen = ["127.0.0.1:${inboundPort}"]

[http]
listen = "127.0.0.1:${httpPort}"

[dns]
servers = ["127.0.0.1:9"]

[delivery.domain."dest.bench"]
max_connections = ${Math.max(20, opts.sessions)}

[routes."dest.bench"]
host = "127.0.0.1"
port = ${sinkPort}
`,
  );
  await petrel(['user', 'add', 'bench', '--allow-from', 'bench.test'], config, `${BENCH_PASSWORD}\n`);
  await petrel(['dkim', 'keygen', 'bench.test', '--selector', 'bench'], config);
  const logPath = join(dir, 'petrel.log');
  const log = openSync(logPath, 'a');
  const nodeArgs = [];
  if (opts.cpuProf) {
    mkdirSync(opts.cpuProf, { recursive: true });
    nodeArgs.push(
      '--cpu-prof',
      '--cpu-prof-dir',
      opts.cpuProf,
      '--cpu-prof-name',
      `petrel-${label}-${Date.now()}.cpuprofile`,
    );
  }
  const child = spawn(process.execPath, [...nodeArgs, PETREL, '--config', config, 'serve'], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  try {
    await waitForPort(port, 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`Petrel did not start (log: ${logPath}): ${err.message}`);
  }
  return {
    port,
    pid: child.pid,
    logPath,
    cpu: () => cpuSeconds(child.pid),
    rssKb: () => procStatus(child.pid).VmRSS ?? 0,
    peakRssKb: () => procStatus(child.pid).VmHWM ?? 0,
    async stop() {
      child.kill('SIGTERM');
      const code = await waitExit(child, 35_000);
      return code;
    },
  };
}

async function startPostfixTarget({ sinkPort }) {
  const dir = tempDir('postfix-bench-');
  running.add(join(dir, 'etc'));
  const pf = await startPostfix({ dir, port: await freePort(), relayPort: sinkPort });
  return {
    port: pf.port,
    pid: pf.pid,
    logPath: join(dir, 'maillog'),
    cpu: () => treeCpuSeconds(pf.pid),
    rssKb: () => treePssKb(pf.pid),
    peakRssKb: null,
    stop: async () => {
      await pf.stop();
      running.delete(join(dir, 'etc'));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One measurement

async function measure({ target, variant, pair }) {
  const persistent = variant === 'persistent';
  const label = `${target}-${variant}-${pair}`;
  const sink = await startSink();
  let mta = null;
  const result = {
    target,
    variant,
    pair,
    messages: opts.messages,
    size: opts.size,
    sessions: opts.sessions,
    warmup: opts.warmup,
  };
  let sampler = null;
  try {
    mta =
      target === 'petrel'
        ? await startPetrel({ sinkPort: sink.port, label })
        : await startPostfixTarget({ sinkPort: sink.port });
    const source = (messages) =>
      variant === 'authenticated'
        ? nodemailerSource({
            port: mta.port,
            messages,
            sessions: opts.sessions,
            size: opts.size,
            from: FROM,
            to: TO,
            timeoutMs: runTimeoutMs,
            auth: target === 'petrel' ? { user: 'bench', pass: BENCH_PASSWORD } : null,
          })
        : smtpSource({
            port: mta.port,
            messages,
            sessions: opts.sessions,
            size: opts.size,
            persistent,
            from: FROM,
            to: TO,
            timeoutMs: runTimeoutMs,
          });
    if (opts.warmup > 0) {
      await source(opts.warmup);
      if ((await sink.waitFor(opts.warmup, 60_000)) === null)
        throw new Error(`warm-up not delivered (${sink.count}/${opts.warmup})`);
      await sleep(300);
    }
    const base = sink.count;
    let peakRssKb = mta.rssKb();
    sampler = setInterval(() => {
      try {
        peakRssKb = Math.max(peakRssKb, mta.rssKb());
      } catch {
        // process gone
      }
    }, 250);
    const cpu0 = mta.cpu();
    const src = await source(opts.messages);
    result.command = src.command;
    const lastAt = await sink.waitFor(base + opts.messages, runTimeoutMs);
    const cpu1 = mta.cpu();
    clearInterval(sampler);
    sampler = null;
    if (lastAt === null)
      throw new Error(
        `not all delivered within ${runTimeoutMs / 1000} s (${sink.count - base}/${opts.messages})`,
      );
    const acceptS = (src.endedAt - src.startedAt) / 1000;
    const e2eS = (lastAt - src.startedAt) / 1000;
    result.acceptSeconds = round(acceptS, 3);
    result.e2eSeconds = round(e2eS, 3);
    result.acceptedRate = round(opts.messages / acceptS, 1);
    result.deliveredRate = round(opts.messages / e2eS, 1);
    result.cpuSeconds = round(cpu1 - cpu0, 2);
    result.cpuMsPerMsg = round(((cpu1 - cpu0) * 1000) / opts.messages, 3);
    result.cpuSecondsPer1000 = round(((cpu1 - cpu0) * 1000) / opts.messages, 3);
    result.peakRssMb = round((mta.peakRssKb ? mta.peakRssKb() : peakRssKb) / 1024, 1);
    result.rssMeasure = mta.peakRssKb ? 'VmHWM' : 'max sampled sum of PSS over the process tree';
  } catch (err) {
    result.error = err.message;
    if (mta?.logPath) result.log = mta.logPath;
  } finally {
    if (sampler) clearInterval(sampler);
    if (mta) {
      const code = await mta.stop().catch((err) => `stop failed: ${err.message}`);
      if (target === 'petrel' && code !== 0 && code !== undefined) result.stopCode = code;
    }
    await sink.stop();
  }
  return result;
}

async function ceiling({ variant, pair }) {
  const sink = await startSink();
  try {
    const src = await smtpSource({
      port: sink.port,
      messages: opts.messages,
      sessions: opts.sessions,
      size: opts.size,
      persistent: variant === 'persistent',
      from: FROM,
      to: TO,
      timeoutMs: runTimeoutMs,
    });
    const s = (src.endedAt - src.startedAt) / 1000;
    return {
      target: 'ceiling',
      variant,
      pair,
      messages: opts.messages,
      rate: round(opts.messages / s, 1),
      seconds: round(s, 3),
      command: src.command,
    };
  } catch (err) {
    return { target: 'ceiling', variant, pair, error: err.message };
  } finally {
    await sink.stop();
  }
}

async function latency({ target, rate }) {
  const sink = await startSink();
  let mta = null;
  try {
    mta =
      target === 'petrel'
        ? await startPetrel({ sinkPort: sink.port, label: `${target}-latency` })
        : await startPostfixTarget({ sinkPort: sink.port });
    // Warm up the same way as the throughput runs.
    if (opts.warmup > 0) {
      await smtpSource({
        port: mta.port,
        messages: opts.warmup,
        sessions: opts.sessions,
        size: opts.size,
        persistent: true,
        from: FROM,
        to: TO,
        timeoutMs: runTimeoutMs,
      });
      await sink.waitFor(opts.warmup, 60_000);
    }
    const count = Math.max(200, Math.min(50_000, Math.round(rate * opts.latencySeconds)));
    const r = await latencyRun({
      port: mta.port,
      sessions: opts.sessions,
      count,
      rate,
      size: opts.size,
      from: FROM,
      to: TO,
      timeoutMs: opts.latencySeconds * 1000 * 4 + 30_000,
    });
    return { target, ...r };
  } catch (err) {
    return { target, offeredRate: rate, error: err.message };
  } finally {
    if (mta) await mta.stop().catch(() => undefined);
    await sink.stop();
  }
}

// ---------------------------------------------------------------------------------------------

function round(v, digits) {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function machine() {
  const info = {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGb: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
  };
  try {
    info.postfix = execFileSync('postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).trim();
  } catch {
    info.postfix = null;
  }
  try {
    const df = execFileSync('df', ['-PT', opts.tmp], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .at(-1)
      .split(/\s+/);
    info.tmpFilesystem = `${df[1]} (${df[0]})`;
  } catch {
    info.tmpFilesystem = 'unknown';
  }
  return info;
}

const fmt = (v, digits = 0) =>
  v === null || v === undefined
    ? '—'
    : Number(v).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function summarizeVariant(runs, ceilings, variant) {
  const pick = (target) => runs.filter((r) => r.variant === variant && r.target === target && !r.error);
  const stats = (rs) => ({
    runs: rs.length,
    acceptedRate: median(rs.map((r) => r.acceptedRate)),
    deliveredRate: median(rs.map((r) => r.deliveredRate)),
    cpuMsPerMsg: median(rs.map((r) => r.cpuMsPerMsg)),
    peakRssMb: median(rs.map((r) => r.peakRssMb)),
  });
  const petrelRuns = pick('petrel');
  const postfixRuns = pick('postfix');
  const ratios = [];
  for (let p = 1; p <= opts.pairs; p++) {
    const a = petrelRuns.find((r) => r.pair === p);
    const b = postfixRuns.find((r) => r.pair === p);
    if (a && b) {
      ratios.push({
        pair: p,
        delivered: round(a.deliveredRate / b.deliveredRate, 2),
        accepted: round(a.acceptedRate / b.acceptedRate, 2),
        cpuPerMsg: round(a.cpuMsPerMsg / b.cpuMsPerMsg, 2),
      });
    }
  }
  const ceilingRuns = ceilings.filter((c) => c.variant === variant && !c.error);
  return {
    variant,
    petrel: stats(petrelRuns),
    postfix: stats(postfixRuns),
    ratios,
    ratioDeliveredMedian: median(ratios.map((r) => r.delivered)),
    ratioAcceptedMedian: median(ratios.map((r) => r.accepted)),
    ceilingRate: median(ceilingRuns.map((c) => c.rate)),
  };
}

function printTable(summary, latencies, info) {
  const lines = [];
  lines.push('');
  lines.push(
    `Petrel vs Postfix — ${fmt(opts.messages)} × ${fmt(opts.size / 1024, opts.size % 1024 ? 1 : 0)} KB, ${opts.sessions} sessions, ${opts.pairs} pair(s), medians`,
  );
  lines.push(
    `machine: ${info.cores} cores (${info.cpuModel}), ${info.memoryGb} GB, Node ${info.node}, Postfix ${info.postfix ?? '—'}, spool on ${info.tmpFilesystem}`,
  );
  for (const s of summary) {
    lines.push('');
    lines.push(VARIANTS[s.variant]);
    lines.push('  | what | accepted msg/s | delivered msg/s | CPU ms/msg | peak RSS MB |');
    lines.push('  |---|---|---|---|---|');
    lines.push(
      `  | Petrel (DKIM RSA-2048) | ${fmt(s.petrel.acceptedRate)} | ${fmt(s.petrel.deliveredRate)} | ${fmt(s.petrel.cpuMsPerMsg, 2)} | ${fmt(s.petrel.peakRssMb)} |`,
    );
    if (opts.postfix) {
      lines.push(
        `  | Postfix (no DKIM) | ${fmt(s.postfix.acceptedRate)} | ${fmt(s.postfix.deliveredRate)} | ${fmt(s.postfix.cpuMsPerMsg, 2)} | ${fmt(s.postfix.peakRssMb)} |`,
      );
      lines.push(
        `  | ratio Petrel/Postfix (median of pairs) | ${fmt(s.ratioAcceptedMedian, 2)} | ${fmt(s.ratioDeliveredMedian, 2)} | | |`,
      );
    }
    if (opts.ceiling && s.ceilingRate !== null)
      lines.push(`  | smtp-source → smtp-sink (ceiling) | ${fmt(s.ceilingRate)} | | | |`);
    if (s.ratios.length)
      lines.push(
        `  delivered ratio per pair: ${s.ratios.map((r) => `${r.pair}: ${fmt(r.delivered, 2)}`).join(', ')}`,
      );
  }
  if (latencies.length) {
    lines.push('');
    lines.push(
      `time-to-250 (raw client, ${opts.sessions} persistent sessions, "." → 250; schedule → 250 includes waiting for a session)`,
    );
    lines.push(
      '  | MTA | offered msg/s | achieved | p50 ms | p99 ms | max ms | schedule→250 p99 ms | failures |',
    );
    lines.push('  |---|---|---|---|---|---|---|---|');
    for (const l of latencies) {
      if (l.error) lines.push(`  | ${l.target} | ${fmt(l.offeredRate)} | error: ${l.error} |`);
      else
        lines.push(
          `  | ${l.target} | ${fmt(l.offeredRate)} | ${fmt(l.achievedRate)} | ${fmt(l.dotTo250.p50, 1)} | ${fmt(l.dotTo250.p99, 1)} | ${fmt(l.dotTo250.max, 1)} | ${fmt(l.scheduleTo250.p99, 1)} | ${l.failures} |`,
        );
    }
  }
  console.log(lines.join('\n'));
}

async function main() {
  const started = new Date();
  const info = machine();
  const runs = [];
  const ceilings = [];
  const latencies = [];
  const log = (msg) => console.error(`[${((now() - t0) / 1000).toFixed(0).padStart(5)} s] ${msg}`);
  const t0 = now();
  log(
    `${opts.messages} × ${opts.size} B, ${opts.sessions} sessions, variants ${opts.variants.join(', ')}, ${opts.pairs} pair(s)${opts.postfix ? '' : ', no Postfix'}`,
  );
  for (let pair = 1; pair <= opts.pairs; pair++) {
    for (const variant of opts.variants) {
      for (const target of opts.postfix ? ['petrel', 'postfix'] : ['petrel']) {
        const r = await measure({ target, variant, pair });
        runs.push(r);
        log(
          r.error
            ? `${target} ${variant} #${pair}: ERROR ${r.error}`
            : `${target} ${variant} #${pair}: accepted ${fmt(r.acceptedRate)} msg/s, delivered ${fmt(r.deliveredRate)} msg/s, CPU ${fmt(r.cpuMsPerMsg, 2)} ms/msg, peak RSS ${fmt(r.peakRssMb)} MB`,
        );
      }
      // smtp-sink offers no STARTTLS: the ceiling is smtp-source's alone.
      if (opts.ceiling && variant !== 'authenticated') {
        const c = await ceiling({ variant, pair });
        ceilings.push(c);
        log(
          c.error
            ? `ceiling ${variant} #${pair}: ERROR ${c.error}`
            : `ceiling ${variant} #${pair}: ${fmt(c.rate)} msg/s`,
        );
      }
    }
  }
  const summary = opts.variants.map((v) => summarizeVariant(runs, ceilings, v));
  if (opts.latency) {
    const peak = (target) => {
      const s = summary.find((x) => x.variant === 'persistent') ?? summary[0];
      return s?.[target]?.acceptedRate ?? null;
    };
    for (const target of opts.postfix ? ['petrel', 'postfix'] : ['petrel']) {
      const rate = opts.latencyRate ?? (peak(target) ? Math.max(10, Math.round(peak(target) / 2)) : null);
      if (!rate) continue;
      const l = await latency({ target, rate });
      latencies.push(l);
      log(
        l.error
          ? `latency ${target}: ERROR ${l.error}`
          : `latency ${target} @ ${rate} msg/s: p50 ${fmt(l.dotTo250.p50, 1)} ms, p99 ${fmt(l.dotTo250.p99, 1)} ms`,
      );
    }
  }
  const result = {
    benchmark: 'petrel-vs-postfix',
    startedAt: started.toISOString(),
    durationSeconds: round((now() - t0) / 1000, 1),
    command: `node ${process.argv
      .slice(1)
      .map((a) => (a.startsWith(ROOT) ? a.slice(ROOT.length + 1) : a))
      .join(' ')}`,
    machine: info,
    options: opts,
    summary,
    latency: latencies,
    runs,
    ceilings,
  };
  const out = args.out
    ? resolve(args.out)
    : join(ROOT, 'bench-results', `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  printTable(summary, latencies, info);
  console.log(`\nresults: ${out}`);
  if (opts.cpuProf)
    console.log(
      `CPU profiles: ${readdirSync(opts.cpuProf)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(opts.cpuProf, f))
        .join(', ')}`,
    );
  return runs.some((r) => r.error) || ceilings.some((c) => c.error) ? 1 : 0;
}

// Ctrl-C: stop what this script started (Postfix daemonizes, so it would outlive us).
const running = new Set();
process.once('SIGINT', () => {
  for (const etc of running) {
    try {
      execFileSync('postfix', ['-c', etc, 'abort'], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // already gone
    }
  }
  if (!opts.keep) for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  process.exit(130);
});

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  console.error(err);
} finally {
  if (!opts.keep) for (const d of tempDirs) rmSync(d, { recursive: true, force: true, maxRetries: 3 });
  else if (tempDirs.length) console.error(`kept: ${tempDirs.join(' ')}`);
}
process.exit(exitCode);
