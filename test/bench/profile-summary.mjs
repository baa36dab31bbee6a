// Totals self time by function and by package from V8 .cpuprofile files (node --cpu-prof).
//   node test/bench/profile-summary.mjs PROFILE.cpuprofile [more…] [--top 30] [--json]
// Self time of a sample goes to the function on top of the stack; native work done while a JS
// function waits (better-sqlite3 running SQL and fsync, crypto, zlib) counts as that function's
// self time. Time on the libuv thread pool (async crypto.sign) is not sampled: only the main thread.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, json: { type: 'boolean', default: false } },
});
if (positionals.length === 0) {
  console.error('usage: node test/bench/profile-summary.mjs FILE.cpuprofile [FILE…] [--top N] [--json]');
  process.exit(2);
}
const top = Number(values.top);

function shortUrl(url) {
  if (!url) return '';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

/** Which package (or part of Node / of Petrel) a frame belongs to. */
function category(url, functionName) {
  if (!url) {
    if (/^\((garbage collector|idle|program|root)\)$/.test(functionName)) return functionName;
    return '(native)';
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:'))
    return `node:${url.slice(5).split('/')[0] === 'internal' ? 'internal' : url.slice(5)}`;
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `petrel:${url.slice(dist + 6).split('/')[0]}`;
  return url;
}

const byFunction = new Map();
const byCategory = new Map();
let total = 0;
let idle = 0;
let wallMs = 0;
for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  // timeDeltas[i] is the time before sample i; the time of sample i is the next delta.
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  wallMs += (profile.endTime - profile.startTime) / 1000;
  for (const [id, us] of selfUs) {
    const node = nodes.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    const ms = us / 1000;
    total += ms;
    if (name === '(idle)') idle += ms;
    const key = `${name}  ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
    const cat = category(url, name);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + ms);
  }
}

const busy = total - idle;
const rows = (map) =>
  [...map]
    .filter(([k]) => k !== '(idle)' && !k.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .map(([name, ms]) => ({ name, ms: Math.round(ms), pctBusy: Math.round((ms / busy) * 1000) / 10 }));

const result = {
  files: positionals,
  wallMs: Math.round(wallMs),
  sampledMs: Math.round(total),
  idleMs: Math.round(idle),
  busyMs: Math.round(busy),
  byFunction: rows(byFunction).slice(0, top),
  byCategory: rows(byCategory).slice(0, top),
};
if (values.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  console.log(
    `main thread: ${result.busyMs} ms busy of ${result.sampledMs} ms sampled (${Math.round((busy / total) * 100)}%), idle ${result.idleMs} ms`,
  );
  console.log('\nself time by function (% of busy):');
  for (const r of result.byFunction)
    console.log(`${String(r.pctBusy).padStart(6)}%  ${String(r.ms).padStart(7)} ms  ${r.name}`);
  console.log('\nself time by package (% of busy):');
  for (const r of result.byCategory)
    console.log(`${String(r.pctBusy).padStart(6)}%  ${String(r.ms).padStart(7)} ms  ${r.name}`);
}
