/** Parsing perfdhcp's (Kea) final DHCPv4 report. */

export interface ExchangeStats {
  sent: number
  received: number
  drops: number
  dropsPercent: number
  delayMs: { min: number; avg: number; max: number; stddev: number }
}

export interface PerfdhcpReport {
  /** Completed 4-way (DORA) exchanges per second, as perfdhcp prints it. */
  doraPerSecond: number
  expectedRate?: number
  discoverOffer: ExchangeStats
  requestAck: ExchangeStats
  /** DISCOVERs whose DORA did not complete (no OFFER, or no ACK), over DISCOVERs sent. */
  lostPercent: number
  malformed: number
}

function section(text: string, name: string): ExchangeStats {
  const start = text.indexOf(`***Statistics for: ${name}***`)
  if (start < 0) throw new Error(`perfdhcp printed no ${name} statistics:\n${text.slice(-3000)}`)
  const body = text.slice(start, text.indexOf('***Statistics for', start + 10) > 0 ? text.indexOf('***Statistics for', start + 10) : undefined)
  const num = (label: string) => {
    const match = new RegExp(`^${label}:\\s*([\\d.]+)`, 'm').exec(body)
    return match ? Number(match[1]) : NaN
  }
  return {
    sent: num('sent packets'),
    received: num('received packets'),
    drops: num('drops'),
    dropsPercent: num('drops ratio'),
    delayMs: { min: num('min delay'), avg: num('avg delay'), max: num('max delay'), stddev: num('std deviation') },
  }
}

export function parsePerfdhcp(text: string): PerfdhcpReport {
  const rate = /^Rate:\s*([\d.]+) 4-way exchanges\/second(?:, expected rate: ([\d.]+))?/m.exec(text)
  if (!rate) throw new Error(`perfdhcp printed no rate:\n${text.slice(-3000)}`)
  const discoverOffer = section(text, 'DISCOVER-OFFER')
  const requestAck = section(text, 'REQUEST-ACK')
  const malformed = Number(/^Malformed packets:\s*(\d+)/m.exec(text)?.[1] ?? 0)
  const lostPercent = discoverOffer.sent > 0 ? (100 * (discoverOffer.sent - requestAck.received)) / discoverOffer.sent : 100
  return {
    doraPerSecond: Number(rate[1]),
    ...(rate[2] ? { expectedRate: Number(rate[2]) } : {}),
    discoverOffer,
    requestAck,
    lostPercent,
    malformed,
  }
}
