import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: string;
  readonly version: string;
  /** Where lines go; stdout when absent. */
  readonly destination?: DestinationStream;
}

/**
 * The root logger. Lines carry ids (msgId, sessionId, rcptId), never raw addresses or bodies;
 * secrets are redacted in case a caller slips.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'petrel', version: options.version },
      redact: {
        paths: ['password', '*.password', 'auth.*', '*.auth', 'pass', '*.pass'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? stdoutDestination(),
  );
}

/** A logger that writes nothing, for tests and offline CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Standard output as a log destination (asynchronous writes of whole lines). */
export function stdoutDestination(): DestinationStream & { flush(cb?: (err?: Error) => void): void } {
  return pino.destination({ dest: 1, sync: false });
}
