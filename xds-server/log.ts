// pino: JSON lines by default, pretty when stdout is a terminal.
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string = process.env.PROTOPLANE_LOG_LEVEL ?? 'info'): Logger {
  if (process.stdout.isTTY) {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino({ level });
}

/** A logger that drops everything, for tests and tools that print their own output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
