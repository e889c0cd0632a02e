import pino, { type Logger } from 'pino'

/**
 * JSON logs on stdout; credentials are redacted wherever they might appear.
 *
 * Written synchronously: pino's default stdout stream is asynchronous and flushed synchronously at
 * exit, and that flush retries an EPIPE for ever (sonic-boom's flushSync), so an engine whose log
 * reader had gone (a restarted collector, `slipway serve | head`) never ended on SIGTERM. A
 * synchronous destination has nothing to flush at exit, and pino's own broken-pipe filter turns
 * logging off at the first EPIPE. The cost: a log reader that stalls stalls the engine, as with any
 * logger that writes what it is given before going on.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      redact: { paths: ['req.headers.authorization', '*.token', '*.password', '*.privateKey'], censor: '[redacted]' },
    },
    pino.destination({ dest: 1, sync: true }),
  )
}
