import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, openRollingFile } from '../../src/logging/index.js';
import { BIN } from '../helpers/daemon.js';
import { until } from '../helpers/until.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-logs-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function logFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /^petrel\.\d+\.log$/.test(f))
    .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
}

describe('log files', () => {
  it('roll over at log_max_size and keep log_max_files besides the current one', async () => {
    const dir = join(tempDir(), 'logs');
    const file = await openRollingFile({ dir, maxSize: 2048, maxFiles: 2 });
    const logger = createLogger({ level: 'info', version: 'test', destination: file });
    for (let i = 0; i < 200; i++) {
      logger.info({ msgId: `m${i}` }, 'a line long enough to fill a small file quickly');
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 20));
    }
    file.flushSync();
    const read = (names: string[]): string => names.map((f) => readFileSync(join(dir, f), 'utf8')).join('');
    // Rolling and deleting are asynchronous: wait until the last line is written and only the
    // current file and log_max_files rolled-over ones are left.
    const files = await until('the last line and two rolled-over files', () => {
      const now = logFiles(dir);
      return now.length === 3 && read(now).includes('"msgId":"m199"') && now;
    });
    expect(Number(files.at(-1)!.split('.')[1])).toBeGreaterThan(3);
    const kept = read(files);
    expect(kept).toContain('"msgId":"m199"');
    expect(kept).not.toContain('"msgId":"m0"');
    expect(readdirSync(dir)).toContain('current.log');
    file.end();
  });

  it("take the daemon's lines when log_dir is set, and stdout stays quiet", async () => {
    const dir = tempDir();
    const config = join(dir, 'petrel.toml');
    writeFileSync(
      config,
      `data_dir = ${JSON.stringify(join(dir, 'var'))}\nlog_dir = ${JSON.stringify(join(dir, 'log'))}\n` +
        `[submission]\nlisten = ["127.0.0.1:0"]\n[dns]\nservers = ["127.0.0.1:9"]\n`,
    );
    const child = spawn(process.execPath, [BIN, 'serve', '--config', config, '--log-level', 'debug'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const current = join(dir, 'log', 'current.log');
    const text = await until('the start line in current.log', () => {
      try {
        const now = readFileSync(current, 'utf8');
        return now.includes('petrel started') && now;
      } catch {
        return false;
      }
    });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(text).toContain('"msg":"petrel started"');
    expect(readFileSync(current, 'utf8')).toContain('"msg":"stopped"');
    expect(stdout).toBe('');
  });

  it('refuse to start when log_dir cannot be written, naming the key', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'not-a-dir'), '');
    const config = join(dir, 'petrel.toml');
    writeFileSync(
      config,
      `data_dir = ${JSON.stringify(join(dir, 'var'))}\nlog_dir = ${JSON.stringify(join(dir, 'not-a-dir', 'log'))}\n` +
        `[submission]\nlisten = ["127.0.0.1:0"]\n`,
    );
    const child = spawn(process.execPath, [BIN, 'serve', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^petrel: log_dir: cannot write logs in .*not-a-dir/);
  });
});
