/**
 * Who gets a transfer slot. Every read request holds a slot from the moment it is accepted (before its
 * file is even looked up) until its transfer ends, so sockets, descriptors and pending file lookups are
 * all bounded by `maxTransfers`; one client address holds at most `maxTransfersPerClient` of them.
 *
 * When every slot is taken, the oldest transfer whose client never answered (no ACK, no ERROR) is
 * evicted to make room, rather than the newcomer being refused. A real client answers within a round
 * trip; a request with a spoofed source (a flood) never will, and without eviction such requests would
 * lock every client out for as long as the flood lasts (each waits through all its retransmissions).
 * The oldest goes first because it has waited longest for an answer that a live client would have
 * sent by now. A newcomer is refused only when every slot belongs to a client that has answered: real
 * transfers in progress are never sacrificed. The per-client limit works the same way within the
 * client's own transfers.
 */

export interface AdmissionLimits {
  maxTransfers: number
  maxTransfersPerClient: number
}

/** What the admission needs to know about a transfer holding a slot. */
export interface SlotHolder {
  readonly clientAddress: string
  /** The client has answered (an ACK or an ERROR from its transfer ID). */
  readonly answered: boolean
}

export type RefusalReason = 'server-busy' | 'client-busy'

export type Admission<T> = { admitted: true; evict: T | undefined } | { admitted: false; reason: RefusalReason }

export class TransferSlots<T extends SlotHolder> {
  /** Insertion order is age order: the first unanswered holder is the oldest one. */
  private readonly holders = new Set<T>()
  private readonly perClient = new Map<string, number>()

  constructor(private readonly limits: AdmissionLimits) {}

  get size(): number {
    return this.holders.size
  }

  /** Decides on a request from `clientAddress`; changes nothing (the caller evicts, then `add`s). */
  decide(clientAddress: string): Admission<T> {
    if ((this.perClient.get(clientAddress) ?? 0) >= this.limits.maxTransfersPerClient) {
      // The client's own oldest unanswered transfer makes room: a firmware that gave up on a transfer
      // asks again from a new port, and a forged flood from its address must not lock it out.
      const own = this.oldestUnanswered(undefined, (holder) => holder.clientAddress === clientAddress)
      return own === undefined ? { admitted: false, reason: 'client-busy' } : { admitted: true, evict: own }
    }
    if (this.holders.size < this.limits.maxTransfers) return { admitted: true, evict: undefined }
    const victim = this.oldestUnanswered()
    return victim === undefined ? { admitted: false, reason: 'server-busy' } : { admitted: true, evict: victim }
  }

  /** The oldest holder whose client never answered, other than `except` and among those `eligible` accepts. */
  oldestUnanswered(except?: T, eligible?: (holder: T) => boolean): T | undefined {
    for (const holder of this.holders) if (!holder.answered && holder !== except && (eligible === undefined || eligible(holder))) return holder
    return undefined
  }

  add(holder: T): void {
    this.holders.add(holder)
    this.perClient.set(holder.clientAddress, (this.perClient.get(holder.clientAddress) ?? 0) + 1)
  }

  remove(holder: T): void {
    if (!this.holders.delete(holder)) return
    const count = (this.perClient.get(holder.clientAddress) ?? 1) - 1
    if (count <= 0) this.perClient.delete(holder.clientAddress)
    else this.perClient.set(holder.clientAddress, count)
  }

  all(): T[] {
    return [...this.holders]
  }
}
