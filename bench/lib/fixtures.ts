import { promises as fs } from 'node:fs'
import path from 'node:path'

/** Small deterministic PRNG (mulberry32): the same seed gives the same fleet and request set. */
export function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface FleetMachine {
  groupId: string
  /** Canonical colon form, as in the group's selector. */
  mac: string
  uuid: string
  serial: string
  /** `install`: mac selector, profile flatcar-install; `installed`: mac + os=installed, control-plane profile. */
  role: 'install' | 'installed'
}

export interface ContentDirs {
  profilesDir: string
  ignitionDir: string
  ipxeDir: string
  genericDir: string
  assetsDir: string
}

const DISKS = ['/dev/vda', '/dev/sda', '/dev/nvme0n1', '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4']
const CHANNELS = ['stable', 'stable', 'stable', 'beta', 'alpha']
const KUBERNETES = ['v1.30.12', 'v1.31.8', 'v1.32.4', 'v1.33.1']
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

const pick = <T>(random: () => number, list: readonly T[]): T => list[Math.floor(random() * list.length)]!
const hex = (random: () => number, digits: number) =>
  Array.from({ length: digits }, () => Math.floor(random() * 16).toString(16)).join('')

function sshKey(random: () => number, owner: string): string {
  const body = Array.from({ length: 43 }, () => pick(random, [...BASE64])).join('')
  return `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${body} ${owner}@ops.example.com`
}

