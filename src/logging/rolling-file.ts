import { accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import pinoRoll from 'pino-roll';
import type { DestinationStream } from 'pino';
import { ConfigError, errorMessage, makeDirectory } from '../shared/index.js';

export interface RollingFileOptions {
  /** Directory of the files (config `log_dir`); made when missing. */
  readonly dir: string;
  /** Bytes after which the current file rolls over (config `log_max_size`). */
  readonly maxSize: number;
  /** Rolled-over files kept besides the current one (config `log_max_files`). */
  readonly maxFiles: number;
}

/** A pino destination writing `petrel.N.log` files in `dir`, with `current.log` linking the newest. */
export type RollingFile = DestinationStream & { flushSync(): void; end(): void };

/**
 * Opens the log files (pino-roll: a SonicBoom stream in this process, no worker thread). Files
 * beyond `maxFiles`, including those of earlier runs, are deleted as it rolls. Rejects with a
 * ConfigError naming log_dir when the directory cannot be written, before any line is lost.
 */
export async function openRollingFile(options: RollingFileOptions): Promise<RollingFile> {
  const dir = resolve(options.dir);
  const unwritable = (err: unknown): ConfigError =>
    new ConfigError('PETREL_CONFIG_INVALID', `log_dir: cannot write logs in ${dir}: ${errorMessage(err)}`);
  // Checked here, before the stream exists: SonicBoom reports open failures as 'error' events
  // after the fact, which would crash the process instead of naming the key.
  try {
    makeDirectory(dir, 0o750);
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw unwritable(err);
  }
  let stream: RollingFile;
  try {
    stream = (await pinoRoll({
      file: join(dir, 'petrel'),
      extension: '.log',
      size: `${options.maxSize}b`,
      // With removeOtherLogFiles, pino-roll's count takes in the current file too.
      limit: { count: options.maxFiles + 1, removeOtherLogFiles: true },
      symlink: true,
    })) as RollingFile;
  } catch (err) {
    throw unwritable(err);
  }
  await new Promise<void>((ready, fail) => {
    const s = stream as unknown as NodeJS.EventEmitter & { fd: number };
    if (s.fd >= 0) return ready();
    s.once('ready', () => ready());
    s.once('error', (err: Error) => fail(unwritable(err)));
  });
  return stream;
}
