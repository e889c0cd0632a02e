import net from 'node:net'

export interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

interface Pending {
  head: boolean
  resolve: (answer: RawAnswer) => void
  reject: (error: Error) => void
}

/**
 * An HTTP/1.1 client that sends the request target exactly as given (percent-encodings, dot segments,
 * absolute form, backslashes), over one keep-alive socket: what a proxy or a hand-written attack
 * sends, which fetch, undici and curl without --path-as-is would normalise first.
 */
export class RawHttpClient {
  private socket: net.Socket | undefined
  private buffer = Buffer.alloc(0)
  private pending: Pending | undefined
  private closedWhileWaiting = false

  constructor(
    private readonly port: number,
    private readonly host = '127.0.0.1',
  ) {}

  async request(method: string, target: string, headers: Record<string, string> = {}, body?: string): Promise<RawAnswer> {
    if (this.pending) throw new Error('RawHttpClient sends one request at a time')
    const socket = await this.connect()
    const fields = { host: 'localhost', ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) }
    const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(fields).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`
    const answer = new Promise<RawAnswer>((resolve, reject) => {
      this.pending = { head: method === 'HEAD', resolve, reject }
    })
    socket.write(body === undefined ? head : head + body)
    this.parse()
    return answer
  }

  close(): void {
    this.socket?.destroy()
    this.socket = undefined
  }

  private connect(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket)
    this.buffer = Buffer.alloc(0)
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, this.host)
      socket.once('connect', () => {
        socket.off('error', reject)
        socket.on('error', () => {})
        resolve(socket)
      })
      socket.once('error', reject)
      socket.on('data', (chunk) => {
        this.buffer = Buffer.concat([this.buffer, chunk])
        this.parse()
      })
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined
        this.closedWhileWaiting = true
        this.parse()
        this.closedWhileWaiting = false
        if (this.pending) {
          const { reject: fail } = this.pending
          this.pending = undefined
          fail(new Error('connection closed before a whole answer arrived'))
        }
      })
      this.socket = socket
    })
  }

  /** Completes the pending request once its whole answer is in the buffer. */
  private parse(): void {
    const pending = this.pending
    if (!pending) return
    const end = this.buffer.indexOf('\r\n\r\n')
    if (end === -1) return
    const [statusLine, ...fieldLines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? NaN)
    const headers: Record<string, string> = {}
    for (const line of fieldLines) {
      const colon = line.indexOf(':')
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    const rest = this.buffer.subarray(end + 4)
    let body: Buffer | undefined
    let consumed = 0
    if (pending.head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = Buffer.alloc(0)
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length'])
      if (rest.length >= length) {
        body = rest.subarray(0, length)
        consumed = length
      }
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const chunks: Buffer[] = []
      let offset = 0
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', offset)
        if (lineEnd === -1) break
        const size = parseInt(rest.subarray(offset, lineEnd).toString('latin1'), 16)
        if (Number.isNaN(size)) break
        if (size === 0) {
          if (rest.length >= lineEnd + 4) {
            body = Buffer.concat(chunks)
            consumed = lineEnd + 4
          }
          break
        }
        if (rest.length < lineEnd + 2 + size + 2) break
        chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
        offset = lineEnd + 2 + size + 2
      }
    } else if (this.closedWhileWaiting) {
      body = rest
      consumed = rest.length
    }
    if (body === undefined) return
    this.buffer = rest.subarray(consumed)
    this.pending = undefined
    if (/close/i.test(headers.connection ?? '')) this.close()
    pending.resolve({ status, headers, body: body.toString('utf8') })
  }
}
