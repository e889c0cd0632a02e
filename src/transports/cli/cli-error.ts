/**
 * What the CLI's exit status means. Scripts branch on these, so they never change meaning; the
 * table is printed by `slipway --help` and repeated in the README.
 */
export const EXIT = {
  ok: 0,
  /** The operation ran and failed: a watched rollout or release ended failed, or the engine answered 5xx. */
  failed: 1,
  /** The command line is wrong (unknown command or option, bad value, unreadable file); nothing was sent. */
  usage: 2,
  /** No token, a token the engine does not accept (401), or one whose role does not allow the call (403). */
  auth: 3,
  /** The engine does not know the object (404). */
  notFound: 4,
  /** The engine refused the input or the change conflicts with the current state (400, 409, 413, 415, 422). */
  rejected: 5,
  /** The engine could not be reached (connection refused, name not resolved, timeout). */
  unreachable: 6,
  /** A wait (--wait, --watch) ran out of time; the operation goes on in the engine. */
  waitTimeout: 7,
  /** Interrupted (Ctrl-C) while waiting; the operation goes on in the engine. */
  interrupted: 130,
} as const
export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** The exit codes with one line each, for --help and the README. */
export const EXIT_CODE_HELP: [ExitCode, string][] = [
  [EXIT.ok, 'success'],
  [EXIT.failed, 'the operation failed (a watched rollout or release ended failed; the engine answered 5xx)'],
  [EXIT.usage, 'usage error: unknown command or option, bad value, unreadable file (nothing was sent)'],
  [EXIT.auth, 'not authenticated or not allowed (no token, 401, 403): set SLIPWAY_TOKEN'],
  [EXIT.notFound, 'not found (404): unknown cluster, release, machine, rollout, lock'],
  [EXIT.rejected, 'rejected input or conflict (400, 409, 413, 415, 422): the API code and message are printed'],
  [EXIT.unreachable, 'the engine could not be reached (connection refused, timeout): the URL tried is printed'],
  [EXIT.waitTimeout, '--wait-timeout ran out; the operation goes on in the engine'],
  [EXIT.interrupted, 'interrupted while waiting; the operation goes on in the engine'],
]

/** A failure the CLI reports as `slipway: <message> (<CODE>)` on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'CliError'
  }
}

export const usageError = (message: string, code = 'USAGE') => new CliError(EXIT.usage, code, message)
