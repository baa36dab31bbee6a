import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, makeTestDir, type TestDir } from '../helpers/daemon.js';

describe('configuration errors stop start-up with one clear line', () => {
  const dirs: TestDir[] = [];
  afterAll(() => dirs.forEach((d) => d.cleanup()));

  const withConfig = (toml: string): TestDir => {
    const t = makeTestDir();
    dirs.push(t);
    writeFileSync(t.configPath, `data_dir = ${JSON.stringify(t.dataDir)}\n${toml}`);
    return t;
  };

  it.each([
    ['an unknown key', '[submission]\nlisten = ["127.0.0.1:0"]\nmax_recipent = 5\n', /submission\.max_recipent: unknown key/],
    ['a bad port', '[submission]\nlisten = ["127.0.0.1:99999"]\n', /submission\.listen\[0\]: .*port/],
    ['a bad duration', '[submission]\nidle_timeout = "soon"\n', /submission\.idle_timeout: "soon" is not a duration/],
    ['an unreadable certificate', '[tls]\ncert = "/nonexistent/cert.pem"\nkey = "/nonexistent/key.pem"\n', /tls\.cert: cannot read \/nonexistent\/cert\.pem/],
    ['a TOML syntax error', 'hostname = \n', /TOML syntax/],
  ])('%s', (_what, toml, pattern) => {
    const t = withConfig(toml);
    for (const args of [['serve'], ['config', 'check']]) {
      const r = cli(t, args);
      expect(r.status).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^petrel: /);
      expect(lines[0]).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('reports a config file that does not exist', () => {
    const r = cli(null, ['--config', join('/nonexistent', 'petrel.toml'), 'config', 'check']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^petrel: cannot read config \/nonexistent\/petrel\.toml/);
  });

  it('accepts a valid file and the embedded defaults', () => {
    const t = withConfig('hostname = "mta.example.com"\n[delivery.domain."example.org"]\nmax_connections = 2\n');
    expect(cli(t, ['config', 'check'])).toMatchObject({ status: 0 });
    expect(cli(null, ['config', 'check']).stdout).toContain('config ok: embedded defaults');
  });

  it('exits 2 on a usage error', () => {
    expect(cli(null, ['no-such-command']).status).toBe(2);
  });
});
