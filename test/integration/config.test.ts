import { spawnSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, cli, makeTestDir, type TestDir } from '../helpers/daemon.js';

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
    [
      'an unknown key',
      '[submission]\nlisten = ["127.0.0.1:0"]\nmax_recipent = 5\n',
      /submission\.max_recipent: unknown key/,
    ],
    ['a bad port', '[submission]\nlisten = ["127.0.0.1:99999"]\n', /submission\.listen\[0\]: .*port/],
    [
      'a bad duration',
      '[submission]\nidle_timeout = "soon"\n',
      /submission\.idle_timeout: "soon" is not a duration/,
    ],
    [
      'an unreadable certificate',
      '[tls]\ncert = "/nonexistent/cert.pem"\nkey = "/nonexistent/key.pem"\n',
      /tls\.cert: cannot read \/nonexistent\/cert\.pem/,
    ],
    ['a TOML syntax error', 'hostname = \n', /TOML syntax/],
    [
      'a zero message size',
      '[submission]\nmax_message_size = 0\n',
      /submission\.max_message_size: must be more than 0/,
    ],
    [
      'fewer than 100 recipients',
      '[submission]\nmax_recipients = 10\n',
      /submission\.max_recipients: must be at least 100/,
    ],
    [
      'trusted networks without an account',
      '[submission]\ntrusted_networks = ["10.0.0.0/8"]\n',
      /submission\.trusted_account: required when trusted_networks is set/,
    ],
    [
      'a log_dir under /proc',
      'log_dir = "/proc/petrel-logs"\n',
      /log_dir: must not lie under \/proc or \/sys/,
    ],
    [
      'an inline metrics token',
      '[http]\nmetrics_token = "0123456789abcdef"\n',
      /http\.metrics_token: secrets are not written in the config/,
    ],
    [
      'an unreadable metrics token file',
      '[http]\nmetrics_token_file = "/nonexistent/token"\n',
      /http\.metrics_token_file: cannot read/,
    ],
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
    const t = withConfig(
      'hostname = "mta.example.com"\n[delivery.domain."example.org"]\nmax_connections = 2\n',
    );
    expect(cli(t, ['config', 'check'])).toMatchObject({ status: 0 });
    expect(cli(null, ['config', 'check']).stdout).toContain('config ok: embedded defaults');
  });

  it('checks the shaping rules too: a bad rules file or rule is one line naming it, and serve refuses to start', () => {
    const t = withConfig('');
    const file = join(t.dataDir, '..', 'rules.toml');
    writeFileSync(
      file,
      '[[rule]]\nname = "slow"\nmx = ["x.test"]\ncode = [421]\naction = "throttle"\nduration = "1m"\n',
    );
    const withFile = withConfig(`[shaping]\nrules_file = ${JSON.stringify(file)}\n`);
    const bad = cli(withFile, ['config', 'check']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(
      /^petrel: shaping rules .*rules\.toml: .*rule slow: throttle needs connections_factor, rate_factor or rate\n$/,
    );
    const serve = cli(withFile, ['serve']);
    expect(serve.status).not.toBe(0);
    expect(serve.stderr).toContain('rule slow: throttle needs');
    const inline = withConfig(
      '[[shaping.rule]]\nname = "Bad Name"\ndomains = ["x.test"]\ncode = [421]\naction = "bounce"\n',
    );
    expect(cli(inline, ['config', 'check']).stderr).toMatch(/shaping\.rule\[0\]\.name: lowercase/);
    expect(cli(t, ['config', 'check']).stdout).toMatch(/config ok: .* \(\d+ shaping rules\)/);
  });

  it('exits 2 on a usage error', () => {
    expect(cli(null, ['no-such-command']).status).toBe(2);
  });

  it('refuses an erase --wait that is not a number of seconds as a usage error', () => {
    const t = withConfig('');
    for (const wait of ['abc', '', '-5', '1.5']) {
      const r = cli(t, ['privacy', 'erase', 'a@dest.test', '--wait', wait]);
      expect(r.status).toBe(2);
      expect(r.stderr).toBe('petrel: --wait takes a whole number of seconds\n');
    }
  });

  /** `petrel serve` with a data_dir; SIGKILL after 15 s, since a process spinning in mkdir ignores SIGTERM. */
  const serveWithDataDir = (dataDir: (t: TestDir) => string): { status: number | null; stderr: string } => {
    const t = makeTestDir();
    dirs.push(t);
    writeFileSync(t.configPath, `data_dir = ${JSON.stringify(dataDir(t))}\n[http]\nlisten = "127.0.0.1:0"\n`);
    const r = spawnSync(process.execPath, [BIN, '--config', t.configPath, 'serve'], {
      encoding: 'utf8',
      timeout: 15_000,
      killSignal: 'SIGKILL',
    });
    return { status: r.status, stderr: r.stderr };
  };

  it.each([
    [
      'written under /proc',
      () => '/proc/petrel-test/var',
      /^petrel: .*data_dir: must not lie under \/proc or \/sys\n$/,
    ],
    [
      'reaching /proc through a symlink',
      (t: TestDir) => {
        symlinkSync('/proc', join(t.dir, 'proc-link'));
        return join(t.dir, 'proc-link', 'petrel', 'var');
      },
      /^petrel: .*lies under \/proc, where no directory can be made\n$/,
    ],
  ])(
    'refuses a data_dir %s at once, with one line',
    (_what, dataDir, pattern) => {
      const r = serveWithDataDir(dataDir);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(pattern);
    },
    20_000,
  );
});
