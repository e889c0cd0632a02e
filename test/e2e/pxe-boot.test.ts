/**
 * A real PXE ROM boots through the engine alone: QEMU (TCG) netboots on a private bridge inside a
 * network namespace, where the only DHCP, TFTP and HTTP server is the engine process
 * (`node --import tsx src/main.ts`, DHCP mode full, TFTP on).
 *
 *  - BIOS: SeaBIOS -> QEMU's iPXE ROM -> engine DHCP -> HTTP /boot.ipxe -> /ipxe?mac=...
 *  - UEFI: OVMF -> QEMU's iPXE EFI ROM -> the same chain.
 *  - UEFI without the iPXE ROM (romfile= empty): OVMF's own PXE -> engine DHCP -> TFTP ipxe.efi ->
 *    iPXE -> engine DHCP again -> HTTP /boot.ipxe -> /ipxe?mac=...
 *
 * The engine gets the lab content (test/fixtures/lab): its profile script prints `slipway-lab-ok` on the
 * serial console, which ends each boot. Evidence comes from the engine's JSON log lines (pino, stdout)
 * and the VM's serial log. Only a router advertisement comes from elsewhere (dnsmasq in RA-only mode,
 * no DHCP): without one, iPXE waits ~13 s for IPv6 on every DHCP round (notes/pxe-lab.md).
 *
 * Needs root, /dev/net/tun, qemu-system-x86, ipxe-qemu, ipxe and ovmf; it fails (never skips) when one
 * is missing. Runs the three boots one after another, each in its own namespace with its own engine.
 */
