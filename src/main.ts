import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { createApp, type AppDeps } from './app.js';
import { HOLDER_ENV, INDEX_ENV, createSupervisor, linkToPrimary } from './cluster/index.js';
import { loadConfig, readMetricsToken, readSpoolKey, type Config } from './config/index.js';
import { createLogger, openRollingFile, stdoutDestination, type Logger } from './logging/index.js';
import { SpoolError, systemClock } from './shared/index.js';
import { connectSpool, lockDataDir } from './spool/index.js';
import { loadTlsMaterial } from './tls/index.js';
import { VERSION } from './version.js';

const SHUTDOWN_DEADLINE_MS = 30_000;
/** A primary waits this much longer than its workers' own deadline before it kills them. */
const WORKER_KILL_GRACE_MS = 5000;

export interface ServeOptions {
  readonly configPath: string | undefined;
  readonly logLevel: string | undefined;
}

/** Set once a worker has stopped and lets go of its primary's channel. */
let leaving = false;

/** How many worker processes `[server] workers` asks for. */
function workerCount(config: Config): number {
  return config.server.workers === 'auto' ? availableParallelism() : config.server.workers;
}

/**
 * Runs the daemon until a signal ends it. Owns the process: signals, exit codes. Throws
 * (for the CLI to print one line) when the config is bad or start-up fails. With more than one
 * worker this process becomes the node's primary and each worker runs this function again.
 */
export async function serve(options: ServeOptions): Promise<void> {
  // The command line beats the file, at start-up and on every reload.
  const withFlags = (c: Config): Config =>
    options.logLevel === undefined
      ? c
      : Object.freeze({ ...c, log_level: options.logLevel as Config['log_level'] });
  const load = (): Config => withFlags(loadConfig(options.configPath, process.env).config);
  const config = load();
  if (cluster.isWorker) return serveWorker(config, load);
  // With log_dir, lines go to rotating files; without, to stdout (journald, Docker).
  const destination = config.log_dir
    ? await openRollingFile({
        dir: config.log_dir,
        maxSize: config.log_max_size,
        maxFiles: config.log_max_files,
      })
    : stdoutDestination();
  // pino refuses a --log-level it does not know, so the flag is a valid level from here on.
  const logger = createLogger({ level: config.log_level, version: VERSION, destination });
  const workers = workerCount(config);
  if (workers > 1) return servePrimary(config, load, logger, workers, (lines) => destination.write(lines));
  await serveApp(config, load, logger, {}, () => logger.info({ pid: process.pid }, 'petrel started'));
}

/** Reloads on SIGHUP (or the primary's word): a config that does not load keeps the running one. */
function reloader(logger: Logger, load: () => Config, apply: (next: Config | undefined) => Promise<void>) {
  return (): void => {
    logger.info('SIGHUP: reloading');
    let next;
    try {
      next = load();
    } catch (err) {
      logger.error(
        { err: err instanceof Error ? err.message : String(err) },
        'config reload refused; keeping the running configuration',
      );
      next = undefined;
    }
    apply(next).catch((err: unknown) => logger.error({ err }, 'reload failed'));
  };
}

