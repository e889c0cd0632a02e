/**
 * The PXE lab: real QEMU machines with empty disks PXE-boot from the engine on a private bridge in a
 * network namespace, are discovered, scheduled into a cluster, install their role and come back as
 * installed machines. `npm run lab` drives it from the command line (lab/run.ts); the end-to-end
 * test drives it step by step. Everything it creates (namespace, taps, processes, disks, scratch
 * folder) is removed by `cleanup`, and processes are stopped by PID.
 */
import { execFile, spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { REPO_ROOT, startLabEngine, startRouterAdvertisements, type LabEngine } from './lab-engine.ts'
import { assertLabPrerequisites, createLabNetwork, waitFor, type LabNetwork, type LabProcess } from './lab-network.ts'
import { summarizeSamples, type Sample, type SamplerSummary } from './etcd-sampler.ts'
import { assertQemuPrerequisites, startVm, type Firmware, type Vm } from './qemu.ts'

const exec = promisify(execFile)

export const LAB_OS_DIR = path.join(REPO_ROOT, 'var', 'lab-os')
export const INSTALLED_MARKER = 'slipway-lab: installed boot:'
/** After the installed boot: the engine's answer to the config report (`up_to_date`, `outdated`, ...). */
export const REPORTED_MARKER = 'slipway-lab: reported ignition:'
/** Then the machine stays up serving SSH; the line ends with its host key (`ssh-ed25519 AAAA...`). */
export const SSHD_MARKER = 'slipway-lab: sshd up:'

export interface PxeLabOptions {
  firmware?: Firmware
  /** `auto` probes KVM and falls back to TCG (the /dev/kvm of some hosts cannot run firmware). */
  accel?: 'auto' | 'tcg' | 'kvm'
  controlPlane?: 1 | 3 | 5
  nodesMax?: number
  memoryMb?: number
  /** Where the lab OS is built (kernel + initramfs); reused between runs. */
  osDir?: string
  /** Progress lines (one per machine event) go here. */
  log?: (line: string) => void
}

export interface LabMachine {
  name: string
  mac: string
  uuid: string
  disk: string
  vm: Vm
  poweredOnAt: number
}

/** A machine as GET /api/v1/machines shows it (the fields the lab reads). */
export interface ApiMachine {
  uuid: string
  boot_mac: string
  state: string
  interfaces: { mac: string; ipv4: string | null; is_boot: boolean }[]
}

export const CLUSTER = 'lab'

/** etcdctl and the quorum sampler inside the lab's namespace, with a client certificate the engine issued. */
export interface LabEtcd {
  /** The control-plane members' client URLs, from the engine's membership. */
  endpoints: string[]
  /** Runs etcdctl against `endpoints` (all members unless given); rejects when it exits non-zero. */
  ctl(args: string[], endpoints?: string[]): Promise<string>
  /** Waits until etcdctl's endpoint health answers for exactly `count` members, all healthy; returns the entries. */
  healthy(count: number, timeoutMs: number, abort?: () => string | undefined): Promise<{ endpoint: string; health: boolean }[]>
  /** Starts the quorum sampler (lab/etcd-sampler.ts); `stop` ends it and returns its samples and summary. */
  startSampler(intervalMs?: number): { samples(): Sample[]; stop(): Promise<{ samples: Sample[]; summary: SamplerSummary }> }
}

export class PxeLab {
  readonly machines: LabMachine[] = []
  private readonly started = Date.now()
  private progressTimer: NodeJS.Timeout | undefined
  private readonly seenStates = new Map<string, string>()
  private readonly seenSerial = new Map<string, number>()
  private readonly runByte = randomBytes(1).toString('hex')

  private constructor(
    readonly network: LabNetwork,
    readonly engine: LabEngine,
    readonly scratch: string,
    readonly accel: 'tcg' | 'kvm',
    private readonly ra: LabProcess | undefined,
    private readonly options: Required<Omit<PxeLabOptions, 'accel'>>,
    private readonly lock: LabLock,
  ) {}

  /** Builds the lab OS, creates the network, starts the engine and creates the lab's flavor and cluster. */
  static async start(options: PxeLabOptions = {}): Promise<PxeLab> {
    const settings = {
      firmware: options.firmware ?? 'bios',
      controlPlane: options.controlPlane ?? 3,
      nodesMax: options.nodesMax ?? 1,
      // etcd (a control-plane member's) grows to tens of MB beside the initramfs the OS runs from.
      memoryMb: options.memoryMb ?? 512,
      osDir: options.osDir ?? LAB_OS_DIR,
      log: options.log ?? (() => {}),
    }
    assertLabPrerequisites(['qemu-system-x86_64', 'curl', 'flock', 'setpriv'])
    assertQemuPrerequisites(settings.firmware)
    const lock = await takeLabLock(settings.log)
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-lab-'))
    let network: LabNetwork | undefined
    try {
      settings.log(`building the lab OS in ${settings.osDir}`)
      const [built, accel] = await Promise.all([buildLabOs(settings.osDir), chooseAccel(options.accel ?? 'auto', settings.osDir)])
      settings.log(built)
      settings.log(`accelerator: ${accel}`)
      network = await createLabNetwork()
      const engine = await startLabEngine({
        lab: network,
        scratch,
        token: `lab-${randomBytes(16).toString('hex')}`,
        content: {
          profilesDir: path.join(REPO_ROOT, 'lab', 'content', 'profiles'),
          ipxeDir: path.join(REPO_ROOT, 'ipxe'),
          ignitionDir: path.join(REPO_ROOT, 'ignition'),
          genericDir: path.join(REPO_ROOT, 'generic'),
          assetsDir: settings.osDir,
        },
        // Passes come from discoveries (debounced) and the API; the timer is a safety net.
        env: { SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '5' },
      })
      settings.log(`engine serving ${engine.url} in namespace ${network.ns} (DHCP full, TFTP, HTTP)`)
      const ra = startRouterAdvertisements(network, scratch)
      await engine.api('POST', '/api/v1/flavors', {
        name: 'lab',
        control_plane_count: settings.controlPlane,
        nodes_min: 0,
        nodes_max: settings.nodesMax,
        min_cpu_cores: 1,
        min_memory_bytes: 128 * 1024 * 1024,
        min_disk_bytes: 32 * 1024 * 1024,
      })
      await engine.api('POST', '/api/v1/clusters', { name: CLUSTER, flavor: 'lab', labels: { env: 'lab' }, latitude: 48.86, longitude: 2.35 })
      settings.log(`cluster "${CLUSTER}": ${settings.controlPlane} control-plane member(s), up to ${settings.nodesMax} node(s)`)
      return new PxeLab(network, engine, scratch, accel, ra, settings, lock)
    } catch (error) {
      await network?.cleanup()
      rmSync(scratch, { recursive: true, force: true })
      await lock.release()
      throw error
    }
  }

  /** Seconds since the lab started, for progress lines. */
  elapsed(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(1).padStart(6)} s`
  }

  /** Creates an empty 256 MiB disk (its state file system holds etcd's data) and powers a new machine on; it PXE-boots from the engine. */
  async powerOn(): Promise<LabMachine> {
    const index = this.machines.length + 1
    const name = `vm${index}`
    const mac = `52:54:00:5a:${this.runByte}:${index.toString(16).padStart(2, '0')}`
    const uuid = randomUUID()
    const disk = path.join(this.scratch, `${name}.raw`)
    writeFileSync(disk, '')
    truncateSync(disk, 256 * 1024 * 1024)
    const tap = await this.network.addTap()
    const vm = startVm({
      lab: this.network,
      tap,
      mac,
      uuid,
      firmware: this.options.firmware,
      workDir: this.scratch,
      name,
      memoryMb: this.options.memoryMb,
      disk,
      allowReboot: true,
      accel: this.accel,
    })
    const machine: LabMachine = { name, mac, uuid, disk, vm, poweredOnAt: Date.now() }
    this.machines.push(machine)
    this.options.log(`[${this.elapsed()}] ${name} powered on: mac ${mac}, uuid ${uuid}, empty disk`)
    return machine
  }

  /**
   * etcdctl and the sampler for the lab cluster's etcd: the engine issues an operator's client
   * certificate under the cluster's etcd CA (the only way in: the members require client certificates).
   */
  async etcd(): Promise<LabEtcd> {
    const issued = await this.engine.api<{ ca_certificate: string; certificate: string; private_key: string }>('POST', `/api/v1/clusters/${CLUSTER}/etcd/client-certificate`, { common_name: 'lab-operator' })
    const dir = path.join(this.scratch, 'etcd-client')
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const files = { cacert: path.join(dir, 'ca.crt'), cert: path.join(dir, 'client.crt'), key: path.join(dir, 'client.key') }
    writeFileSync(files.cacert, issued.ca_certificate, { mode: 0o600 })
    writeFileSync(files.cert, issued.certificate, { mode: 0o600 })
    writeFileSync(files.key, issued.private_key, { mode: 0o600 })
    const detail = await this.engine.api<{ members: { role: string; ip: string | null }[] }>('GET', `/api/v1/clusters/${CLUSTER}`)
    const endpoints = detail.members.filter((member) => member.role === 'control-plane' && member.ip).map((member) => `https://${member.ip}:2379`)
    const tls = ['--cacert', files.cacert, '--cert', files.cert, '--key', files.key]
    const ctl = async (args: string[], at = endpoints) => (await this.network.exec('etcdctl', ['--endpoints', at.join(','), ...tls, '--dial-timeout', '3s', '--command-timeout', '5s', ...args])).stdout
    return {
      endpoints,
      ctl,
      healthy: (count, timeoutMs, abort) =>
        waitFor(
          `${count} healthy etcd members`,
          async () => {
            const entries = JSON.parse(await ctl(['endpoint', 'health', '-w', 'json']).catch(() => '[]')) as { endpoint: string; health: boolean }[]
            return entries.length === count && entries.every((entry) => entry.health) ? entries : undefined
          },
          timeoutMs,
          { intervalMs: 1000, ...(abort ? { abort } : {}) },
        ),
      startSampler: (intervalMs = 200) => {
        const sampler = this.network.spawn('etcd sampler', process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'lab', 'etcd-sampler.ts'), '--endpoints', endpoints.join(','), ...tls, '--interval-ms', String(intervalMs)], { cwd: REPO_ROOT })
        const samples = () =>
          sampler
            .stdout()
            .split('\n')
            .filter((line) => line.startsWith('{"at"'))
            .map((line) => JSON.parse(line) as Sample)
        return {
          samples,
          stop: async () => {
            await sampler.stop(5_000)
            return { samples: samples(), summary: summarizeSamples(samples(), intervalMs) }
          },
        }
      },
    }
  }

  async apiMachines(): Promise<ApiMachine[]> {
    return this.engine.api<ApiMachine[]>('GET', '/api/v1/machines')
  }

  /** Prints every machine state change and every agent/lab line of every console, once a second. */
  startProgress(): void {
    const tick = async () => {
      for (const machine of this.machines) {
        const lines = machine.vm.serial().split(/\r?\n/).filter((line) => /slipway-(lab|agent):/.test(line))
        const seen = this.seenSerial.get(machine.name) ?? 0
        for (const line of lines.slice(seen)) this.options.log(`[${this.elapsed()}] ${machine.name} | ${line.replace(/^.*?(slipway-)/, '$1').trim()}`)
        this.seenSerial.set(machine.name, Math.max(seen, lines.length))
      }
      try {
        for (const machine of await this.apiMachines()) {
          if (this.seenStates.get(machine.uuid) === machine.state) continue
          this.seenStates.set(machine.uuid, machine.state)
          const name = this.machines.find((candidate) => candidate.uuid === machine.uuid)?.name ?? machine.uuid
          this.options.log(`[${this.elapsed()}] ${name} is ${machine.state} (engine)`)
        }
      } catch {
        // the engine is shutting down
      }
    }
    this.progressTimer = setInterval(() => void tick(), 1000)
  }

  /**
   * Waits until every machine printed its installed boot (it then reports its config and stays up
   * serving SSH: see waitUntilServing; QEMU keeps running until cleanup stops it).
   */
  async waitUntilInstalled(machines: LabMachine[], timeoutMs: number): Promise<Map<string, number>> {
    const done = new Map<string, number>()
    await waitFor(
      `${machines.length} machine(s) to boot installed`,
      () => {
        for (const machine of machines) {
          if (!done.has(machine.name) && machine.vm.serial().includes(INSTALLED_MARKER)) done.set(machine.name, Date.now())
        }
        return done.size === machines.length ? true : undefined
      },
      timeoutMs,
      { intervalMs: 250, abort: () => this.failure(machines) },
    )
    return done
  }

  /** Waits until every machine, booted installed, reported its config and serves SSH. */
  async waitUntilServing(machines: LabMachine[], timeoutMs: number): Promise<void> {
    await waitFor(
      `${machines.length} installed machine(s) to serve SSH`,
      () => (machines.every((machine) => machine.vm.serial().includes(SSHD_MARKER)) ? true : undefined),
      timeoutMs,
      {
        intervalMs: 250,
        abort: () => {
          const stopped = machines.find((machine) => machine.vm.process.hasExited() && !machine.vm.serial().includes(SSHD_MARKER))
          return this.failure(machines) ?? (stopped ? `${stopped.name}'s QEMU exited before its SSH server was up; console tail:\n${stopped.vm.serial().slice(-1500)}` : undefined)
        },
      },
    )
  }

  /** Why the lab cannot finish any more, if it cannot. */
  failure(machines: LabMachine[] = this.machines): string | undefined {
    if (this.engine.process.hasExited()) return `the engine exited: ${this.engine.process.stderr().slice(-1500)}`
    for (const machine of machines) {
      const serial = machine.vm.serial()
      if (machine.vm.process.hasExited() && !serial.includes(INSTALLED_MARKER)) {
        return `${machine.name}'s QEMU exited before its installed boot (${machine.vm.process.stderr().trim() || 'no stderr'}); console tail:\n${serial.slice(-1500)}`
      }
      const broken = /slipway-lab: (no DHCP lease|the discovery agent stopped|installed boot: the Ignition on .* is damaged|sshd failed|etcd failed)[^\n]*|Kernel panic[^\n]*/.exec(serial)
      if (broken) return `${machine.name}: ${broken[0]}`
    }
    return undefined
  }

  async cleanup(): Promise<void> {
    clearInterval(this.progressTimer)
    await Promise.all(this.machines.map((machine) => machine.vm.stop().catch(() => undefined)))
    await this.ra?.stop().catch(() => undefined)
    await this.engine.stop().catch(() => undefined)
    await this.network.cleanup()
    rmSync(this.scratch, { recursive: true, force: true })
    await this.lock.release()
  }
}