import { execFile, spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { REPO_ROOT, removeTree } from '../helpers/engine.ts'
import { startLabEngine, startRouterAdvertisements, type LabEngine, type LogLine } from '../../lab/lab-engine.ts'
import { assertLabPrerequisites, createLabNetwork, waitFor, type LabNetwork, type LabProcess } from '../../lab/lab-network.ts'
import { assertQemuPrerequisites, startVm, type Firmware, type Vm } from '../../lab/qemu.ts'
import { sleep } from '../helpers/wait.ts'

const execFileAsync = promisify(execFile)

const LAB_CONTENT = path.join(REPO_ROOT, 'test/fixtures/lab')
const MARKER = 'slipway-lab-ok'

const LAB_TOKEN = `lab-${randomBytes(16).toString('hex')}`

function startEngine(lab: LabNetwork, scratch: string): Promise<LabEngine> {
  for (const folder of ['ignition', 'generic', 'assets']) mkdirSync(path.join(scratch, folder), { recursive: true })
  return startLabEngine({
    lab,
    scratch,
    token: LAB_TOKEN,
    content: {
      profilesDir: path.join(LAB_CONTENT, 'profiles'),
      ipxeDir: path.join(LAB_CONTENT, 'ipxe'),
      ignitionDir: path.join(scratch, 'ignition'),
      genericDir: path.join(scratch, 'generic'),
      assetsDir: path.join(scratch, 'assets'),
    },
  })
}

const hyphenated = (mac: string) => mac.toLowerCase().replaceAll(':', '-')

/** A log line of the engine's DHCP server naming this MAC (either spelling) with the given message. */
function dhcpLines(engine: LabEngine, mac: string, message: RegExp): LogLine[] {
  const macs = [mac.toLowerCase(), hyphenated(mac)]
  return engine.lines().filter(({ raw, entry }) => {
    const isDhcp = entry.component === 'dhcp' || /dhcp/i.test(String(entry.msg ?? ''))
    return isDhcp && macs.some((spelling) => raw.toLowerCase().includes(spelling)) && message.test(String(entry.msg ?? ''))
  })
}

/** The address a DHCP log line handed out, wherever the line keeps it. */
function leasedAddress(line: LogLine, lab: LabNetwork): string | undefined {
  const offered = line.entry.offered as { ip?: unknown } | undefined
  for (const candidate of [offered?.ip, line.entry.ip, line.entry.yiaddr, line.entry.address]) {
    if (typeof candidate === 'string' && candidate.startsWith(`${lab.prefix}.`)) return candidate
  }
  const prefix = lab.prefix.replaceAll('.', '\\.')
  return new RegExp(`"(${prefix}\\.(?:\\d+))"`).exec(line.raw.replace(new RegExp(`"${prefix}\\.1"`, 'g'), ''))?.[1]
}

const fileOf = (line: LogLine) => String((line.entry.offered as { file?: unknown } | undefined)?.file ?? line.entry.file ?? line.raw)

function httpRequests(lines: LogLine[], url: RegExp): LogLine[] {
  return lines.filter(({ entry }) => entry.method === 'GET' && typeof entry.url === 'string' && url.test(entry.url))
}

function tftpSent(engine: LabEngine, file: string, clientAddress: string): LogLine[] {
  return engine.lines().filter(({ raw, entry }) => {
    const isTftp = entry.component === 'tftp' || /tftp/i.test(String(entry.msg ?? ''))
    const sameFile = typeof entry.file === 'string' ? entry.file.replace(/^\/+/, '') === file : raw.includes(file)
    const fromClient = raw.includes(`"${clientAddress}`) || raw.includes(`${clientAddress}:`)
    const outcome = String(entry.outcome ?? entry.msg ?? '')
    return isTftp && sameFile && fromClient && /sent|complete|done|ok/i.test(outcome) && !/abort|fail|refus|denied|error/i.test(outcome)
  })
}

/** Fails fast, with the evidence, when the firmware PXE leg cannot succeed any more. */
function tftpLegFailed(engine: LabEngine, vm: Vm): string | undefined {
  const refused = engine.lines().find(
    ({ entry }) => entry.component === 'tftp' && String(entry.file ?? '').endsWith('ipxe.efi') && /denied|not-found|refused|failed/.test(String(entry.outcome ?? '')),
  )
  if (refused) return `the engine's TFTP server did not send ipxe.efi: ${refused.raw}`
  const serial = vm.serial()
  const pxeError = /PXE-E\d+[^\r\n]*/.exec(serial)?.[0] ?? /failed to load Boot\d+ "UEFI PXEv4[^\r\n]*/.exec(serial)?.[0]
  if (pxeError) return `the firmware's PXE client gave up (${pxeError.trim()}); see the engine's DHCP lines below`
  return undefined
}

interface BootCase {
  name: string
  firmware: Firmware
  /** How long the VM may take from QEMU start to the marker on its serial console. */
  timeoutMs: number
}

const CASES: BootCase[] = [
  { name: 'BIOS: SeaBIOS + iPXE ROM boots through the engine (DHCP, HTTP /boot.ipxe, /ipxe)', firmware: 'bios', timeoutMs: 60_000 },
  { name: 'UEFI: OVMF + iPXE EFI ROM boots through the engine (DHCP, HTTP /boot.ipxe, /ipxe)', firmware: 'uefi', timeoutMs: 60_000 },
  {
    name: 'UEFI without the iPXE ROM: firmware PXE gets ipxe.efi over the engine TFTP, then iPXE boots through the engine',
    firmware: 'uefi-no-rom',
    timeoutMs: 90_000,
  },
]

assertLabPrerequisites(['qemu-system-x86_64'])
for (const bootCase of CASES) assertQemuPrerequisites(bootCase.firmware)
if (!existsSync('/usr/lib/ipxe/ipxe.efi')) throw new Error('/usr/lib/ipxe/ipxe.efi is missing (the engine serves it over TFTP): apt-get install --no-install-recommends ipxe')

let vmNumber = 0
for (const bootCase of CASES) {
  t.test(bootCase.name, { timeout: bootCase.timeoutMs + 60_000 }, async (t) => {
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-pxe-'))
    t.teardown(() => removeTree(scratch))
    const lab = await createLabNetwork(t)
    const mac = `52:54:00:78:${(++vmNumber).toString(16).padStart(2, '0')}:${randomBytes(1).toString('hex')}`
    const uuid = randomUUID()
    let engine: LabEngine | undefined
    let vm: Vm | undefined
    let ra: LabProcess | undefined
    const started = Date.now()
    const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`
    let finished = false

    try {
      engine = await startEngine(lab, scratch)
      const engineReady = Date.now()
      ra = startRouterAdvertisements(lab, scratch)
      if (!ra) t.comment('dnsmasq is not installed: no router advertisement, so iPXE waits ~13 s for IPv6 per DHCP round')
      const tap = await lab.addTap()
      vm = startVm({ lab, tap, mac, uuid, firmware: bootCase.firmware, workDir: scratch, name: bootCase.firmware })
      const running = vm
      const vmGone = () => (running.process.hasExited() ? `QEMU exited (${running.process.stderr().trim() || 'no stderr'})` : undefined)

      if (bootCase.firmware === 'uefi-no-rom') {
        // The TFTP leg first, so that a failure says which leg broke.
        await waitFor(
          'the engine to log a TFTP transfer of ipxe.efi to this VM',
          () => {
            const ack = dhcpLines(engine!, mac, /ack/i)[0]
            const address = ack ? leasedAddress(ack, lab) : undefined
            return address && tftpSent(engine!, 'ipxe.efi', address).length > 0 ? true : undefined
          },
          bootCase.timeoutMs,
          { abort: () => vmGone() ?? tftpLegFailed(engine!, running) },
        )
        t.comment(`uefi-no-rom: ipxe.efi sent over TFTP after ${((Date.now() - engineReady) / 1000).toFixed(1)} s`)
      }
      await waitFor(`"${MARKER}" on the ${bootCase.firmware} VM's serial console`, () => (running.serial().includes(MARKER) ? true : undefined), bootCase.timeoutMs, {
        abort: () => vmGone() ?? (engine!.process.hasExited() ? 'the engine exited' : undefined),
      })
      const bootSeconds = (Date.now() - engineReady) / 1000
      t.comment(`${bootCase.firmware}: engine ready to profile script in ${bootSeconds.toFixed(1)} s (QEMU started right after)`)
      // Let the last log lines arrive before reading them.
      await sleep(300)

      // DHCP: the engine leased an address to this MAC.
      const acks = dhcpLines(engine, mac, /^ack\b|dhcpack|\back\b/i)
      t.ok(acks.length > 0, `the engine's DHCP server acknowledged a lease for ${mac}`)
      const firstAck = acks[0]
      const address = firstAck ? leasedAddress(firstAck, lab) : undefined
      t.ok(address, `the DHCP log line names the leased address (${address})`)
      t.ok(dhcpLines(engine, mac, /offer/i).length > 0, `and offered it first`)

      if (bootCase.firmware === 'uefi-no-rom') {
        // Firmware PXE: told to TFTP ipxe.efi, which it then loaded from the engine's TFTP server.
        t.match(fileOf(acks[0]!), /(^|\/)ipxe\.efi\b/, 'the firmware PXE client was told to load ipxe.efi')
        t.ok(tftpSent(engine, 'ipxe.efi', address ?? '<no address>').length > 0, `the engine's TFTP server sent ipxe.efi to ${address}`)
        // iPXE itself then asks DHCP again, as iPXE, and gets the HTTP boot script.
        const ipxeAck = acks.find((line) => /\/boot\.ipxe\b/.test(fileOf(line)))
        t.ok(ipxeAck, 'the iPXE loaded over TFTP asked DHCP again and was told to chain http://.../boot.ipxe')
        t.ok(acks.indexOf(ipxeAck!) > 0, 'after the firmware PXE round')
      } else {
        t.match(fileOf(acks[0]!), /^http:\/\/.*\/boot\.ipxe$/, 'the iPXE ROM was told to chain http://<engine>/boot.ipxe')
      }

      // HTTP: /boot.ipxe, then this machine's own script.
      const lines = engine.lines()
      const bootScript = httpRequests(lines, /^\/boot\.ipxe(\?|$)/)
      // The log names the machine by its uuid: its MAC beside it is redacted (the pair names a machine to the install routes).
      const profileScript = httpRequests(lines, new RegExp(`^/ipxe\\?(.*&)?uuid=${uuid}(&|$)`, 'i'))
      t.ok(bootScript.some(({ entry }) => entry.status === 200), 'HTTP served GET /boot.ipxe with 200')
      t.ok(profileScript.some(({ entry }) => entry.status === 200), `HTTP served GET /ipxe?uuid=${uuid}... with 200`)
      t.match(String(profileScript[0]?.entry.url ?? ''), /mac=REDACTED/, 'its MAC not logged beside it')
      t.match(String(profileScript[0]?.entry.url ?? ''), new RegExp(`uuid=${uuid}`, 'i'), "with the machine's SMBIOS UUID")
      t.ok(
        bootScript.length > 0 && profileScript.length > 0 && lines.indexOf(bootScript[0]!) < lines.indexOf(profileScript[0]!),
        '/boot.ipxe came first',
      )
      t.match(running.serial(), new RegExp(`mac=${hyphenated(mac)}`, 'i'), "the profile script ran on the machine (its MAC on the serial console)")
      t.comment(`${bootCase.firmware}: whole case ${elapsed()}`)

      // The same decisions are counted in /metrics.
      const metrics = (await engine.get('/metrics')).body
      t.match(metrics, /slipway_dhcp_decisions_total\{mode="full",type="REQUEST",outcome="ack",boot="(ipxe-script|tftp-binary)"\} [1-9]/, '/metrics counts the DHCP acks')
      if (bootCase.firmware === 'uefi-no-rom') t.match(metrics, /slipway_tftp_transfers_total\{outcome="sent"\} [1-9]/, '/metrics counts the TFTP transfer')
      t.match(metrics, /slipway_boot_renders_total\{kind="ipxe",outcome="ok"\} [1-9]/, '/metrics counts the iPXE render')
      // And the admin API lists the lease.
      const leases = await engine.api<{ mac: string; ip: string; state: string }[]>('GET', '/api/v1/dhcp/leases')
      t.ok(leases.some((lease) => lease.mac === mac && lease.ip === address && lease.state === 'bound'), `GET /api/v1/dhcp/leases shows ${mac} bound to ${address}`)

      await vm.stop()
      const code = await engine.stop()
      t.equal(code, 0, 'the engine shuts down cleanly (DHCP, TFTP and HTTP closed)')
      finished = true
    } finally {
      if (!finished || !t.passing()) {
        t.comment(`--- engine stdout (last 6000 chars)\n${engine?.process.stdout().slice(-6000) ?? ''}`)
        t.comment(`--- engine stderr\n${engine?.process.stderr().slice(-3000) ?? ''}`)
        t.comment(`--- ${bootCase.firmware} serial (last 3000 chars)\n${vm?.serial().replace(/\x1b\[[0-9;=?]*[a-zA-Z]/g, '').slice(-3000) ?? ''}`)
        t.comment(`--- qemu stderr\n${vm?.process.stderr() ?? ''}`)
        t.comment(`--- dnsmasq (RA only)\n${ra ? ra.stdout() + ra.stderr() : 'not started'}`)
      }
      await vm?.stop()
      await lab.cleanup()
    }
  })
}

