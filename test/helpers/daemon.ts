import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const BIN = resolve(import.meta.dirname, '../../bin/petrel.js');

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface Daemon {
  readonly dir: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly ports: { submission: number; submissions?: number; inbound?: number; http?: number };
  readonly logs: LogLine[];
  readonly stdoutText: () => string;
  readonly child: ChildProcess;
  /** Sends a signal and resolves with the exit code once the process has gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface TestDir {
  readonly dir: string;
  readonly dataDir: string;
  readonly configPath: string;
  cleanup(): void;
}

/**
 * Worker processes of every test daemon that does not set its own: 1, or PETREL_TEST_WORKERS
 * (CI runs the integration tests once with 2).
 */
export const TEST_WORKERS = Number(process.env['PETREL_TEST_WORKERS'] ?? '1');

/** A temp dir with a config whose listeners use port 0; `extra` is appended TOML. */
export function makeTestDir(extra = '', submission = ''): TestDir {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-test-'));
  const dataDir = join(dir, 'var');
  const configPath = join(dir, 'petrel.toml');
  writeFileSync(
    configPath,
    `hostname = "petrel.test"
data_dir = ${JSON.stringify(dataDir)}
log_level = "debug"
${extra.includes('[server]') ? '' : `\n[server]\nworkers = ${TEST_WORKERS}\n`}
[submission]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
${submission}
${extra.includes('[dns]') ? '' : '\n# No DNS leaves the machine: tests that deliver bring their own server.\n[dns]\nservers = ["127.0.0.1:9"]\n'}
${extra.includes('[inbound]') ? '' : '\n[inbound]\nlisten = ["127.0.0.1:0"]\n'}
${extra.includes('[http]') ? '' : '\n[http]\nlisten = "127.0.0.1:0"\n'}
${extra}
`,
  );
  return { dir, dataDir, configPath, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface StartOptions {
  /** More arguments after `serve` (e.g. `--log-level`). */
  readonly args?: readonly string[];
  /** A command that runs node, e.g. `['strace', '-f', '-o', file]` or `['fiu-run', '-x']`. */
  readonly wrapper?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /**
   * The config's log_dir: the daemon writes its lines there, not to stdout, so they are read
   * from the files (`logs` then holds the lines of the files still kept, refreshed every 50 ms).
   */
  readonly logDir?: string;
}

/** The `petrel.N.log` files of a log_dir, oldest first. */
export function logFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((f) => /^petrel\.\d+\.log$/.test(f))
    .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]))
    .map((f) => join(dir, f));
}

/** The text of a log_dir's files, oldest first (a file deleted while reading counts as empty). */
export function logFilesText(dir: string): string {
  return logFiles(dir)
    .map((f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        return '';
      }
    })
    .join('');
}

function parseLine(line: string): LogLine | undefined {
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return undefined;
  }
}

/** Starts `petrel serve` as a child process and waits until it listens. */
export async function startDaemon(t: TestDir, opts: StartOptions = {}): Promise<Daemon> {
  const argv = [
    ...(opts.wrapper ?? []),
    process.execPath,
    BIN,
    'serve',
    '--config',
    t.configPath,
    ...(opts.args ?? []),
  ];
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.env ? { env: opts.env } : {}),
  });
  const logs: LogLine[] = [];
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const ports: { submission: number; submissions?: number; inbound?: number; http?: number } = {
    submission: 0,
  };
  const take = (parsed: LogLine): boolean => {
    if (parsed.msg === 'listening') {
      const port = Number(String(parsed['address']).split(':').pop());
      if (parsed['listener'] === 'submission') ports.submission = port;
      if (parsed['listener'] === 'submissions') ports.submissions = port;
      if (parsed['listener'] === 'inbound') ports.inbound = port;
      if (parsed['listener'] === 'http') ports.http = port;
    }
    return parsed.msg === 'petrel started';
  };
  const logDir = opts.logDir;
  // A restart finds the lines of the run before in the files; only a later start counts.
  const startsBefore =
    logDir === undefined ? 0 : logFilesText(logDir).split('"msg":"petrel started"').length - 1;
  await new Promise<void>((res, rej) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      stdout += `${line}\n`;
      const parsed = parseLine(line);
      if (!parsed || logDir !== undefined) return;
      logs.push(parsed);
      if (take(parsed)) res();
    });
    if (logDir !== undefined) {
      let started = false;
      const refresh = (): void => {
        const lines = logFilesText(logDir)
          .split('\n')
          .flatMap((l) => parseLine(l) ?? []);
        logs.splice(0, logs.length, ...lines);
        if (!started && lines.map(take).filter(Boolean).length > startsBefore) {
          started = true;
          res();
        }
      };
      const timer = setInterval(refresh, 50);
      void exited.then(() => {
        clearInterval(timer);
        refresh();
      });
    }
    void exited.then((code) => rej(new Error(`petrel exited (${code}) before start: ${stderr}${stdout}`)));
  });
  return {
    ...t,
    ports,
    logs,
    child,
    stdoutText: () => stdout,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the `petrel` CLI synchronously with the test dir's config. */
export function cli(t: TestDir | null, args: string[], input = ''): CliResult {
  const full = t ? ['--config', t.configPath, ...args] : args;
  const r = spawnSync(process.execPath, [BIN, ...full], { input, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI without blocking this process (needed when a test's own servers must keep answering). */
export function cliAsync(t: TestDir, args: string[], input = ''): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--config', t.configPath, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(input);
    child.once('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Creates an account through the CLI and returns its password. */
export function addUser(
  t: TestDir,
  name: string,
  domains: string[],
  password = 'correct horse battery',
): string {
  const r = cli(t, ['user', 'add', name, '--allow-from', ...domains], `${password}\n`);
  if (r.status !== 0) throw new Error(`user add failed: ${r.stderr}`);
  return password;
}
