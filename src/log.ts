import { pino, stdTimeFunctions, type Logger } from 'pino';

// One JSON line per event on stdout (journald keeps it); `msg` reads on its own.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const opts = { level, base: { pid: process.pid }, timestamp: stdTimeFunctions.isoTime };
  return destination ? pino(opts, destination as never) : pino(opts);
}

export type { Logger };
