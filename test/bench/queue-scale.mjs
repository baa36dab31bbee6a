// Queue-scale benchmark: a spool holding 1 000 000 queued recipients across 10 000 domains.
//
//   npm run build && node test/bench/queue-scale.mjs              # 1 000 000 recipients
//   node test/bench/queue-scale.mjs --recipients 100000 --quick   # smaller, faster
//
// Fills the spool directly through the store (dist/spool: openSpool(dir).messages.insert, group
// commit, synchronous=FULL as always), as newsletter-style messages of --per-message recipients
// spread over the domains (each domain gets recipients ÷ domains of them). Then starts the daemon
// on it (DNS servers = 127.0.0.1:9, so no lookup leaves the machine and every unrouted domain
// defers; --routed domains go to a local smtp-sink) and measures:
//   start-up           spawn → the submission port accepts connections, and → "petrel started"
//   first due work     spawn → the scheduler's first recorded outcome (first delivery/deferral log line)
//   RSS                VmRSS when started, VmHWM at the end of the observation window
//   queue list --domain   latency of `petrel queue list --domain D --json` (a whole CLI process),
//                      next to `petrel config check` as the CLI's own start-up floor
//   queue stats        latency of `petrel queue stats --json` (aggregates the whole queue)
//   with the backlog   outcomes per second by kind (deliveries to the sink, deferrals) over --observe s
//   privacy erase      `petrel privacy erase` of one person named in 10 messages (as recipient, and in
//                      a base64 part only), daemon stopped; --unindexed fills without the mentions index
//                      (a spool from before it), so that erasure decodes every body
// Writes bench-results/queue-scale-<time>.json and prints a table. Nothing is suspended.
import { spawn } from 'node:child_process';
import {
  mkdtempSync,
  mkdirSync,
  rmSync,
  writeFileSync,
  readFileSync,
  openSync,
  closeSync,
  statSync,
  readdirSync,
} from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, median, now, procStatus, run, startSink, waitExit, waitForPort } from './lib.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PETREL = join(ROOT, 'bin/petrel.js');
const { openSpool } = await import(join(ROOT, 'dist/spool/index.js'));
const { mentionedAddresses } = await import(join(ROOT, 'dist/privacy/index.js'));

