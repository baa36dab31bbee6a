#!/usr/bin/env node
// Dependency floors (RELIABILITY.md case 47) and `npm audit` of the runtime dependencies.
// Exits 1 when an installed version is below its floor or the audit finds high or critical issues.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const FLOORS = {
  // 3.19.3: DATA could end early on a split ".."; 3.19.23: a STARTTLS injection race.
  'smtp-server': '3.19.23',
  nodemailer: '10.0.12',
  'better-sqlite3': '12.0.0',
};

const parse = (v) => v.split('-')[0].split('.').map(Number);
const below = (v, floor) => {
  const [a, b] = [parse(v), parse(floor)];
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
};

let failed = false;
for (const [name, floor] of Object.entries(FLOORS)) {
  const { version } = JSON.parse(
    readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8'),
  );
  const bad = below(version, floor);
  console.log(`${bad ? 'FAIL' : 'ok  '} ${name} ${version} (floor ${floor})`);
  failed ||= bad;
}
// better-sqlite3 13 needs Node 22: on Node 20 it installs, then crashes the process.
const sqlite = JSON.parse(
  readFileSync(new URL('../node_modules/better-sqlite3/package.json', import.meta.url), 'utf8'),
);
if (Number(process.versions.node.split('.')[0]) < 22 && parse(sqlite.version)[0] > 12) {
  console.log(`FAIL better-sqlite3 ${sqlite.version} needs Node 22; this is Node ${process.versions.node}`);
  failed = true;
}

let report = null;
try {
  report = JSON.parse(
    execFileSync('npm', ['audit', '--omit=dev', '--json'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  );
} catch (err) {
  // npm audit exits non-zero when it finds something; its JSON is still on stdout.
  try {
    report = JSON.parse(String(err.stdout ?? ''));
  } catch {
    report = null;
  }
}
const counts = report?.metadata?.vulnerabilities;
if (!counts) {
  console.log(`skip npm audit: the registry gave no report (${report?.error?.summary ?? 'no answer'})`);
} else {
  const serious = (counts.high ?? 0) + (counts.critical ?? 0);
  console.log(`${serious > 0 ? 'FAIL' : 'ok  '} npm audit --omit=dev: ${JSON.stringify(counts)}`);
  failed ||= serious > 0;
}
process.exit(failed ? 1 : 0);
