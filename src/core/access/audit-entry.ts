/**
 * One mutating call on the admin surface: who, what, when, and how it ended. Written by the HTTP
 * audit hook, kept by storage; never a request body, never a secret.
 */
export interface AuditEntry {
  at: string
  principal: string | null
  role: string | null
  tenant: string | null
  sourceIp: string
  method: string
  /** The route pattern (`/api/v1/clusters/:name`), not the raw URL. */
  route: string
  target: string | null
  summary: string
  status: number
  errorCode: string | null
  requestId: string
}