const { values: args } = parseArgs({
  options: {
    recipients: { type: 'string', default: '1000000' },
    domains: { type: 'string', default: '10000' },
    'per-message': { type: 'string', default: '100' },
    size: { type: 'string', default: '5120' },
    routed: { type: 'string', default: '100' },
    observe: { type: 'string', default: '20' },
    'cli-runs': { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    tmp: { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    unindexed: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`usage: node test/bench/queue-scale.mjs [--recipients 1000000] [--domains 10000] [--per-message 100]
  [--size 5120] [--routed 100] [--observe 20] [--cli-runs 5] [--quick] [--unindexed] [--tmp DIR] [--out FILE] [--keep]
  --routed N     the first N domains are routed to a local smtp-sink (deliverable); the rest defer
  --observe S    seconds of running with the backlog before shutting down
  --quick        100 000 recipients, 10 s of observation`);
  process.exit(0);
}
const int = (name) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} takes a whole number`);
  return n;
};
const opts = {
  recipients: args.quick && args.recipients === '1000000' ? 100_000 : int('recipients'),
  domains: int('domains'),
  perMessage: Math.max(1, int('per-message')),
  size: int('size'),
  routed: int('routed'),
  observeSeconds: args.quick && args.observe === '20' ? 10 : int('observe'),
  cliRuns: Math.max(1, int('cli-runs')),
  tmp: resolve(args.tmp ?? tmpdir()),
};
const domainName = (i) => `d${i}.scale.test`;

function body(size) {
  const head =
    'From: News <news@sender.test>\r\nTo: undisclosed-recipients:;\r\nSubject: queue scale\r\n' +
    'Date: Sat, 01 Mar 2025 12:00:00 +0000\r\nMessage-ID: <scale@sender.test>\r\nMIME-Version: 1.0\r\n\r\n';
  let text = head;
  for (let k = 0; text.length < size; k++) text += `${k} `.padEnd(76, 'x') + '\r\n';
  return Buffer.from(text, 'latin1');
}

async function fill(dataDir) {
  const spool = openSpool(dataDir);
  const message = body(opts.size);
  const mentions = args.unindexed ? undefined : mentionedAddresses(message);
  const messages = Math.ceil(opts.recipients / opts.perMessage);
  const t0 = now();
  let r = 0;
  let lastReport = t0;
  const inFlight = 512; // concurrent inserts: the store groups them into transactions of ≤ 256
  try {
    for (let m = 0; m < messages;) {
      const batch = [];
      for (let k = 0; k < inFlight && m < messages; k++, m++) {
        const recipients = [];
        for (let j = 0; j < opts.perMessage && r < opts.recipients; j++, r++) {
          const domain = domainName(r % opts.domains);
          recipients.push({ address: `u${r}@${domain}`, domain });
        }
        batch.push(
          spool.messages.insert(spool.messages.newId(), {
            accountId: null,
            mailFrom: 'news@sender.test',
            recipients,
            headerMessageId: `<scale.${m}@sender.test>`,
            body: message,
            listener: 'bench',
            ...(mentions ? { mentions } : {}),
          }),
        );
      }
      await Promise.all(batch);
      if (now() - lastReport > 5000) {
        lastReport = now();
        console.error(
          `  fill: ${r.toLocaleString('en-US')} recipients, ${Math.round(r / ((now() - t0) / 1000)).toLocaleString('en-US')}/s`,
        );
      }
    }
  } finally {
    await spool.close();
  }
  const seconds = (now() - t0) / 1000;
  return {
    messages,
    recipients: r,
    seconds: round(seconds, 1),
    recipientsPerSecond: Math.round(r / seconds),
  };
}

const PERSON = 'person@erase.scale.test';

/** Ten messages naming one person (as recipient, and in a base64 part only), then erases them. */
async function timeErase(config, dataDir) {
  const spool = openSpool(dataDir);
  try {
    for (let i = 0; i < 10; i++) {
      const text = `From: News <news@sender.test>\r\nTo: a@d0.scale.test\r\nSubject: erase ${i}\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(`write to ${PERSON}`).toString('base64')}\r\n`;
      const message = Buffer.from(text);
      const recipients =
        i % 2 === 0
          ? [{ address: PERSON, domain: 'erase.scale.test' }]
          : [{ address: `a${i}@d0.scale.test`, domain: 'd0.scale.test' }];
      const mentions = args.unindexed ? {} : { mentions: mentionedAddresses(message) };
      await spool.messages.insert(spool.messages.newId(), {
        accountId: null,
        mailFrom: 'news@sender.test',
        recipients,
        headerMessageId: null,
        body: message,
        listener: 'bench',
        ...mentions,
      });
    }
  } finally {
    await spool.close();
  }
  const t0 = now();
  const { stdout } = await run(
    process.execPath,
    [PETREL, '--config', config, '--json', 'privacy', 'erase', PERSON],
    { timeoutMs: 600_000 },
  );
  const ms = now() - t0;
  const report = JSON.parse(stdout);
  return { ms: Math.round(ms), messages: report.counts.messages, indexed: !args.unindexed };
}

function round(v, d) {
  const f = 10 ** d;
  return Math.round(v * f) / f;
}

function dirSizeMb(dir) {
  let total = 0;
  for (const f of readdirSync(dir)) {
    const st = statSync(join(dir, f));
    if (st.isFile()) total += st.size;
  }
  return round(total / 2 ** 20, 1);
}

/** Log lines as objects, with their time in ms since the epoch. */
function readLog(path) {
  const out = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line);
      o.at = Date.parse(o.time);
      out.push(o);
    } catch {
      // a line cut short at the end of the file
    }
  }
  return out;
}

async function timeCli(config, cliArgs) {
  const ms = [];
  let lines = 0;
  for (let i = 0; i < opts.cliRuns; i++) {
    const t0 = now();
    const { stdout } = await run(process.execPath, [PETREL, '--config', config, ...cliArgs], {
      timeoutMs: 120_000,
    });
    ms.push(now() - t0);
    lines = stdout.split('\n').filter(Boolean).length;
  }
  return {
    medianMs: Math.round(median(ms)),
    minMs: Math.round(Math.min(...ms)),
    maxMs: Math.round(Math.max(...ms)),
    lines,
  };
}

async function startDaemon(config, logPath, port) {
  const log = openSync(logPath, 'a');
  const spawnedAt = Date.now();
  const t0 = now();
  const child = spawn(process.execPath, [PETREL, '--config', config, 'serve'], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  await waitForPort(port, 60_000);
  const listeningMs = now() - t0;
  return { child, spawnedAt, listeningMs };
}

async function main() {
  const started = new Date();
  const dir = mkdtempSync(join(opts.tmp, 'petrel-queue-scale-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const result = {
    benchmark: 'queue-scale',
    startedAt: started.toISOString(),
    options: opts,
    machine: { cores: availableParallelism(), cpuModel: cpus()[0]?.model, node: process.version },
  };
  let sink = null;
  let daemon = null;
  try {
    sink = await startSink();
    const [port, inboundPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    const config = join(dir, 'petrel.toml');
    const routes = [];
    for (let i = 0; i < Math.min(opts.routed, opts.domains); i++) {
      routes.push(`[routes."${domainName(i)}"]\nhost = "127.0.0.1"\nport = ${sink.port}\n`);
    }
    writeFileSync(
      config,
      `# written by test/bench/queue-scale.mjs
hostname = "petrel.bench.invalid"
data_dir = ${JSON.stringify(dataDir)}
log_level = "info"

[submission]
listen = ["127.0.0.1:${port}"]

[inbound]
listen = ["127.0.0.1:${inboundPort}"]

[http]
listen = "127.0.0.1:${httpPort}"

[dns]
servers = ["127.0.0.1:9"]

${routes.join('\n')}`,
    );
    // An empty spool first: the first start makes the self-signed certificate (seconds of RSA
    // key generation), which is not what this benchmark measures; the second is the baseline.
    for (let i = 0; i < 2; i++) {
      const d = await startDaemon(config, join(dir, `petrel-empty-${i}.log`), port);
      daemon = d;
      if (i === 1)
        result.emptySpoolStart = {
          listeningMs: Math.round(d.listeningMs),
          rssMb: round(procStatus(d.child.pid).VmRSS / 1024, 1),
        };
      d.child.kill('SIGTERM');
      await waitExit(d.child, 40_000);
      daemon = null;
    }

    console.error(
      `filling ${opts.recipients.toLocaleString('en-US')} recipients over ${opts.domains.toLocaleString('en-US')} domains (${opts.perMessage} per message, ${opts.size} B bodies)…`,
    );
    result.fill = await fill(dataDir);
    result.fill.spoolMb = dirSizeMb(dataDir);
    console.error(
      `  filled in ${result.fill.seconds} s (${result.fill.recipientsPerSecond.toLocaleString('en-US')} recipients/s), spool ${result.fill.spoolMb} MB`,
    );

    const floor = await timeCli(config, ['config', 'check']);
    const listStopped = await timeCli(config, [
      '--json',
      'queue',
      'list',
      '--domain',
      domainName(opts.domains - 1),
    ]);

    console.error('starting the daemon on the full spool…');
    const logPath = join(dir, 'petrel.log');
    const firstDaemon = await startDaemon(config, logPath, port);
    daemon = firstDaemon;
    const rssAtStartKb = procStatus(daemon.child.pid).VmRSS;
    // Let the scheduler work; take the CLI timings meanwhile (the daemon is writing).
    const observeStart = now();
    await sleep(1000);
    const listRunning = await timeCli(config, [
      '--json',
      'queue',
      'list',
      '--domain',
      domainName(opts.domains - 1),
    ]);
    const statsRunning = await timeCli(config, ['--json', 'queue', 'stats']);
    const left = opts.observeSeconds * 1000 - (now() - observeStart);
    if (left > 0) await sleep(left);
    const status = procStatus(daemon.child.pid);
    const sinkCount = sink.count;
    const observedS = (now() - observeStart) / 1000;
    const stopT0 = now();
    daemon.child.kill('SIGTERM');
    const code = await waitExit(daemon.child, 40_000);
    const stopMs = now() - stopT0;
    daemon = null;

    const lines = readLog(logPath);
    const startedLine = lines.find((l) => l.msg === 'petrel started');
    const outcomes = lines.filter((l) => typeof l.event === 'string' && l.component === 'queue');
    const first = outcomes[0];
    const byEvent = {};
    for (const l of outcomes) byEvent[l.event] = (byEvent[l.event] ?? 0) + 1;
    const firstAt = first?.at ?? null;
    const lastAt = outcomes.at(-1)?.at ?? null;
    const spanS = firstAt && lastAt && lastAt > firstAt ? (lastAt - firstAt) / 1000 : null;

    // A second start on the same spool: what a restart costs once work was in flight.
    const logPath2 = join(dir, 'petrel-restart.log');
    const second = await startDaemon(config, logPath2, port);
    daemon = second;
    await sleep(1500);
    second.child.kill('SIGTERM');
    await waitExit(second.child, 40_000);
    const lines2 = readLog(logPath2);
    const first2 = lines2.find((l) => typeof l.event === 'string' && l.component === 'queue');
    const restart = {
      listeningMs: Math.round(second.listeningMs),
      firstOutcomeMs: first2 ? first2.at - second.spawnedAt : null,
      recovered:
        lines2.find((l) => l.recipients !== undefined && /requeued/.test(l.msg ?? ''))?.recipients ?? 0,
    };
    daemon = null;

    result.erase = await timeErase(config, dataDir);

    result.start = {
      listeningMs: Math.round(firstDaemon.listeningMs),
      startedLogMs: startedLine ? startedLine.at - firstDaemon.spawnedAt : null,
      firstOutcomeMs: firstAt ? firstAt - firstDaemon.spawnedAt : null,
      firstOutcomeKind: first?.event ?? null,
      rssAtStartMb: round(rssAtStartKb / 1024, 1),
      rssEndMb: round(status.VmRSS / 1024, 1),
      peakRssMb: round(status.VmHWM / 1024, 1),
      stopMs: Math.round(stopMs),
      exitCode: code,
    };
    result.restart = restart;
    result.cli = {
      floorConfigCheck: floor,
      queueListDomainStopped: listStopped,
      queueListDomainRunning: listRunning,
      queueStatsRunning: statsRunning,
    };
    result.withBacklog = {
      observedSeconds: round(observedS, 1),
      outcomes: byEvent,
      outcomesPerSecond: spanS ? Math.round(outcomes.length / spanS) : null,
      deliveredToSink: sinkCount,
      deliveredPerSecond: spanS ? round(sinkCount / spanS, 1) : null,
    };
  } finally {
    if (daemon) {
      daemon.child.kill('SIGKILL');
      await waitExit(daemon.child, 5000);
    }
    if (sink) await sink.stop();
    if (!args.keep) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    else console.error(`kept ${dir}`);
  }
  const out = args.out
    ? resolve(args.out)
    : join(ROOT, 'bench-results', `queue-scale-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  print(result);
  console.log(`\nresults: ${out}`);
}