interface LabLock {
  release(): Promise<void>
}

/**
 * One lab at a time on a machine: two labs' emulated machines starve each other of CPU (on 2 cores a
 * restarting VM then misses its rolling update's timeout), so a lab waits for the one running. The
 * lock is flock(1) on var/lab.lock, held by a child that ends with this process (pdeathsig) or when
 * its stdin closes; the kernel drops the lock with it.
 */
async function takeLabLock(log: (line: string) => void): Promise<LabLock> {
  const file = path.join(REPO_ROOT, 'var', 'lab.lock')
  mkdirSync(path.dirname(file), { recursive: true })
  const holder = spawn('setpriv', ['--pdeathsig', 'KILL', 'flock', file, 'sh', '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise<void>((resolve) => holder.once('exit', () => resolve()))
  const waitingSince = Date.now()
  const told = setTimeout(() => log('waiting for another lab on this machine to finish (var/lab.lock)'), 1000)
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve())
    holder.once('exit', (code) => reject(new Error(`flock on ${file} ended (${code}) before it held the lock`)))
  }).finally(() => clearTimeout(told))
  if (Date.now() - waitingSince > 1000) log(`took the lab lock after ${((Date.now() - waitingSince) / 1000).toFixed(1)} s`)
  return {
    release: async () => {
      holder.stdin!.end()
      await exited
    },
  }
}