export function macOf(index: number): string {
  const n = index + 1
  return ['52', '54', '00', (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]
    .map((part) => (typeof part === 'string' ? part : part.toString(16).padStart(2, '0')))
    .join(':')
}

/**
 * Writes a content folder in matchbox's layout: the repo's sample profiles and templates, the default
 * `discovery` group, and `groupCount` machine groups, each with its own MAC. About 30% also select on
 * `os: installed` and boot the control-plane profile; the rest install Flatcar. Metadata varies in
 * size (0-3 SSH keys, optional extra fields) so that rendered outputs differ per machine.
 */
export async function writeContent(repoDir: string, root: string, groupCount: number, seed = 20250101): Promise<{ dirs: ContentDirs; fleet: FleetMachine[] }> {
  const dirs: ContentDirs = {
    profilesDir: path.join(root, 'profiles'),
    ignitionDir: path.join(root, 'ignition'),
    ipxeDir: path.join(root, 'ipxe'),
    genericDir: path.join(root, 'generic'),
    assetsDir: path.join(root, 'assets'),
  }
  for (const dir of [path.join(dirs.profilesDir, 'groups'), path.join(dirs.profilesDir, 'profiles'), dirs.ignitionDir, dirs.ipxeDir, dirs.genericDir, dirs.assetsDir]) {
    await fs.mkdir(dir, { recursive: true })
  }
  const copyAll = async (from: string, to: string, filter: (name: string) => boolean = () => true) => {
    for (const name of await fs.readdir(from)) {
      if (!filter(name)) continue
      const source = path.join(from, name)
      if ((await fs.stat(source)).isFile()) await fs.copyFile(source, path.join(to, name))
    }
  }
  for (const name of ['boot.ipxe', 'profile.ipxe']) await fs.copyFile(path.join(repoDir, 'ipxe', name), path.join(dirs.ipxeDir, name))
  await copyAll(path.join(repoDir, 'profiles', 'profiles'), path.join(dirs.profilesDir, 'profiles'), (name) => name.endsWith('.json'))
  await copyAll(path.join(repoDir, 'ignition'), dirs.ignitionDir)
  await copyAll(path.join(repoDir, 'generic'), dirs.genericDir)
  await fs.copyFile(path.join(repoDir, 'profiles', 'groups', 'discovery.json'), path.join(dirs.profilesDir, 'groups', 'discovery.json'))

  for (const profile of ['flatcar-install', 'etcd-member-kubernetes-control-plane']) {
    try {
      await fs.access(path.join(dirs.profilesDir, 'profiles', `${profile}.json`))
    } catch {
      throw new Error(`the repo has no profiles/profiles/${profile}.json, which the generated groups use`)
    }
  }

  const random = prng(seed)
  const fleet: FleetMachine[] = []
  for (let index = 0; index < groupCount; index++) {
    const mac = macOf(index)
    const number = String(index + 1).padStart(4, '0')
    const role: FleetMachine['role'] = random() < 0.3 ? 'installed' : 'install'
    const keys = Array.from({ length: Math.floor(random() * 4) }, (_, k) => sshKey(random, `admin${k}`))
    const extra: Record<string, unknown> =
      random() < 0.4
        ? {
            rack: `r${String(Math.floor(random() * 40)).padStart(2, '0')}`,
            zone: pick(random, ['a', 'b', 'c']),
            asset_tag: `AT-${hex(random, 8).toUpperCase()}`,
            node_labels: { 'topology.kubernetes.io/zone': pick(random, ['a', 'b', 'c']), 'slipway.dev/pool': pick(random, ['general', 'storage', 'gpu']) },
          }
        : {}
    const machine: FleetMachine = {
      groupId: role === 'install' ? `m${number}-install` : `m${number}-control-plane`,
      mac,
      uuid: `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-a${hex(random, 3)}-${hex(random, 12)}`,
      serial: `SN${hex(random, 10).toUpperCase()}`,
      role,
    }
    const hostname = role === 'install' ? `node-${number}` : `control-plane-${number}`
    const group =
      role === 'install'
        ? {
            id: machine.groupId,
            name: `Machine ${number}: install Flatcar`,
            profile: 'flatcar-install',
            selector: { mac },
            metadata: { hostname, install_disk: pick(random, DISKS), flatcar_channel: pick(random, CHANNELS), ssh_authorized_keys: keys, ...extra },
          }
        : {
            id: machine.groupId,
            name: `Machine ${number}: installed control plane`,
            profile: 'etcd-member-kubernetes-control-plane',
            selector: { mac, os: 'installed' },
            metadata: { hostname, kubernetes_version: pick(random, KUBERNETES), ssh_authorized_keys: keys, ...extra },
          }
    await fs.writeFile(path.join(dirs.profilesDir, 'groups', `${machine.groupId}.json`), JSON.stringify(group, null, 2) + '\n')
    fleet.push(machine)
  }
  return { dirs, fleet }
}

export type Endpoint = 'ipxe' | 'ignition'
export interface BenchRequest {
  endpoint: Endpoint
  /** Path and query sent to the engine. */
  url: string
}

const hexhyp = (mac: string) => mac.replaceAll(':', '-')

/**
 * Request sets shaped like real traffic: `/ipxe` exactly as boot.ipxe chains to it, `/ignition` as
 * the flatcar-install kernel argument asks for it, and `/ignition?...&os=installed` as the installer
 * fetches the installed config. Each set holds `count` URLs of distinct machines where possible.
 */
export function requestSets(fleet: FleetMachine[], count: number, seed = 7): Record<'ipxe' | 'ignition' | 'mixed', BenchRequest[]> {
  const random = prng(seed)
  const shuffled = <T>(list: T[]) => {
    const copy = [...list]
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
    }
    return copy
  }
  const take = <T>(list: T[], n: number) => {
    if (list.length === 0) throw new Error('the generated fleet has no machine of a needed kind; raise BENCH_GROUPS')
    return Array.from({ length: n }, (_, i) => list[i % list.length]!)
  }
  const install = shuffled(fleet.filter((machine) => machine.role === 'install'))
  const installed = shuffled(fleet.filter((machine) => machine.role === 'installed'))

  const ipxeUrl = (m: FleetMachine): BenchRequest => ({
    endpoint: 'ipxe',
    url: `/ipxe?uuid=${m.uuid}&mac=${hexhyp(m.mac)}&domain=&hostname=&serial=${m.serial}&arch=x86_64`,
  })
  const installIgnition = (m: FleetMachine): BenchRequest => ({ endpoint: 'ignition', url: `/ignition?uuid=${m.uuid}&mac=${hexhyp(m.mac)}` })
  const installedIgnition = (m: FleetMachine): BenchRequest => ({ endpoint: 'ignition', url: `/ignition?mac=${m.mac}&os=installed` })

  const ipxe = take(install, count).map(ipxeUrl)
  const ignitionInstall = take(install, Math.ceil(count / 2)).map(installIgnition)
  const ignitionInstalled = take(installed, Math.floor(count / 2)).map(installedIgnition)
  const ignition = interleave(ignitionInstall, ignitionInstalled)
  // Mixed: what a fleet reinstall looks like, iPXE and both kinds of Ignition interleaved.
  const mixed = interleave(ipxe.slice(0, Math.ceil(count / 2)), ignition.slice(0, Math.floor(count / 2)))
  return { ipxe, ignition, mixed }
}

function interleave<T>(a: T[], b: T[]): T[] {
  const out: T[] = []
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i < a.length) out.push(a[i]!)
    if (i < b.length) out.push(b[i]!)
  }
  return out
}
