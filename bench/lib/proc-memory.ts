import { readFileSync } from 'node:fs'

export interface ProcessMemory {
  /** Resident set size now (VmRSS), bytes. */
  rssBytes: number
  /** Peak resident set size since the process started (VmHWM), bytes. */
  hwmBytes: number
}

/** VmRSS and VmHWM from /proc/<pid>/status (Linux); undefined elsewhere or once the process is gone. */
export function processMemory(pid: number): ProcessMemory | undefined {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }
  const kib = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)
    return match ? Number(match[1]) * 1024 : undefined
  }
  const rssBytes = kib('VmRSS')
  const hwmBytes = kib('VmHWM')
  return rssBytes === undefined || hwmBytes === undefined ? undefined : { rssBytes, hwmBytes }
}