t.test('a process the lab starts dies with the lab\'s own process, even one killed before its cleanup', async (t) => {
  // What a test runner's timeout does to a lab test: SIGKILL, no teardown. Its engine and dnsmasq
  // used to serve on in the namespace; the namespace is removed here, its processes must be gone.
  const code = `import(${JSON.stringify(path.join(REPO_ROOT, 'lab', 'lab-network.ts'))}).then(async ({ createLabNetwork }) => {
    const lab = await createLabNetwork()
    const sleeper = lab.spawn('sleeper', 'sleep', ['600'])
    console.log(JSON.stringify({ ns: lab.ns, pid: sleeper.pid }))
    setInterval(() => {}, 60000)
  })`
  const owner = spawn(process.execPath, ['--import', 'tsx', '-e', code], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  const started = (await new Promise<string>((resolve) => owner.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString())))).trim()
  const { ns, pid } = JSON.parse(started) as { ns: string; pid: number }
  t.teardown(async () => {
    await execFileAsync('ip', ['netns', 'delete', ns]).catch(() => undefined)
  })
  const running = (target: number) => {
    try {
      process.kill(target, 0)
      return true
    } catch {
      return false
    }
  }
  t.ok(running(pid), `the lab's process runs in ${ns}`)
  const exited = once(owner, 'exit')
  owner.kill('SIGKILL')
  await exited
  for (let waited = 0; waited < 5_000 && running(pid); waited += 50) await sleep(50)
  t.notOk(running(pid), 'it died with its owner')
})
