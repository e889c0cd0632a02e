/**
 * Option negotiation of a read request (RFC 2347 OACK): blksize (RFC 2348), tsize and timeout
 * (RFC 2349), windowsize (RFC 7440). Invalid values and unknown options are left out of the OACK, as
 * RFC 2347 allows, rather than failing the request; values above the server's limits are lowered.
 */

export interface OptionLimits {
  /** Largest block acknowledged; 1468 fills an Ethernet frame (1500 MTU) without IP fragmentation. */
  maxBlockSize: number
  /** Largest RFC 7440 window acknowledged. */
  maxWindowSize: number
}

export interface NegotiatedOptions {
  blockSize: number
  windowSize: number
  /** Retransmission timeout the client asked for (RFC 2349), in ms; undefined: the server's own. */
  timeoutMs: number | undefined
  /** The client asked for the transfer size (tsize): the OACK carries it when the size is known. */
  wantsSize: boolean
  /** Options to acknowledge, in the order they are sent, without tsize (its value comes later). */
  acknowledged: [string, string][]
}

export const DEFAULT_BLOCK_SIZE = 512
const MIN_BLOCK_SIZE = 8
const MAX_BLOCK_SIZE = 65464
const DECIMAL = /^\d+$/

const decimal = (value: string | undefined): number | undefined => (value !== undefined && DECIMAL.test(value) ? Number(value) : undefined)

export function negotiateOptions(requested: ReadonlyMap<string, string>, limits: OptionLimits): NegotiatedOptions {
  const acknowledged: [string, string][] = []
  let blockSize = DEFAULT_BLOCK_SIZE
  let windowSize = 1
  let timeoutMs: number | undefined

  const blksize = decimal(requested.get('blksize'))
  if (blksize !== undefined && blksize >= MIN_BLOCK_SIZE) {
    blockSize = Math.min(blksize, limits.maxBlockSize, MAX_BLOCK_SIZE)
    acknowledged.push(['blksize', String(blockSize)])
  }
  // RFC 2349: the server either takes the client's timeout as it is or ignores it.
  const timeout = decimal(requested.get('timeout'))
  if (timeout !== undefined && timeout >= 1 && timeout <= 255) {
    timeoutMs = timeout * 1000
    acknowledged.push(['timeout', String(timeout)])
  }
  const windowsize = decimal(requested.get('windowsize'))
  if (windowsize !== undefined && windowsize >= 1) {
    windowSize = Math.min(windowsize, limits.maxWindowSize, 65535)
    acknowledged.push(['windowsize', String(windowSize)])
  }
  const wantsSize = decimal(requested.get('tsize')) !== undefined
  return { blockSize, windowSize, timeoutMs, wantsSize, acknowledged }
}

/** The OACK's options once the size is known (tsize only when asked for and known), or none at all. */
export function oackOptions(negotiated: NegotiatedOptions, size: number | undefined): [string, string][] {
  const options = [...negotiated.acknowledged]
  if (negotiated.wantsSize && size !== undefined) options.push(['tsize', String(size)])
  return options
}