/** Runs lab/build-os.sh (fast once its package cache is filled) and returns its summary line. */
export async function buildLabOs(osDir: string): Promise<string> {
  try {
    const { stdout } = await exec(path.join(REPO_ROOT, 'lab', 'build-os.sh'), [osDir], { maxBuffer: 16 * 1024 * 1024 })
    return stdout.trim().split('\n').at(-1) ?? ''
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? ''
    throw new Error(`lab/build-os.sh failed: ${stderr.trim() || (error as Error).message}`)
  }
}

/**
 * KVM only when a probe boot succeeds: some hosts expose a /dev/kvm that cannot run firmware (the
 * boot hangs or stops with "emulation failure"). The probe boots the lab OS with `slipway.probe=1`
 * (it powers off at once) and gives it 10 s; a working KVM needs about one.
 */
export async function chooseAccel(wanted: 'auto' | 'tcg' | 'kvm', osDir: string): Promise<'tcg' | 'kvm'> {
  if (wanted !== 'auto') return wanted
  if (!(await probeKvm(osDir))) return 'tcg'
  return 'kvm'
}

async function probeKvm(osDir: string): Promise<boolean> {
  try {
    await exec('test', ['-w', '/dev/kvm'])
  } catch {
    return false
  }
  // The OS may still be building: wait for it (buildLabOs runs alongside).
  const kernel = path.join(osDir, 'vmlinuz')
  const initrd = path.join(osDir, 'initramfs.cpio.gz')
  try {
    await waitFor('the lab OS', () => (existsAll([kernel, initrd]) ? true : undefined), 120_000)
    const { stdout } = await exec(
      'timeout',
      ['10', 'qemu-system-x86_64', '-machine', 'q35', '-accel', 'kvm', '-m', '256', '-nographic', '-vga', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', '-nic', 'none', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 loglevel=3 slipway.probe=1'],
      { maxBuffer: 4 * 1024 * 1024 },
    )
    return stdout.includes('slipway-lab: probe ok')
  } catch {
    return false
  }
}

function existsAll(files: string[]): boolean {
  return files.every((file) => existsSync(file) && statSync(file).size > 0)
}
