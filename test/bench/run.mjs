// End-to-end benchmark: Petrel against Postfix on this machine, in the same run.
//
//   npm run bench                      # build, then the full run (20 000 × 5 KB, 20 sessions, 3 pairs)
//   node test/bench/run.mjs --quick    # 2 000 messages, 1 pair, persistent sessions
//   node test/bench/run.mjs --size 50k --pairs 5 --variants persistent --workers auto
//   node test/bench/run.mjs --backend sqlite,postgres,postgres2 --variants persistent --workers 1
//   node test/bench/run.mjs --help
//
// Needs Debian's `postfix` package (smtp-source, smtp-sink and the Postfix daemon; Postfix itself
// needs root, without it the comparison is skipped). Everything runs on 127.0.0.1.
//
// What one measurement does, for Petrel and Postfix alike:
//   a fresh smtp-sink (the receiver; its -c counter counts deliveries as they arrive), a fresh MTA
//   (Petrel: own data dir, route for the bench domain to the sink, trusted network + account,
//   RSA-2048 DKIM key for the sender domain, production durability — synchronous=FULL is always on,
//   `[server] workers` set to each --workers value in turn: 1 is one process, more is a primary
//   supervising that many worker processes;
//   Postfix: a private instance with its own queue directory, relayhost = the sink, no DKIM),
//   a warm-up, then smtp-source injects N messages over C sessions (the `authenticated` variant:
//   a nodemailer pool of C connections, STARTTLS and AUTH to Petrel, STARTTLS to Postfix, which
//   takes the bench client through mynetworks as there is no SASL here). Reported:
//   accepted msg/s   N / smtp-source's run time (it exits after the last 250)
//   delivered msg/s  N / (smtp-source start ≈ first 250 → the sink counting the last message)
//   CPU ms/msg       the MTA's CPU time over the measured window / N, summed over its process tree
//                    (utime + stime of every thread; Petrel: the primary and its workers; Postfix:
//                    master and every daemon; exited ones through their parent's cutime)
//   RSA / rest       Petrel's CPU ms/msg split: RSA is one RSA-2048 sign as Petrel does it
//                    (crypto.sign, sha256, cached KeyObject), timed in this process before the runs,
//                    times the signatures per message; rest is the total minus that
//   peak RSS         one process: VmHWM; a process tree (Petrel's workers, Postfix): the highest sum
//                    of PSS over its processes (sampled)
// A pair is one run of Petrel per --backend and --workers value, then one of Postfix; each Petrel
// setting's ratio is taken pair by pair against that pair's Postfix run. The loopback ceiling is
// smtp-source → smtp-sink directly. Time-to-250 comes from a small raw-socket client that offers
// half of the peak accepted rate of persistent sessions (of that MTA, and of that spool and worker
// setting; on two nodes its sessions take the nodes in turn) and times the final "." of DATA to
// the 250.
//
// Spool backends (--backend): sqlite is the embedded spool in the data dir. postgres is one Petrel
// node on a fresh database of a PostgreSQL server the bench starts (Debian's postgresql package,
// in the temporary directory, durable as in production: fsync and synchronous_commit on; stopped
// at the end); postgres2 is two nodes (own [cluster] node names and data dirs, one database, no
// Redis: each node keeps its own limits), the sessions split between their submission ports and
// delivering to the one sink. Per backend: the ratio to the SQLite run of the same pair and worker
// setting, Petrel's CPU summed over every node's tree, and the database's CPU ms/msg: utime + stime
// of the server's process tree (postmaster, backends, checkpointer, walwriter…) over the same
// window, so that the database's share of a message's cost shows. A PostgreSQL run checkpoints
// after its warm-up, so each starts with the same WAL behind it.
import { cpus, totalmem, release, tmpdir, availableParallelism } from 'node:os';
import {
  mkdtempSync,
  mkdirSync,
  rmSync,
  writeFileSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
} from 'node:fs';
import { spawn, execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign as cryptoSign } from 'node:crypto';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  freePort,
  latencyRun,
  median,
  nodemailerSource,
  now,
  processTree,
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
import { postgresBinDir, startPostgres } from './postgres.mjs';

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
    workers: { type: 'string', multiple: true },
    backend: { type: 'string' },
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
  --quick               2 000 messages, 1 pair, persistent sessions only
  --messages N          messages per measurement (default 20000)
  --sessions C          concurrent smtp-source sessions (default 20)
  --size S              body bytes: 5120, 5k, 50k (default 5k)
  --pairs P             alternating Petrel/Postfix pairs (default 3)
  --variants LIST       persistent,per-message,authenticated (default all; --quick: persistent)
  --workers LIST        Petrel's [server] workers, one run each: whole numbers or auto, as a comma
                        list or repeated (default 1,auto)
  --backend LIST        Petrel's spool, one run each: sqlite, postgres (one node on a PostgreSQL
                        server the bench starts), postgres2 (two nodes on one database, sessions
                        split between them) (default sqlite)
  --warmup N            messages sent (and delivered) before each measurement (default 500, quick 200)
  --skip-postfix | --skip-ceiling | --skip-latency
  --latency-rate R      msg/s offered in the time-to-250 phase (default: half of the peak of each
                        MTA and worker setting, persistent sessions)
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

