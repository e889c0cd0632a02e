/**
 * Discovery reports for load and fault tests: machine `n` always reports the same identity (uuid,
 * boot MAC) with one interface and one disk, so that a stored machine can be checked for
 * completeness (its row, interface, disk and first event all present).
 */
export const stormUuidOf = (n: number) => `b4c0f000-0000-4000-8000-${String(n).padStart(12, '0')}`
export const stormMacOf = (n: number) => `52:54:0b:${((n >> 16) & 0xff).toString(16).padStart(2, '0')}:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`

export function discoveryReport(n: number, overrides: { bootRandomId?: string } = {}) {
  return {
    'boot-info': { uuid: stormUuidOf(n), mac: stormMacOf(n), 'random-id': overrides.bootRandomId ?? `boot-${n}` },
    interfaces: [{ name: 'eth0', mac: stormMacOf(n), ipv4: `10.77.${(n >> 8) & 0xff}.${n & 0xff}`, cidrv4: `10.77.${(n >> 8) & 0xff}.${n & 0xff}/16`, gateway: '10.77.0.1', fqdn: [`m${n}.lab`] }],
    disks: [{ path: '/dev/vda', 'size-bytes': 21474836480 }],
  }
}

/**
 * Sends `count` reports over real HTTP, `concurrency` at a time. `acknowledged` lists, in order, the
 * numbers the engine answered 200 to; `onAcknowledged` sees each as it arrives.
 */
export async function discoveryStorm(
  baseUrl: string,
  numbers: readonly number[],
  options: { concurrency: number; onAcknowledged?: (n: number, index: number) => void | Promise<void>; stopOnError?: boolean },
): Promise<{ acknowledged: number[]; failed: { n: number; error: string }[] }> {
  const acknowledged: number[] = []
  const failed: { n: number; error: string }[] = []
  let next = 0
  const worker = async () => {
    while (next < numbers.length) {
      const n = numbers[next++]!
      try {
        const response = await fetch(`${baseUrl}/discovery`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(discoveryReport(n)) })
        const text = await response.text()
        if (response.status !== 200) throw new Error(`${response.status} ${text}`)
        acknowledged.push(n)
        await options.onAcknowledged?.(n, acknowledged.length)
      } catch (error) {
        failed.push({ n, error: (error as Error).message })
        if (options.stopOnError) return
      }
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  return { acknowledged, failed }
}
