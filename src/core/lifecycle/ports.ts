/**
 * What a rolling update needs from the world, as the core sees it. Adapters implement these ports:
 * adapters/kubernetes (the cluster's API server) and adapters/ssh (the machine itself).
 */

export interface DrainOptions {
  /** Give up (and report which pods were left) after this long. */
  timeoutMs: number
  /** Wait between eviction attempts refused with 429 (a PodDisruptionBudget said no). */
  evictionRetryMs: number
  /** Evict pods that no controller would recreate (kubectl's --force). */
  force: boolean
  /** Evict pods with emptyDir volumes, losing that data (kubectl's --delete-emptydir-data). */
  deleteEmptyDirData: boolean
  /** Passed to each eviction; undefined keeps each pod's own. */
  gracePeriodSeconds?: number
}

export interface DrainReport {
  /** namespace/name of every pod evicted and gone. */
  evicted: string[]
  /** namespace/name of pods left on purpose: DaemonSet-managed and mirror (static) pods. */
  skipped: string[]
}

/** A Kubernetes node as the rollout sees it, through the cluster's API server. */
export interface NodeDrainer {
  cordon(node: string): Promise<void>
  /**
   * Evicts every pod of the node except DaemonSet and mirror pods, retrying 429s, and waits until the
   * evicted pods are gone. Fails with code DRAIN_TIMEOUT (naming the pods left) when `timeoutMs`
   * passes, and with DRAIN_REFUSED before evicting anything when a pod has no controller or uses
   * emptyDir and the options do not allow it. The node stays cordoned either way.
   */
  drain(node: string, options: DrainOptions, progress?: (message: string) => void): Promise<DrainReport>
  uncordon(node: string): Promise<void>
  /** Whether the node's Ready condition is True. */
  isReady(node: string): Promise<boolean>
}

/** How to reach a machine over SSH; the private key never leaves the engine's memory unsealed. */
export interface SshTarget {
  host: string
  port: number
  username: string
  privateKeyPem: string
  /**
   * The host key the machine must present (OpenSSH `known_hosts` form: `ssh-ed25519 AAAA...`);
   * undefined trusts the first key seen and reports it, so that the caller can pin it.
   */
  hostKey?: string
}

export interface CommandResult {
  exitCode: number | null
  /** Set when the command was ended by a signal (e.g. the connection dropped during a reboot). */
  signal?: string
  stdout: string
  stderr: string
}

export interface MachineShell {
  /** Runs one command; rejects only when the connection fails, not when the command exits non-zero. */
  run(target: SshTarget, command: string, options?: { stdin?: string; timeoutMs?: number; expectDisconnect?: boolean }): Promise<CommandResult & { hostKey: string }>
  /** Writes a file atomically (temporary name, then rename) with the given mode. */
  writeFile(target: SshTarget, path: string, content: string, mode: number): Promise<void>
}
