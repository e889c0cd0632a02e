import { encodeDataHeader } from './tftp-packets.ts'

/**
 * The sending side of one read transfer, as a state machine without sockets or timers: which DATA
 * packets make up the current window (RFC 7440; a window of 1 is RFC 1350's lock-step) and what an ACK
 * does to it. The server sends what it is given and calls `onAck` / resends on its own timer.
 *
 * - Block numbers are kept as plain numbers and written modulo 65536, so a file of more than 65535
 *   blocks rolls over (to 0, as tftp-hpa, curl, atftp and iPXE expect).
 * - An ACK is mapped to the one block it can mean inside [last acknowledged, last sent]; anything else
 *   is an old or forged ACK and is ignored.
 * - A duplicate ACK (of the block already acknowledged) is ignored rather than answered: answering it
 *   is the sorcerer's apprentice bug (every block then goes out twice, forever). Lost packets are resent
 *   by the server's retransmission timer only.
 * - An ACK inside the window (the client lost a block and says where it stopped) restarts the window
 *   right after that block, as RFC 7440 asks.
 */

/** What a transfer needs from the file: byte ranges, loaded ahead of each window. */
export interface BlockContent {
  /** Makes bytes [start, end) readable (or all that is left); undefined when they already are. */
  load(start: number, end: number): Promise<void> | undefined
  /** Bytes [start, end), cut at the content's end; only after `load` covered them. */
  slice(start: number, end: number): Buffer
  /** Bytes before `offset` are acknowledged and will not be sent again. */
  release(offset: number): void
}

export type AckEffect = 'ignored' | 'next-window' | 'complete'

export class ReadTransfer {
  private negotiating: boolean
  private firstUnacknowledged = 1
  private lastSent = 0
  private finalBlock: number | undefined
  private finalPayloadBytes = 0
  private completed = false

  constructor(
    private readonly content: BlockContent,
    readonly blockSize: number,
    readonly windowSize: number,
    /** An OACK was sent: its ACK (block 0) starts the data. */
    withOack: boolean,
  ) {
    this.negotiating = withOack
  }

  /** Still waiting for the ACK of the OACK. */
  get awaitingOackAck(): boolean {
    return this.negotiating
  }

  get isComplete(): boolean {
    return this.completed
  }

  /** Bytes the client has acknowledged. */
  get bytesAcknowledged(): number {
    if (this.completed) return (this.finalBlock! - 1) * this.blockSize + this.finalPayloadBytes
    return (this.firstUnacknowledged - 1) * this.blockSize
  }

  /** Byte range of the current window: have it loaded before calling `windowPackets`. */
  windowBytes(): [start: number, end: number] {
    const start = (this.firstUnacknowledged - 1) * this.blockSize
    return [start, start + this.windowSize * this.blockSize]
  }

  /** DATA packets of the current window, each as [header, payload] (the payload is not copied). */
  windowPackets(): Buffer[][] {
    const packets: Buffer[][] = []
    const end = this.firstUnacknowledged + this.windowSize
    for (let block = this.firstUnacknowledged; block < end; block++) {
      const offset = (block - 1) * this.blockSize
      const payload = this.content.slice(offset, offset + this.blockSize)
      packets.push([encodeDataHeader(block), payload])
      if (payload.length < this.blockSize) {
        this.finalBlock = block
        this.finalPayloadBytes = payload.length
        break
      }
    }
    this.lastSent = this.firstUnacknowledged + packets.length - 1
    return packets
  }

  onAck(block16: number): AckEffect {
    if (this.completed) return 'ignored'
    if (this.negotiating) {
      if (block16 !== 0) return 'ignored'
      this.negotiating = false
      return 'next-window'
    }
    const lastAcknowledged = this.firstUnacknowledged - 1
    const block = lastAcknowledged + ((block16 - lastAcknowledged) & 0xffff)
    if (block === lastAcknowledged || block > this.lastSent) return 'ignored'
    this.firstUnacknowledged = block + 1
    this.content.release(block * this.blockSize)
    if (this.finalBlock !== undefined && block >= this.finalBlock) {
      this.completed = true
      return 'complete'
    }
    return 'next-window'
  }
}
