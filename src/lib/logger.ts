import pino, { type Logger } from 'pino'

/** JSON logs on stdout; credentials are redacted wherever they might appear. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers.authorization', '*.token', '*.password', '*.privateKey'], censor: '[redacted]' },
  })
}
