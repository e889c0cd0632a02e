// Minimal typings for node-tftp 0.1.2 (no @types exist), covering only what Slipway uses.
// Fields starting with `_` are private to node-tftp; Slipway relies on them knowingly (the package is
// pinned and unmaintained) to bind its own socket and to guard the per-transfer sockets. See
// src/transports/tftp/tftp-server.ts for why.
declare module 'tftp' {
  import type { EventEmitter } from 'node:events'
  import type { Socket, RemoteInfo } from 'node:dgram'
  import type { Readable, Writable } from 'node:stream'

  export interface TftpServerCreateOptions {
    host?: string
    port?: number
    root?: string
    denyGET?: boolean
    denyPUT?: boolean
    /** Largest blksize the server acknowledges (default 1468, range 8-65464). */
    blockSize?: number
    /** Largest windowsize the server acknowledges (default 4). */
    windowSize?: number
    /** Retransmission timeout in ms (default 3000). */
    timeout?: number
    retries?: number
  }

  export interface TransferStats {
    blockSize: number
    windowSize: number
    size: number | null
    userExtensions: Record<string, string>
    retries: number
    timeout: number
    localAddress: string
    localPort: number
    remoteAddress: string
    remotePort: number
  }

  /** The request side of a transfer: carries the events (`close`, `abort`, `error`). */
  export interface TftpRequest extends Readable {
    method: 'GET' | 'PUT'
    file: string
    stats: TransferStats
    /** Sends a TFTP ERROR to the client; a known message (e.g. `ENOENT`) selects its code. */
    abort(error?: string | Error): void
    close(): void
  }

  /** The response side of a GET: the file is piped into it after `setSize`. */
  export interface TftpResponse extends Writable {
    setSize(size: number): void
    /** Private: the protocol writer, owner of the per-transfer UDP socket. */
    _writer: { _socket: Socket }
  }

  export interface TftpServerHandle extends EventEmitter {
    close(): void
    listen(): void
    /** Private: the listening socket (created in the constructor, bound by `listen()`). */
    _socket: Socket
  }

  export type MessageListener = (message: Buffer, remote: RemoteInfo) => void

  interface TftpModule {
    createServer(
      options: TftpServerCreateOptions,
      requestListener?: (req: TftpRequest, res: TftpResponse) => void,
    ): TftpServerHandle
    /** Standard error messages; passing one to `abort` sends its RFC 1350 code. */
    ENOENT: string
    EACCESS: string
    EIO: string
  }

  const tftp: TftpModule
  export default tftp
}