function print(r) {
  const s = r.start;
  const c = r.cli;
  const b = r.withBacklog;
  console.log(`
queue scale — ${r.fill.recipients.toLocaleString('en-US')} queued recipients, ${opts.domains.toLocaleString('en-US')} domains, ${r.fill.messages.toLocaleString('en-US')} messages of ${opts.size} B; spool ${r.fill.spoolMb} MB
| what | value | target |
|---|---|---|
| fill through the store (group commit) | ${r.fill.seconds} s, ${r.fill.recipientsPerSecond.toLocaleString('en-US')} recipients/s | |
| start-up, empty spool: spawn → port accepts | ${r.emptySpoolStart.listeningMs} ms (RSS ${r.emptySpoolStart.rssMb} MB) | |
| start-up: spawn → port accepts | ${s.listeningMs} ms | < 5 000 ms |
| start-up: spawn → "petrel started" | ${s.startedLogMs ?? '—'} ms | |
| first due work: spawn → first outcome (${s.firstOutcomeKind ?? '—'}) | ${s.firstOutcomeMs ?? '—'} ms | < 1 000 ms after start |
| RSS at start / end / peak (VmHWM) | ${s.rssAtStartMb} / ${s.rssEndMb} / ${s.peakRssMb} MB | < 300 MB |
| \`petrel queue list --domain D --json\`, daemon stopped | ${c.queueListDomainStopped.medianMs} ms (${c.queueListDomainStopped.lines} rows) | |
| same, daemon running | ${c.queueListDomainRunning.medianMs} ms (min ${c.queueListDomainRunning.minMs}, max ${c.queueListDomainRunning.maxMs}) | |
| \`petrel queue stats --json\`, daemon running | ${c.queueStatsRunning.medianMs} ms | |
| CLI floor: \`petrel config check\` | ${c.floorConfigCheck.medianMs} ms | |
| with the backlog: outcomes/s (${
    Object.entries(b.outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none'
  }) | ${b.outcomesPerSecond ?? '—'} /s over ${b.observedSeconds} s | |
| with the backlog: delivered to the sink (${opts.routed} routed domains) | ${b.deliveredToSink} (${b.deliveredPerSecond ?? '—'}/s) | |
| shutdown (SIGTERM → exit) | ${s.stopMs} ms, exit ${s.exitCode} | < 30 000 ms |
| restart on the same spool: port accepts / first outcome | ${r.restart.listeningMs} / ${r.restart.firstOutcomeMs ?? '—'} ms | |
| \`petrel privacy erase\` of one person in ${r.erase.messages} messages (${r.erase.indexed ? 'mentions indexed' : 'no index: bodies decoded'}), daemon stopped | ${r.erase.ms} ms | |`);
}

await main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
