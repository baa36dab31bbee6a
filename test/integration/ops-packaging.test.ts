import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';

const ROOT = resolve(import.meta.dirname, '../..');
const UNIT = resolve(ROOT, 'systemd/petrel.service');
const DOCKERFILE = resolve(ROOT, 'Dockerfile');
/** main.ts exits at most this long after SIGTERM; supervisors must wait longer before SIGKILL. */
const DRAIN_DEADLINE_S = 30;

function unitDirectives(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of readFileSync(UNIT, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

function seconds(text: string): number {
  const m = /^(\d+)(s|min)?$/.exec(text);
  if (!m) throw new Error(`unexpected time span ${text}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

describe('systemd unit', () => {
  const d = unitDirectives();

  it('runs petrel serve directly, reloads with SIGHUP and outwaits the drain deadline', () => {
    expect(d.get('Type')).toEqual(['simple']);
    expect(d.get('ExecStart')?.[0]).toMatch(/\/node \S+\/bin\/petrel\.js serve$/);
    expect(d.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(d.get('KillSignal')).toEqual(['SIGTERM']);
    expect(seconds(d.get('TimeoutStopSec')![0]!)).toBeGreaterThan(DRAIN_DEADLINE_S);
  });

  it('runs as its own user with only the capability to bind low ports', () => {
    expect(d.get('User')).toEqual(['petrel']);
    expect(d.get('CapabilityBoundingSet')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(d.get('AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(d.get('NoNewPrivileges')).toEqual(['yes']);
    expect(d.get('ProtectSystem')).toEqual(['strict']);
    expect(d.get('ReadWritePaths')).toEqual(['/var/lib/petrel /var/log/petrel']);
    expect(d.get('RestrictAddressFamilies')).toEqual(['AF_INET AF_INET6 AF_UNIX']);
    // V8's JIT flips pages to executable; MemoryDenyWriteExecute=yes makes node abort at start.
    expect(d.get('MemoryDenyWriteExecute')).toBeUndefined();
  });

  it.skipIf(!hasSystemdAnalyze)('passes systemd-analyze verify without a warning', () => {
    const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });

  it.skipIf(!hasSystemdAnalyze)('is rated 2.0 or lower ("OK") by systemd-analyze security', () => {
    const r = spawnSync(
      'systemd-analyze',
      ['security', '--offline=true', '--threshold=20', '--no-pager', UNIT],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stdout).toMatch(/Overall exposure level for petrel\.service: (0|1)\.\d OK|: 2\.0 OK/);
    expect(r.status).toBe(0);
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(DOCKERFILE, 'utf8');
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const runtime = instructions.slice(instructions.findLastIndex((l) => l.startsWith('FROM ')));

  it('builds in one stage and runs Node 24 slim in another, as a non-root user', () => {
    expect(text).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    expect(instructions.filter((l) => l.startsWith('FROM '))).toHaveLength(2);
    expect(runtime.find((l) => l.startsWith('USER '))).toBe('USER petrel');
    expect(runtime).toContain('VOLUME ["/var/lib/petrel"]');
    expect(runtime).toContain('EXPOSE 587 465 25 8025');
    expect(runtime).toContain('STOPSIGNAL SIGTERM');
  });

  it('starts node itself (not npm) so signals reach Petrel, and checks /healthz', () => {
    expect(runtime.at(-1)).toBe('CMD ["node", "bin/petrel.js", "serve"]');
    expect(runtime.find((l) => l.startsWith('HEALTHCHECK'))).toContain(
      "fetch('http://127.0.0.1:8025/healthz')",
    );
  });

  it('ships a config that validates and listens where EXPOSE says', () => {
    const printf = /printf '%s\\n' +((?:'[^']*' *)+)> \/etc\/petrel\/petrel\.toml/.exec(
      text.replace(/\\\n/g, ' '),
    );
    expect(printf).not.toBeNull();
    const toml = [...printf![1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]).join('\n');
    const config = parseConfig(parseToml(toml), 'Dockerfile');
    expect(config.data_dir).toBe('/var/lib/petrel');
    const ports = [
      ...config.submission.listen,
      ...config.submission.tls_listen,
      ...config.inbound.listen,
      config.http.listen,
    ].map((l) => l.port);
    expect(ports.sort((a, b) => a - b)).toEqual([25, 465, 587, 8025]);
  });
});
