import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'

const KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
/** A version byte leads every sealed value, so that the scheme can change without guessing. */
const FORMAT_V1 = 1

/**
 * AES-256-GCM for secrets at rest. Each value is sealed with a fresh nonce and bound to its place
 * (`context`, e.g. `cluster_pki:alpha`) as additional data, so a sealed value copied into another
 * row does not open there. The key lives in a file outside the database: a copied database file or
 * backup alone reveals no secret.
 */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static fromKey(key: Buffer): SecretBox {
    if (key.length !== KEY_BYTES) throw new Error(`a secret key must be ${KEY_BYTES} bytes, got ${key.length}`)
    return new SecretBox(key)
  }

  /** Reads the key file, creating it (mode 0600) with a random key on first start. */
  static fromKeyFile(file: string): SecretBox {
    if (!existsSync(file)) {
      mkdirSync(path.dirname(file), { recursive: true })
      // `wx`: two engines starting at once never overwrite each other's key.
      try {
        writeFileSync(file, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
    }
    const mode = statSync(file).mode & 0o077
    if (mode !== 0) chmodSync(file, 0o600)
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')
    if (key.length !== KEY_BYTES) {
      throw new Error(`secrets key file ${file} must hold ${KEY_BYTES} bytes in base64 (e.g. \`head -c 32 /dev/urandom | base64\`), it holds ${key.length}`)
    }
    return new SecretBox(key)
  }

  /**
   * A keyed digest (HMAC-SHA256, base64url) of `text` for one `purpose`: credentials derived from the
   * key instead of stored, so there is nothing to leak from the database and nothing to rotate apart
   * from the key. Different purposes never give the same tag for the same text.
   */
  tag(purpose: string, text: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\0${text}`).digest('base64url')
  }

  seal(plaintext: string, context: string): Buffer {
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce)
    cipher.setAAD(Buffer.from(context, 'utf8'))
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return Buffer.concat([Buffer.of(FORMAT_V1), nonce, cipher.getAuthTag(), body])
  }

  /** Throws when the value was not sealed with this key for this context, or was altered. */
  open(sealed: Uint8Array, context: string): string {
    const bytes = Buffer.from(sealed)
    if (bytes.length < 1 + NONCE_BYTES + TAG_BYTES || bytes[0] !== FORMAT_V1) throw new Error(`sealed value for ${context} is not in a known format`)
    const nonce = bytes.subarray(1, 1 + NONCE_BYTES)
    const tag = bytes.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES)
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce)
    decipher.setAAD(Buffer.from(context, 'utf8'))
    decipher.setAuthTag(tag)
    try {
      return Buffer.concat([decipher.update(bytes.subarray(1 + NONCE_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
    } catch {
      throw new Error(`cannot open the sealed value for ${context}: wrong secrets key (secrets.keyFile) or altered data`)
    }
  }
}
