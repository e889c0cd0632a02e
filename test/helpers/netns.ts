/**
 * A throwaway L2 lab: one "lan" namespace holding a bridge, and one namespace per host joined to it by
 * a veth pair (`eth0` inside the host). Private addresses only, nothing touches the host's network.
 * `destroy` kills only the processes this lab spawned (by PID) and deletes only its own namespaces.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { randomBytes } from 'node:crypto'

export interface LabHost {
  name: string
  /** CIDR for eth0, e.g. `10.77.3.1/24`; omit for a client that gets its address by DHCP. */
  address?: string
  mac?: string
}

export interface Lab {
  id: string
  /** Namespace name of a host. */
  ns(host: string): string
  /** Runs a command inside a host's namespace and returns its stdout (throws on failure). */
  run(host: string, command: string, args: string[]): string
  /** Starts a process inside a host's namespace; it is killed by `destroy` if still running. */
  spawn(host: string, command: string, args: string[], options?: SpawnOptions): ChildProcess
  setMac(host: string, mac: string): void
  destroy(): void
}

const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString()

/** A random /24 in 10.77.0.0/16, so concurrent test files do not collide inside their own labs. */
export const randomLabSubnet = (): string => `10.77.${1 + Math.floor(Math.random() * 250)}`

export function createLab(hosts: LabHost[]): Lab {
  const id = `slw-${randomBytes(3).toString('hex')}`
  const lanNs = `${id}-lan`
  const namespaces: string[] = []
  const children = new Set<ChildProcess>()
  const ns = (host: string) => `${id}-${host}`

  const destroy = () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
    children.clear()
    for (const name of namespaces.reverse()) {
      try {
        ip(['netns', 'del', name])
      } catch {
        // already deleted
      }
    }
    namespaces.length = 0
  }

  try {
    ip(['netns', 'add', lanNs])
    namespaces.push(lanNs)
    ip(['-n', lanNs, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0'])
    ip(['-n', lanNs, 'link', 'set', 'br0', 'up'])
    hosts.forEach((host, index) => {
      const hostNs = ns(host.name)
      ip(['netns', 'add', hostNs])
      namespaces.push(hostNs)
      ip(['-n', hostNs, 'link', 'set', 'lo', 'up'])
      const port = `p${index}`
      ip(['-n', lanNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostNs])
      ip(['-n', lanNs, 'link', 'set', port, 'master', 'br0'])
      ip(['-n', lanNs, 'link', 'set', port, 'up'])
      if (host.mac) ip(['-n', hostNs, 'link', 'set', 'eth0', 'address', host.mac])
      if (host.address) ip(['-n', hostNs, 'addr', 'add', host.address, 'dev', 'eth0'])
      ip(['-n', hostNs, 'link', 'set', 'eth0', 'up'])
    })
  } catch (error) {
    destroy()
    throw error
  }

  return {
    id,
    ns,
    run: (host, command, args) => execFileSync('ip', ['netns', 'exec', ns(host), command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString(),
    spawn: (host, command, args, options = {}) => {
      const child = spawn('ip', ['netns', 'exec', ns(host), command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options })
      children.add(child)
      child.once('exit', () => children.delete(child))
      return child
    },
    setMac: (host, mac) => {
      ip(['-n', ns(host), 'link', 'set', 'eth0', 'down'])
      ip(['-n', ns(host), 'link', 'set', 'eth0', 'address', mac])
      ip(['-n', ns(host), 'link', 'set', 'eth0', 'up'])
    },
    destroy,
  }
}
