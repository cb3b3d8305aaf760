// pino: JSON lines by default, pretty when stdout is a terminal.
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export type LogFormat = 'pretty' | 'json';

/** `format` defaults to pretty on a terminal and JSON otherwise (files, pipes, log collectors). */
export function createLogger(level: string = process.env.PROTOPLANE_LOG_LEVEL ?? 'info', format?: LogFormat): Logger {
  if ((format ?? (process.stdout.isTTY ? 'pretty' : 'json')) === 'pretty') {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino({ level });
}

/** A logger that drops everything, for tests and tools that print their own output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
