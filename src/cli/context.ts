import type { Command } from 'commander';
import { loadConfig, type Config } from '../config/index.js';
import { connectSpool, type Spool } from '../spool/index.js';

/** Options every command may receive from the root program. */
export interface GlobalOptions {
  readonly config?: string;
  readonly json?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

export function configFor(cmd: Command): Config {
  return loadConfig(globals(cmd).config, process.env).config;
}

/** Opens the spool named by the config for one command and closes it afterwards. */
export async function withSpool<T>(
  cmd: Command,
  fn: (spool: Spool, config: Config) => Promise<T>,
): Promise<T> {
  const config = configFor(cmd);
  const spool = await connectSpool({
    dataDir: config.data_dir,
    url: config.spool.url,
    eraseRewrite: config.spool.erase_rewrite,
  });
  try {
    return await fn(spool, config);
  } finally {
    await spool.close();
  }
}

/** Reads all of standard input when it is a pipe or file; undefined for a terminal. */
export async function readStdin(): Promise<string | undefined> {
  if (process.stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A failure the user can act on: printed as one line, exit code 1 (2 for usage). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