/** One process that accepts, spools and delivers: the whole node, or one worker of it. */
async function serveApp(
  config: Config,
  load: () => Config,
  logger: Logger,
  deps: Omit<AppDeps, 'logger' | 'onFatal'>,
  started: (app: ReturnType<typeof createApp>) => void,
): Promise<ReturnType<typeof createApp>> {
  const app = createApp(config, {
    ...deps,
    spoolKey: readSpoolKey(config.spool, process.env),
    logger,
    onFatal: () => {
      void shutdown('storage failure', 1);
    },
  });

  let stopping = false;
  const shutdown = async (why: string, code: number): Promise<void> => {
    if (stopping) {
      // A worker hears SIGTERM from its primary and often from the service manager too (the
      // whole control group): its primary escalates if the drain overruns, not a second signal.
      if (cluster.isWorker) return;
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
    // A worker's channel to its primary would keep it running.
    if (cluster.isWorker) {
      leaving = true;
      cluster.worker?.disconnect();
    }
  };

  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  const reload = reloader(logger, load, (next) => app.reload(next));
  if (cluster.isWorker) {
    // Signals a terminal sends to the whole process group reach the primary, which passes
    // them on; taken here as well, a Ctrl-C would count twice and cut the drain short.
    process.on('SIGINT', () => undefined);
    process.on('SIGHUP', () => undefined);
  } else {
    process.on('SIGINT', () => void shutdown('SIGINT', 0));
    process.on('SIGHUP', reload);
  }
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
  started(app);
  return app;
}

/** A worker of a node: logs to its primary, shares its limits, and ends when the primary does. */
async function serveWorker(config: Config, load: () => Config): Promise<void> {
  const holder = process.env[HOLDER_ENV] ?? '';
  const index = Number(process.env[INDEX_ENV] ?? '0');
  // Standard output is a pipe to the primary, which writes the lines to the log files.
  const out = stdoutDestination();
  const logger = createLogger({ level: config.log_level, version: VERSION, destination: out }).child({
    worker: index,
  });
  const link = linkToPrimary();
  // Without its primary nothing holds the data dir's lock: stop at once, as a crash would.
  // SIGKILL, not exit(): the log pipe's reader is gone with the primary, and pino's flush at exit
  // would retry its write into the broken pipe for ever.
  const die = (): void => {
    // Its own goodbye closes the channel too: that one ends the process the usual way.
    if (!leaving) process.kill(process.pid, 'SIGKILL');
  };
  link.onPrimaryGone(die);
  // A broken log pipe is the primary gone as well (the first sign of it, often).
  (out as unknown as NodeJS.EventEmitter).on('error', die);
  process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') die();
  });
  // And should the channel's close go unseen: a worker whose parent changed was orphaned.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) die();
  }, 500).unref();
  let app;
  try {
    app = await serveApp(
      config,
      load,
      logger,
      {
        worker: { holder, throttle: link.throttle, lead: index === 1, nodeMetrics: () => link.nodeMetrics() },
      },
      () => logger.info({ pid: process.pid, holder }, 'worker started'),
    );
  } catch (err) {
    // The open channel would keep this process alive after the CLI has reported the error.
    cluster.worker?.disconnect();
    throw err;
  }
  link.onReload(reloader(logger, load, (next) => app.reload(next)));
  link.onCollect(async () => (app.metrics ? app.metrics.snapshot() : []));
  link.ready();
}

/**
 * The node's primary: holds the data dir, prepares the spool, then forks and supervises the
 * workers and keeps what they share (limits, metrics). It serves no mail itself.
 */
async function servePrimary(
  config: Config,
  load: () => Config,
  logger: Logger,
  workers: number,
  writeLines: (lines: string) => void,
): Promise<void> {
  const clock = systemClock;
  // Before anything touches the queue: a second daemon on this data dir stops here.
  const lock = lockDataDir(config.data_dir);
  const holder = `${config.cluster.node}:${lock.id}.${randomBytes(6).toString('hex')}`;
  let spool;
  try {
    // Once, before the workers: they would otherwise each make the self-signed certificate at
    // the same moment, and each report the same unreadable file.
    await loadTlsMaterial(config.tls, config.data_dir, config.hostname);
    readMetricsToken(config.http);
    spool = await connectSpool({ dataDir: config.data_dir, url: config.spool.url }, { clock });
    // The workers heartbeat for the node from here on; recovery below takes only its own leases.
    if (!(await spool.queue.heartbeat(holder, config.cluster.node_timeout))) {
      throw new SpoolError(
        'PETREL_NODE_IN_USE',
        `node name ${config.cluster.node} is in use by another live node; give each node its own [cluster] node`,
      );
    }
    if ((await spool.messages.purgeStaged()) > 0)
      logger.warn('deleted copies left staged by an unanswered DATA');
    // Every lease in the spool is an earlier run's: the lock proves its holders gone.
    const recovered = await spool.queue.recoverInflight(holder);
    if (recovered > 0)
      logger.info({ recipients: recovered }, 'requeued work that was in flight at the last stop');
  } catch (err) {
    await spool?.close();
    lock.release();
    throw err;
  }
  const supervisor = createSupervisor({
    workers,
    logger,
    clock,
    spool,
    holder,
    writeLines,
    startLine: logger.isLevelEnabled('info'),
    writeError: (text) => process.stderr.write(text),
  });

  let stopping: Promise<void> | null = null;
  const shutdown = (why: string, code: number): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ reason: why }, 'shutting down');
      await supervisor.stop(SHUTDOWN_DEADLINE_MS + WORKER_KILL_GRACE_MS);
      await spool.close();
      lock.release();
      logger.info('stopped');
      logger.flush();
      process.exitCode = code;
    })());

  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading the workers');
    try {
      logger.level = load().log_level;
    } catch {
      // Each worker reports a config it cannot load, and keeps running on its own.
    }
    supervisor.reload();
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
    await supervisor.start();
  } catch (err) {
    await shutdown('a worker failed to start', 1);
    throw err;
  }
  logger.info({ pid: process.pid, workers }, 'petrel started');
}