function parseWorkers(values) {
  const list = (values ?? ['1,auto']).flatMap((v) => v.split(',')).map((s) => s.trim());
  for (const w of list) {
    if (w !== 'auto' && !(/^\d+$/.test(w) && Number(w) >= 1 && Number(w) <= 512))
      throw new Error(`--workers: "${w}" is neither auto nor a whole number from 1 to 512`);
  }
  return [...new Set(list.map((w) => (w === 'auto' ? w : String(Number(w)))))];
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
  workers: parseWorkers(args.workers),
  backends: [...new Set((args.backend ?? 'sqlite').split(',').map((s) => s.trim()))],
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
// The spool behind Petrel, and how many nodes share it.
const BACKENDS = {
  sqlite: { label: 'SQLite', nodes: 1 },
  postgres: { label: 'PostgreSQL, 1 node', nodes: 1 },
  postgres2: { label: 'PostgreSQL, 2 nodes', nodes: 2 },
};
for (const b of opts.backends) {
  if (!BACKENDS[b]) throw new Error(`--backend: unknown "${b}" (${Object.keys(BACKENDS).join(', ')})`);
}
const usesPostgres = opts.backends.some((b) => b !== 'sqlite');
if (usesPostgres && !postgresBinDir()) {
  console.error("--backend postgres needs PostgreSQL: install Debian's postgresql package");
  process.exit(1);
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

/**
 * One Petrel node. `spool`: null for SQLite in its data dir, else { url, keyFile, node } of a
 * PostgreSQL spool; `setup`: add the account and the DKIM key (once per spool: nodes share them).
 */
async function startNode({ sinkPort, label, workers, spool, setup }) {
  const dir = tempDir('petrel-bench-');
  const [port, inboundPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const config = join(dir, 'petrel.toml');
  const shared = spool
    ? `
[spool]
url = ${JSON.stringify(spool.url)}
key_file = ${JSON.stringify(spool.keyFile)}

[cluster]
node = ${JSON.stringify(spool.node)}
`
    : '';
  writeFileSync(
    config,
    `# written by test/bench/run.mjs
hostname = "petrel.bench.invalid"
data_dir = ${JSON.stringify(join(dir, 'data'))}
log_level = ${JSON.stringify(opts.logLevel)}

[server]
workers = ${workers === 'auto' ? '"auto"' : workers}
${shared}
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
  if (setup) {
    await petrel(['user', 'add', 'bench', '--allow-from', 'bench.test'], config, `${BENCH_PASSWORD}\n`);
    await petrel(['dkim', 'keygen', 'bench.test', '--selector', 'bench'], config);
  }
  const logPath = join(dir, 'petrel.log');
  const log = openSync(logPath, 'a');
  const nodeArgs = [];
  if (opts.cpuProf) {
    // Workers inherit these flags: one directory per run, Node's default names (with the pid).
    const profDir = join(opts.cpuProf, `petrel-${label}-${Date.now()}`);
    mkdirSync(profDir, { recursive: true });
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', profDir);
  }
  const child = spawn(process.execPath, [...nodeArgs, PETREL, '--config', config, 'serve'], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  try {
    await waitForPort(port, 20_000);
    // With workers the port opens when the first one listens; the primary logs once all serve.
    if (workers !== '1' && ['trace', 'debug', 'info'].includes(opts.logLevel))
      await waitForLog(logPath, '"msg":"petrel started"', 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`Petrel did not start (log: ${logPath}): ${err.message}`);
  }
  const single = workers === '1';
  return {
    port,
    pid: child.pid,
    logPath,
    processes: () => processTree(child.pid).length,
    cpu: () => treeCpuSeconds(child.pid),
    rssKb: () => (single ? (procStatus(child.pid).VmRSS ?? 0) : treePssKb(child.pid)),
    peakRssKb: single ? () => procStatus(child.pid).VmHWM ?? 0 : null,
    async stop() {
      child.kill('SIGTERM');
      const code = await waitExit(child, 35_000);
      return code;
    },
  };
}

// The PostgreSQL server of this run: started on first use, stopped at the end.
let pgServer = null;
let pgDatabases = 0;

async function postgresServer() {
  pgServer ??= await startPostgres({ dir: tempDir('postgres-bench-') });
  return pgServer;
}

/**
 * Petrel on `backend`: one node on SQLite or on a fresh PostgreSQL database, or several nodes on
 * one. Its submission ports, and its CPU, memory and processes summed over the nodes; `dbCpu`: the
 * database server's, null on SQLite.
 */
async function startPetrel({ sinkPort, label, workers, backend }) {
  if (backend === 'sqlite') {
    const node = await startNode({ sinkPort, label, workers, spool: null, setup: true });
    return { ...node, ports: [node.port], logPaths: [node.logPath], dbCpu: null, checkpoint: null };
  }
  const server = await postgresServer();
  const database = `bench_${++pgDatabases}`;
  const url = await server.database(database);
  const keyDir = tempDir('petrel-bench-key-');
  const keyFile = join(keyDir, 'spool.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  const nodes = [];
  const stopAll = async () => {
    const codes = await Promise.all(nodes.map((n) => n.stop().catch((err) => `stop failed: ${err.message}`)));
    await server
      .sql(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
      .catch((err) => console.error(`could not drop ${database}: ${err.message}`));
    return codes.find((c) => c !== 0 && c !== undefined) ?? 0;
  };
  try {
    // One after the other: the first applies the migrations and adds the account and key.
    for (let i = 1; i <= BACKENDS[backend].nodes; i++) {
      const spool = { url, keyFile, node: `bench-node-${i}` };
      nodes.push(await startNode({ sinkPort, label: `${label}-node${i}`, workers, spool, setup: i === 1 }));
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  const sum = (f) => nodes.reduce((total, n) => total + f(n), 0);
  return {
    port: nodes[0].port,
    ports: nodes.map((n) => n.port),
    pid: nodes[0].pid,
    logPath: nodes[0].logPath,
    logPaths: nodes.map((n) => n.logPath),
    processes: () => sum((n) => n.processes()),
    cpu: () => sum((n) => n.cpu()),
    dbCpu: () => treeCpuSeconds(server.pid),
    rssKb: () => sum((n) => n.rssKb()),
    peakRssKb: nodes.length === 1 ? nodes[0].peakRssKb : null,
    checkpoint: () => server.sql('CHECKPOINT'),
    stop: stopAll,
  };
}

async function waitForLog(path, text, timeoutMs) {
  const deadline = now() + timeoutMs;
  while (now() < deadline) {
    if (readFileSync(path, 'utf8').includes(text)) return;
    await sleep(50);
  }
  throw new Error(`no ${text} in the log after ${timeoutMs} ms`);
}

async function startPostfixTarget({ sinkPort }) {
  const dir = tempDir('postfix-bench-');
  running.add(join(dir, 'etc'));
  const pf = await startPostfix({ dir, port: await freePort(), relayPort: sinkPort });
  return {
    port: pf.port,
    pid: pf.pid,
    logPath: join(dir, 'maillog'),
    processes: () => processTree(pf.pid).length,
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
// What one RSA signature costs

// The bench gives Petrel one DKIM key, for the sender's domain: one signature per message.
const SIGNATURES_PER_MESSAGE = 1;

/**
 * CPU time of one RSA-2048 signature as src/dkim/signer.ts makes it: crypto.sign('sha256') with a
 * KeyObject parsed once, over about the canonical header data of a bench message. Synchronous
 * here, so the bench process's own CPU time is the signature's; Petrel signs on the thread pool,
 * and what handing it there costs stays in "rest". Median over batches, CPU and wall clock both.
 */
function calibrateRsa({ signs = 2000, batch = 100 } = {}) {
  const key = createPrivateKey(readFileSync(join(ROOT, 'fixtures/dkim/test-key.pem'), 'utf8'));
  const data = Buffer.alloc(700, 'h');
  for (let i = 0; i < 50; i++) cryptoSign('sha256', data, key);
  const cpuMs = [];
  const wallMs = [];
  for (let b = 0; b < Math.ceil(signs / batch); b++) {
    const cpu0 = process.cpuUsage();
    const t0 = now();
    for (let i = 0; i < batch; i++) cryptoSign('sha256', data, key);
    const wall = now() - t0;
    const { user, system } = process.cpuUsage(cpu0);
    cpuMs.push((user + system) / 1000 / batch);
    wallMs.push(wall / batch);
  }
  return {
    what: 'crypto.sign sha256, RSA-2048 KeyObject, 700 B',
    modulusBits: key.asymmetricKeyDetails?.modulusLength ?? null,
    signs: cpuMs.length * batch,
    batch,
    cpuMsPerSign: round(median(cpuMs), 4),
    wallMsPerSign: round(median(wallMs), 4),
    cpuMsPerSignMin: round(Math.min(...cpuMs), 4),
    cpuMsPerSignMax: round(Math.max(...cpuMs), 4),
  };
}

// ---------------------------------------------------------------------------------------------
// One measurement

/** `total` in `parts` whole shares that differ by at most one, the larger first. */
function shares(total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/**
 * Sends `messages` the way `variant` does, over `sessions` in all, split between `ports` (the
 * nodes of a cluster: each its share of sessions and messages, all at once). Resolves like
 * smtpSource: from the first start to the last exit.
 */
async function sendTo({ ports, messages, variant, auth }) {
  const split = shares(opts.sessions, Math.min(ports.length, opts.sessions));
  const counts = split.map((sessions) => Math.round((messages * sessions) / opts.sessions));
  counts[0] += messages - counts.reduce((a, b) => a + b, 0);
  const runs = await Promise.all(
    split.map((sessions, i) => {
      const common = {
        port: ports[i],
        messages: counts[i],
        sessions,
        size: opts.size,
        from: FROM,
        to: TO,
        timeoutMs: runTimeoutMs,
      };
      return variant === 'authenticated'
        ? nodemailerSource({ ...common, auth })
        : smtpSource({ ...common, persistent: variant === 'persistent' });
    }),
  );
  return {
    startedAt: Math.min(...runs.map((r) => r.startedAt)),
    endedAt: Math.max(...runs.map((r) => r.endedAt)),
    command: runs.map((r) => r.command).join(' & '),
  };
}

const backendOf = (t) => (t.target === 'petrel' ? { backend: t.backend } : {});

async function measure({ target, variant, pair, workers, backend, rsa }) {
  const label = `${target}${backend && backend !== 'sqlite' ? `-${backend}` : ''}${workers ? `-w${workers}` : ''}-${variant}-${pair}`;
  const sink = await startSink();
  let mta = null;
  const result = {
    target,
    ...backendOf({ target, backend }),
    ...(workers ? { workers } : {}),
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
        ? await startPetrel({ sinkPort: sink.port, label, workers, backend })
        : await startPostfixTarget({ sinkPort: sink.port });
    const auth = target === 'petrel' ? { user: 'bench', pass: BENCH_PASSWORD } : null;
    const source = (messages) => sendTo({ ports: mta.ports ?? [mta.port], messages, variant, auth });
    if (opts.warmup > 0) {
      await source(opts.warmup);
      if ((await sink.waitFor(opts.warmup, 60_000)) === null)
        throw new Error(`warm-up not delivered (${sink.count}/${opts.warmup})`);
      if (mta.checkpoint) await mta.checkpoint();
      await sleep(300);
    }
    const base = sink.count;
    if (mta.ports) result.nodes = mta.ports.length;
    result.processes = mta.processes();
    let peakRssKb = mta.rssKb();
    sampler = setInterval(() => {
      try {
        peakRssKb = Math.max(peakRssKb, mta.rssKb());
      } catch {
        // process gone
      }
    }, 250);
    const cpu0 = mta.cpu();
    const db0 = mta.dbCpu ? mta.dbCpu() : null;
    const src = await source(opts.messages);
    result.command = src.command;
    const lastAt = await sink.waitFor(base + opts.messages, runTimeoutMs);
    const cpu1 = mta.cpu();
    const db1 = mta.dbCpu ? mta.dbCpu() : null;
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
    if (db0 !== null) {
      result.dbCpuSeconds = round(db1 - db0, 2);
      result.dbCpuMsPerMsg = round(((db1 - db0) * 1000) / opts.messages, 3);
    }
    if (target === 'petrel') {
      result.signaturesPerMessage = SIGNATURES_PER_MESSAGE;
      result.rsaMsPerMsg = round(rsa.cpuMsPerSign * SIGNATURES_PER_MESSAGE, 3);
      result.restMsPerMsg = round(result.cpuMsPerMsg - result.rsaMsPerMsg, 3);
    }
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

async function latency({ target, rate, workers, backend }) {
  const sink = await startSink();
  let mta = null;
  const who = { target, ...backendOf({ target, backend }), ...(workers ? { workers } : {}) };
  try {
    const label = `${target}${backend && backend !== 'sqlite' ? `-${backend}` : ''}-w${workers}-latency`;
    mta =
      target === 'petrel'
        ? await startPetrel({ sinkPort: sink.port, label, workers, backend })
        : await startPostfixTarget({ sinkPort: sink.port });
    // Warm up the same way as the throughput runs.
    if (opts.warmup > 0) {
      await sendTo({ ports: mta.ports ?? [mta.port], messages: opts.warmup, variant: 'persistent' });
      await sink.waitFor(opts.warmup, 60_000);
      if (mta.checkpoint) await mta.checkpoint();
    }
    const count = Math.max(200, Math.min(50_000, Math.round(rate * opts.latencySeconds)));
    const r = await latencyRun({
      ports: mta.ports ?? [mta.port],
      sessions: opts.sessions,
      count,
      rate,
      size: opts.size,
      from: FROM,
      to: TO,
      timeoutMs: opts.latencySeconds * 1000 * 4 + 30_000,
    });
    return { ...who, ...r };
  } catch (err) {
    return { ...who, offeredRate: rate, error: err.message };
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
  if (usesPostgres) {
    try {
      info.postgres = execFileSync(join(postgresBinDir(), 'postgres'), ['--version'], { encoding: 'utf8' })
        .trim()
        .replace(/^postgres \(PostgreSQL\)/, 'PostgreSQL');
    } catch {
      info.postgres = 'PostgreSQL (version unknown)';
    }
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
  const pick = (target, workers, backend) =>
    runs.filter(
      (r) =>
        r.variant === variant &&
        r.target === target &&
        !r.error &&
        (!workers || r.workers === workers) &&
        (!backend || r.backend === backend),
    );
  const stats = (rs) => ({
    runs: rs.length,
    processes: median(rs.map((r) => r.processes)),
    acceptedRate: median(rs.map((r) => r.acceptedRate)),
    deliveredRate: median(rs.map((r) => r.deliveredRate)),
    cpuMsPerMsg: median(rs.map((r) => r.cpuMsPerMsg)),
    peakRssMb: median(rs.map((r) => r.peakRssMb)),
  });
  const postfixRuns = pick('postfix');
  const petrelStats = (backend, workers) => {
    const petrelRuns = pick('petrel', workers, backend);
    const sqliteRuns = pick('petrel', workers, 'sqlite');
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
    // The same pair's SQLite run of this worker setting: the one beside it in time.
    const toSqlite = [];
    for (let p = 1; p <= opts.pairs; p++) {
      const a = petrelRuns.find((r) => r.pair === p);
      const b = sqliteRuns.find((r) => r.pair === p);
      if (a && b) toSqlite.push({ pair: p, delivered: round(a.deliveredRate / b.deliveredRate, 2) });
    }
    const dbCpuMsPerMsg = median(petrelRuns.map((r) => r.dbCpuMsPerMsg));
    const cpuMsPerMsg = median(petrelRuns.map((r) => r.cpuMsPerMsg));
    return {
      backend,
      nodes: BACKENDS[backend].nodes,
      workers,
      ...stats(petrelRuns),
      rsaMsPerMsg: median(petrelRuns.map((r) => r.rsaMsPerMsg)),
      restMsPerMsg: median(petrelRuns.map((r) => r.restMsPerMsg)),
      dbCpuMsPerMsg,
      // Of Petrel's and the database's CPU per message together, the database's part.
      dbShare:
        dbCpuMsPerMsg === null || cpuMsPerMsg === null
          ? null
          : round(dbCpuMsPerMsg / (dbCpuMsPerMsg + cpuMsPerMsg), 3),
      ratios,
      ratioDeliveredMedian: median(ratios.map((r) => r.delivered)),
      ratioAcceptedMedian: median(ratios.map((r) => r.accepted)),
      ratiosToSqlite: toSqlite,
      ratioToSqliteMedian: median(toSqlite.map((r) => r.delivered)),
    };
  };
  return {
    variant,
    petrel: opts.backends.flatMap((backend) => opts.workers.map((workers) => petrelStats(backend, workers))),
    postfix: stats(postfixRuns),
    ceilingRate: median(ceilings.filter((c) => c.variant === variant && !c.error).map((c) => c.rate)),
  };
}

const workersLabel = (s) =>
  `${s.workers}${s.processes ? ` (${fmt(s.processes)} process${s.processes === 1 ? '' : 'es'})` : ''}`;
// Tables name the spool only when the run compares spools: a SQLite-only run prints as it always did.
const spoolColumns = () => opts.backends.length > 1 || opts.backends[0] !== 'sqlite';

/** The results as Markdown: printed, and written next to the JSON. */
function resultTables(summary, latencies, info, rsa) {
  const lines = [];
  lines.push(
    `Petrel vs Postfix — ${fmt(opts.messages)} × ${fmt(opts.size / 1024, opts.size % 1024 ? 1 : 0)} KB, ${opts.sessions} sessions, ${opts.pairs} pair(s), Petrel workers ${opts.workers.join(', ')}, medians`,
  );
  lines.push('');
  lines.push(
    `machine: ${info.cores} cores (${info.cpuModel}), ${info.memoryGb} GB, Node ${info.node}, Postfix ${info.postfix ?? '—'}${info.postgres ? `, ${info.postgres}` : ''}, spool on ${info.tmpFilesystem}`,
  );
  lines.push('');
  lines.push(
    `RSA-2048 sign (${rsa.what}): ${fmt(rsa.cpuMsPerSign, 3)} ms of CPU (median of ${rsa.signs / rsa.batch} batches of ${rsa.batch}; range ${fmt(rsa.cpuMsPerSignMin, 3)}–${fmt(rsa.cpuMsPerSignMax, 3)}), ${SIGNATURES_PER_MESSAGE} signature per message`,
  );
  lines.push('');
  const spools = spoolColumns();
  lines.push(
    `| load |${spools ? ' spool |' : ''} workers | Petrel delivered msg/s | Postfix delivered msg/s | ratio per pair | ratio (median of pairs) | Petrel CPU ms/msg | of which RSA | rest | Postfix CPU ms/msg |`,
  );
  lines.push(`|---|${spools ? '---|' : ''}---|---|---|---|---|---|---|---|---|`);
  for (const s of summary) {
    for (const p of s.petrel) {
      lines.push(
        `| ${VARIANTS[s.variant]} |${spools ? ` ${BACKENDS[p.backend].label} |` : ''} ${workersLabel(p)} | ${fmt(p.deliveredRate)} | ${opts.postfix ? fmt(s.postfix.deliveredRate) : '—'} | ${p.ratios.map((r) => fmt(r.delivered, 2)).join(', ') || '—'} | ${fmt(p.ratioDeliveredMedian, 2)} | ${fmt(p.cpuMsPerMsg, 2)} | ${fmt(p.rsaMsPerMsg, 2)} | ${fmt(p.restMsPerMsg, 2)} | ${opts.postfix ? fmt(s.postfix.cpuMsPerMsg, 2) : '—'} |`,
      );
    }
  }
  if (spools) {
    lines.push('');
    lines.push(
      "spools: delivered rate against SQLite's in the same pair; CPU ms/msg of Petrel (every node's process tree) and of the PostgreSQL server's process tree over the same window",
    );
    lines.push('');
    lines.push(
      '| load | spool | workers | delivered msg/s | ratio to SQLite per pair | ratio to SQLite (median of pairs) | Petrel CPU ms/msg | database CPU ms/msg | database share | Petrel + database CPU ms/msg |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|---|');
    for (const s of summary) {
      for (const p of s.petrel) {
        const total = p.dbCpuMsPerMsg === null ? p.cpuMsPerMsg : p.cpuMsPerMsg + p.dbCpuMsPerMsg;
        lines.push(
          `| ${VARIANTS[s.variant]} | ${BACKENDS[p.backend].label} | ${workersLabel(p)} | ${fmt(p.deliveredRate)} | ${p.ratiosToSqlite.map((r) => fmt(r.delivered, 2)).join(', ') || '—'} | ${fmt(p.ratioToSqliteMedian, 2)} | ${fmt(p.cpuMsPerMsg, 2)} | ${p.backend === 'sqlite' ? 'in Petrel' : fmt(p.dbCpuMsPerMsg, 2)} | ${p.dbShare === null ? '—' : `${fmt(p.dbShare * 100)} %`} | ${fmt(total, 2)} |`,
        );
      }
    }
  }
  for (const s of summary) {
    lines.push('');
    lines.push(VARIANTS[s.variant]);
    lines.push('');
    lines.push(
      '| what | accepted msg/s | delivered msg/s | accepted ratio (median of pairs) | CPU ms/msg | peak RSS MB |',
    );
    lines.push('|---|---|---|---|---|---|');
    for (const p of s.petrel)
      lines.push(
        `| Petrel (DKIM RSA-2048)${spools ? `, ${BACKENDS[p.backend].label}` : ''}, workers ${workersLabel(p)} | ${fmt(p.acceptedRate)} | ${fmt(p.deliveredRate)} | ${fmt(p.ratioAcceptedMedian, 2)} | ${fmt(p.cpuMsPerMsg, 2)} | ${fmt(p.peakRssMb)} |`,
      );
    if (opts.postfix)
      lines.push(
        `| Postfix (no DKIM) | ${fmt(s.postfix.acceptedRate)} | ${fmt(s.postfix.deliveredRate)} | | ${fmt(s.postfix.cpuMsPerMsg, 2)} | ${fmt(s.postfix.peakRssMb)} |`,
      );
    if (opts.ceiling && s.ceilingRate !== null)
      lines.push(`| smtp-source → smtp-sink (ceiling) | ${fmt(s.ceilingRate)} | | | | |`);
  }
  if (latencies.length) {
    lines.push('');
    lines.push(
      `time-to-250 at half the peak accepted rate of persistent sessions (raw client, ${opts.sessions} persistent sessions, "." → 250; schedule → 250 includes waiting for a session)`,
    );
    lines.push('');
    lines.push(
      '| MTA | workers | offered msg/s | achieved | p50 ms | p99 ms | max ms | schedule→250 p99 ms | failures |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|');
    for (const l of latencies) {
      const w = l.workers ?? '—';
      const mta = spools && l.backend ? `${l.target} (${BACKENDS[l.backend].label})` : l.target;
      if (l.error) lines.push(`| ${mta} | ${w} | ${fmt(l.offeredRate)} | error: ${l.error} | | | | | |`);
      else
        lines.push(
          `| ${mta} | ${w} | ${fmt(l.offeredRate)} | ${fmt(l.achievedRate)} | ${fmt(l.dotTo250.p50, 1)} | ${fmt(l.dotTo250.p99, 1)} | ${fmt(l.dotTo250.max, 1)} | ${fmt(l.scheduleTo250.p99, 1)} | ${l.failures} |`,
        );
    }
  }
  return `${lines.join('\n')}\n`;
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
    `${opts.messages} × ${opts.size} B, ${opts.sessions} sessions, variants ${opts.variants.join(', ')}, Petrel workers ${opts.workers.join(', ')}, spools ${opts.backends.join(', ')}, ${opts.pairs} pair(s)${opts.postfix ? '' : ', no Postfix'}`,
  );
  // Before any MTA runs, so nothing else of the bench competes for the cores.
  const rsa = calibrateRsa();
  log(`RSA-2048 sign: ${fmt(rsa.cpuMsPerSign, 3)} ms CPU, ${fmt(rsa.wallMsPerSign, 3)} ms wall (median)`);
  const targets = [
    ...opts.backends.flatMap((backend) =>
      opts.workers.map((workers) => ({ target: 'petrel', backend, workers })),
    ),
    ...(opts.postfix ? [{ target: 'postfix' }] : []),
  ];
  const name = ({ target, workers, backend }) =>
    `${target}${backend && backend !== 'sqlite' ? ` ${backend}` : ''}${workers ? ` workers=${workers}` : ''}`;
  for (let pair = 1; pair <= opts.pairs; pair++) {
    for (const variant of opts.variants) {
      for (const t of targets) {
        const r = await measure({ ...t, variant, pair, rsa });
        runs.push(r);
        log(
          r.error
            ? `${name(t)} ${variant} #${pair}: ERROR ${r.error}`
            : `${name(t)} ${variant} #${pair}: accepted ${fmt(r.acceptedRate)} msg/s, delivered ${fmt(r.deliveredRate)} msg/s, CPU ${fmt(r.cpuMsPerMsg, 2)} ms/msg${r.rsaMsPerMsg === undefined ? '' : ` (RSA ${fmt(r.rsaMsPerMsg, 2)}, rest ${fmt(r.restMsPerMsg, 2)})`}${r.dbCpuMsPerMsg === undefined ? '' : `, database ${fmt(r.dbCpuMsPerMsg, 2)} ms/msg`}, ${r.processes} process(es), peak RSS ${fmt(r.peakRssMb)} MB`,
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
    const peak = ({ target, workers, backend }) => {
      const s = summary.find((x) => x.variant === 'persistent') ?? summary[0];
      const stats =
        target === 'petrel'
          ? s?.petrel.find((p) => p.workers === workers && p.backend === backend)
          : s?.postfix;
      return stats?.acceptedRate ?? null;
    };
    for (const t of targets) {
      const rate = opts.latencyRate ?? (peak(t) ? Math.max(10, Math.round(peak(t) / 2)) : null);
      if (!rate) continue;
      const l = await latency({ ...t, rate });
      latencies.push(l);
      log(
        l.error
          ? `latency ${name(t)}: ERROR ${l.error}`
          : `latency ${name(t)} @ ${rate} msg/s: p50 ${fmt(l.dotTo250.p50, 1)} ms, p99 ${fmt(l.dotTo250.p99, 1)} ms`,
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
    rsaSign: rsa,
    summary,
    latency: latencies,
    runs,
    ceilings,
  };
  if (pgServer) {
    await pgServer.stop();
    pgServer = null;
  }
  const out = args.out
    ? resolve(args.out)
    : join(ROOT, 'bench-results', `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  const tables = resultTables(summary, latencies, info, rsa);
  const md = out.replace(/\.json$/, '') + '.md';
  writeFileSync(md, `${tables}\ncommand: \`${result.command}\`\n`);
  console.log(`\n${tables}`);
  console.log(`results: ${out}\ntables:  ${md}`);
  if (opts.cpuProf)
    console.log(
      `CPU profiles: ${readdirSync(opts.cpuProf, { recursive: true })
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(opts.cpuProf, f))
        .join(', ')}`,
    );
  return runs.some((r) => r.error) || ceilings.some((c) => c.error) || latencies.some((l) => l.error) ? 1 : 0;
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
  // Immediate shutdown: its data directory goes next.
  if (pgServer) process.kill(pgServer.pid, 'SIGQUIT');
  if (!opts.keep) for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  process.exit(130);
});

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  console.error(err);
} finally {
  await pgServer?.stop().catch(() => undefined);
  if (!opts.keep) for (const d of tempDirs) rmSync(d, { recursive: true, force: true, maxRetries: 3 });
  else if (tempDirs.length) console.error(`kept: ${tempDirs.join(' ')}`);
}
process.exit(exitCode);
