export { createLogger, silentLogger, stdoutDestination, type Logger, type LoggerOptions } from './logger.js';
export { openRollingFile, type RollingFileOptions, type RollingFile } from './rolling-file.js';
