/**
 * A listener (HTTP, reverse proxy, DNS, TFTP, DHCP) that could not open its socket: start-up stops
 * with one line naming it, its address and why, instead of a stack trace.
 */
export class ListenerError extends Error {
  constructor(
    readonly listener: string,
    readonly address: string,
    readonly reason: string,
    hint: string,
  ) {
    super(`the ${listener} listener cannot listen on ${address}: ${reason}; ${hint}`)
    this.name = 'ListenerError'
  }
}

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'the address is not one of this host',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved now',
  EINVAL: 'invalid address',
}

/** Runs `open`; a failure becomes a ListenerError naming `listener` at host:port. */
export async function openListener<T>(listener: string, host: string, port: number | string, hint: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open()
  } catch (error) {
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`
    throw new ListenerError(listener, address, reasonOf(error), hint)
  }
}

/** `address already in use (EADDRINUSE)`, from the error's code or one named in its message. */
function reasonOf(error: unknown): string {
  const failure = error as { code?: unknown; cause?: { code?: unknown }; message?: unknown }
  const message = typeof failure?.message === 'string' ? failure.message.split('\n')[0]! : String(error)
  const code = [failure?.code, failure?.cause?.code, /\b(E[A-Z_]{3,})\b/.exec(message)?.[1]].find((candidate): candidate is string => typeof candidate === 'string' && /^E[A-Z_]+$/.test(candidate))
  if (code && REASONS[code]) return `${REASONS[code]} (${code})`
  return message
}
