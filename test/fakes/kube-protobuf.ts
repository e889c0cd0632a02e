/**
 * Decoding of the Kubernetes protobuf encoding (application/vnd.kubernetes.protobuf) for the few types
 * real clients send that way to the cluster TEST DOUBLE: client-go's typed clients (helm's release
 * storage among them) POST and PUT Secrets and ConfigMaps and send DeleteOptions as protobuf. The
 * envelope is the 4 magic bytes "k8s\0" and a runtime.Unknown {typeMeta, raw}; field numbers are those
 * of k8s.io/api/core/v1 and k8s.io/apimachinery/pkg/apis/meta/v1 generated.proto. Answers stay JSON,
 * which those clients accept (they send `Accept: application/vnd.kubernetes.protobuf,application/json`).
 */

type Fields = Map<number, Array<bigint | Buffer>>

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00])

export class ProtobufError extends Error {}

function readVarint(buffer: Buffer, at: number): [bigint, number] {
  let result = 0n
  let shift = 0n
  for (;;) {
    if (at >= buffer.length) throw new ProtobufError('truncated varint')
    const byte = buffer[at++]!
    result |= BigInt(byte & 0x7f) << shift
    if ((byte & 0x80) === 0) return [result, at]
    shift += 7n
    if (shift > 63n) throw new ProtobufError('varint too long')
  }
}

/** The wire fields of one message: varints as bigint, length-delimited fields as Buffers. */
function fieldsOf(buffer: Buffer): Fields {
  const fields: Fields = new Map()
  let at = 0
  while (at < buffer.length) {
    const [key, next] = readVarint(buffer, at)
    at = next
    const field = Number(key >> 3n)
    const wire = Number(key & 7n)
    let value: bigint | Buffer
    if (wire === 0) [value, at] = readVarint(buffer, at)
    else if (wire === 2) {
      const [length, start] = readVarint(buffer, at)
      at = start + Number(length)
      if (at > buffer.length) throw new ProtobufError('truncated field')
      value = buffer.subarray(start, at)
    } else if (wire === 1) {
      value = buffer.readBigUInt64LE(at)
      at += 8
    } else if (wire === 5) {
      value = BigInt(buffer.readUInt32LE(at))
      at += 4
    } else throw new ProtobufError(`unsupported wire type ${wire}`)
    fields.set(field, [...(fields.get(field) ?? []), value])
  }
  return fields
}

const bytesOf = (fields: Fields, n: number) => fields.get(n)?.filter((v): v is Buffer => Buffer.isBuffer(v)) ?? []
const string = (fields: Fields, n: number) => {
  const value = bytesOf(fields, n).at(-1)
  return value === undefined ? undefined : value.toString('utf8')
}
const strings = (fields: Fields, n: number) => bytesOf(fields, n).map((b) => b.toString('utf8'))
const integer = (fields: Fields, n: number) => {
  const value = fields.get(n)?.at(-1)
  return typeof value === 'bigint' ? Number(BigInt.asIntN(64, value)) : undefined
}
const boolean = (fields: Fields, n: number) => {
  const value = integer(fields, n)
  return value === undefined ? undefined : value !== 0
}
const message = (fields: Fields, n: number) => {
  const value = bytesOf(fields, n).at(-1)
  return value === undefined ? undefined : fieldsOf(value)
}

function map(fields: Fields, n: number, values: 'string' | 'base64'): Record<string, string> | undefined {
  const entries = bytesOf(fields, n)
  if (entries.length === 0) return undefined
  const result: Record<string, string> = {}
  for (const entry of entries) {
    const pair = fieldsOf(entry)
    const value = bytesOf(pair, 2).at(-1) ?? Buffer.alloc(0)
    result[string(pair, 1) ?? ''] = values === 'base64' ? value.toString('base64') : value.toString('utf8')
  }
  return result
}

function time(fields: Fields | undefined): string | undefined {
  if (!fields) return undefined
  return new Date((integer(fields, 1) ?? 0) * 1000).toISOString().replace(/\.\d+Z$/, 'Z')
}

const compact = (object: Record<string, unknown>) => Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0) && v !== ''))

function objectMeta(fields: Fields | undefined): Record<string, unknown> {
  if (!fields) return {}
  return compact({
    name: string(fields, 1),
    generateName: string(fields, 2),
    namespace: string(fields, 3),
    uid: string(fields, 5),
    resourceVersion: string(fields, 6),
    generation: integer(fields, 7) || undefined,
    creationTimestamp: time(message(fields, 8)),
    deletionTimestamp: time(message(fields, 9)),
    labels: map(fields, 11, 'string'),
    annotations: map(fields, 12, 'string'),
    ownerReferences: bytesOf(fields, 13).map((b) => {
      const o = fieldsOf(b)
      return compact({ apiVersion: string(o, 5), kind: string(o, 1), name: string(o, 3), uid: string(o, 4), controller: boolean(o, 6), blockOwnerDeletion: boolean(o, 7) })
    }),
    finalizers: strings(fields, 14),
    managedFields: bytesOf(fields, 17).map((b) => {
      const m = fieldsOf(b)
      const raw = message(m, 7)
      return compact({
        manager: string(m, 1),
        operation: string(m, 2),
        apiVersion: string(m, 3),
        time: time(message(m, 4)),
        fieldsType: string(m, 6),
        fieldsV1: raw ? (JSON.parse(bytesOf(raw, 1).at(-1)?.toString('utf8') ?? '{}') as unknown) : undefined,
        subresource: string(m, 8),
      })
    }),
  })
}

const DECODERS: Record<string, (fields: Fields) => Record<string, unknown>> = {
  Secret: (f) => compact({ metadata: objectMeta(message(f, 1)), data: map(f, 2, 'base64'), type: string(f, 3), stringData: map(f, 4, 'string'), immutable: boolean(f, 5) }),
  ConfigMap: (f) => compact({ metadata: objectMeta(message(f, 1)), data: map(f, 2, 'string'), binaryData: map(f, 3, 'base64'), immutable: boolean(f, 4) }),
  DeleteOptions: (f) => {
    const preconditions = message(f, 2)
    return compact({
      gracePeriodSeconds: integer(f, 1),
      preconditions: preconditions ? compact({ uid: string(preconditions, 1), resourceVersion: string(preconditions, 2) }) : undefined,
      orphanDependents: boolean(f, 3),
      propagationPolicy: string(f, 4),
      dryRun: strings(f, 5),
    })
  },
}

/** Decodes a protobuf request body to the JSON object it stands for; throws ProtobufError for other types. */
export function decodeKubernetesProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw new ProtobufError('missing the "k8s\\0" prefix')
  const unknown = fieldsOf(body.subarray(4))
  const typeMeta = message(unknown, 1)
  const apiVersion = typeMeta ? string(typeMeta, 1) : undefined
  const kind = typeMeta ? string(typeMeta, 2) : undefined
  const decoder = kind ? DECODERS[kind] : undefined
  if (!decoder) throw new ProtobufError(`the double decodes no protobuf ${apiVersion ?? ''} ${kind ?? 'object'}`)
  return { apiVersion, kind, ...decoder(fieldsOf(bytesOf(unknown, 2).at(-1) ?? Buffer.alloc(0))) }
}
