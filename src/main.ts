import { createApp } from './app.js';
import { loadConfig, type Config } from './config/index.js';
import { createLogger, openRollingFile } from './logging/index.js';
import { VERSION } from './version.js';

const SHUTDOWN_DEADLINE_MS = 30_000;

export interface ServeOptions {
  readonly configPath: string | undefined;
  readonly logLevel: string | undefined;
}

/**
 * Runs the daemon until a signal ends it. Owns the process: signals, exit codes. Throws
 * (for the CLI to print one line) when the config is bad or start-up fails.
 */
export async function serve(options: ServeOptions): Promise<void> {
  // The command line beats the file, at start-up and on every reload.
  const withFlags = (c: Config): Config =>
    options.logLevel === undefined
      ? c
      : Object.freeze({ ...c, log_level: options.logLevel as Config['log_level'] });
  const config = withFlags(loadConfig(options.configPath, process.env).config);
  // With log_dir, lines go to rotating files; without, to stdout (journald, Docker).
  const file = config.log_dir
    ? await openRollingFile({
        dir: config.log_dir,
        maxSize: config.log_max_size,
        maxFiles: config.log_max_files,
      })
    : undefined;
  // pino refuses a --log-level it does not know, so the flag is a valid level from here on.
  const logger = createLogger({
    level: config.log_level,
    version: VERSION,
    ...(file ? { destination: file } : {}),
  });
  const app = createApp(config, {
    logger,
    onFatal: () => {
      void shutdown('storage failure', 1);
    },
  });

  let stopping = false;
  const shutdown = async (why: string, code: number): Promise<void> => {
    if (stopping) {
      logger.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ reason: why }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error('shutdown deadline passed: exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    await app.close();
    logger.info('stopped');
    logger.flush();
    process.exitCode = code;
  };

  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading');
    let next;
    try {
      next = withFlags(loadConfig(options.configPath, process.env).config);
    } catch (err) {
      logger.error(
        { err: err instanceof Error ? err.message : String(err) },
        'config reload refused; keeping the running configuration',
      );
      next = undefined;
    }
    app.reload(next).catch((err: unknown) => logger.error({ err }, 'reload failed'));
  });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    void shutdown('uncaught exception', 1);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    void shutdown('unhandled rejection', 1);
  });

  try {
    await app.start();
  } catch (err) {
    logger.flush();
    throw err;
  }
  logger.info({ pid: process.pid }, 'petrel started');
}
