import Type from 'typebox'
import { conflict } from '../errors.ts'
import { checkDocument } from '../selection/documents.ts'

/**
 * Where each member is in becoming part of its cluster, as its kubeadm bootstrap reports it
 * (generic/kubeadm-bootstrap.sh): waiting for the control-plane endpoint, kubeadm running, done, or
 * failed with the last lines of kubeadm's output. One current record per member; the machine retries
 * a failure by itself (systemd), so `attempts` counts the runs.
 */
export const BOOTSTRAP_PHASES = ['waiting_for_endpoint', 'running', 'done', 'failed'] as const
export type BootstrapPhase = (typeof BOOTSTRAP_PHASES)[number]

/** What the bootstrap script sends to POST /lifecycle/bootstrap. */
export const BootstrapReportDocument = Type.Object(
  {
    phase: Type.Enum([...BOOTSTRAP_PHASES]),
    command: Type.Enum(['init', 'join', 'unknown']),
    message: Type.String({ maxLength: 1000 }),
    log: Type.Optional(Type.String({ maxLength: 16_384, description: "The last lines of kubeadm's output." })),
  },
  { additionalProperties: false },
)

export interface BootstrapProgress {
  uuid: string
  cluster: string
  hostname: string
  phase: BootstrapPhase
  command: 'init' | 'join' | 'unknown'
  message: string
  log: string | null
  /** kubeadm runs started (`running` reports). */
  attempts: number
  updatedAt: string
}

export interface BootstrapRepository {
  /** The machine's membership, or undefined when it is in no cluster. */
  findMember(uuid: string): Promise<{ cluster: string; hostname: string } | undefined>
  find(uuid: string): Promise<BootstrapProgress | undefined>
  save(progress: BootstrapProgress): Promise<void>
  list(cluster?: string): Promise<BootstrapProgress[]>
  /** Runs `work` atomically. */
  transaction<T>(work: (repository: BootstrapRepository) => Promise<T>): Promise<T>
}

export class BootstrapProgressService {
  constructor(
    private readonly repository: BootstrapRepository,
    private readonly clock: () => Date = () => new Date(),
    /** Told after each report (the control-plane endpoint's DNS answer may change). */
    private readonly reported: (progress: BootstrapProgress) => void = () => undefined,
  ) {}

  /** A member's report; 409 NOT_A_CLUSTER_MEMBER for a machine in no cluster. */
  async report(uuid: string, input: unknown, now: Date = this.clock()): Promise<BootstrapProgress> {
    const document = checkDocument(BootstrapReportDocument, input, 'bootstrap report', 'INVALID_BOOTSTRAP_REPORT')
    return this.repository.transaction(async (repository) => {
      const member = await repository.findMember(uuid)
      if (!member) throw conflict('NOT_A_CLUSTER_MEMBER', `machine ${uuid} is in no cluster: there is nothing for it to bootstrap`)
      const previous = await repository.find(uuid)
      const progress: BootstrapProgress = {
        uuid,
        ...member,
        phase: document.phase,
        command: document.command,
        message: document.message,
        // A report without output keeps the last one: `failed` output stays readable while it waits to retry.
        log: document.log ?? (document.phase === 'running' ? null : previous?.log ?? null),
        attempts: (previous?.attempts ?? 0) + (document.phase === 'running' ? 1 : 0),
        updatedAt: now.toISOString(),
      }
      await repository.save(progress)
      return progress
    }).then((progress) => {
      this.reported(progress)
      return progress
    })
  }

  list(cluster?: string): Promise<BootstrapProgress[]> {
    return this.repository.list(cluster)
  }
}

/** A control-plane member as the endpoint's DNS answer sees it. */
export interface EndpointCandidate {
  ip: string | null
  installed: boolean
  phase: BootstrapPhase | null
  /** What the engine's last probe of the member's /readyz said; undefined: not probed yet. */
  answering?: boolean
}

/**
 * The addresses `api.<cluster>.<zone>` answers: the installed control-plane members whose kubeadm
 * bootstrap is done (their API servers run) and whose /readyz answered the engine's last probe (one
 * not probed yet counts); when every probe failed, the done ones all the same (an answer that may work
 * beats none); before any member has reported done, every installed one, so that a cluster whose
 * members report nothing (another role template) still has an endpoint.
 */
export function endpointAddresses(members: readonly EndpointCandidate[]): string[] {
  const installed = members.filter((member): member is EndpointCandidate & { ip: string } => member.installed && Boolean(member.ip))
  const serving = installed.filter((member) => member.phase === 'done')
  const up = serving.filter((member) => member.answering !== false)
  return (up.length ? up : serving.length ? serving : installed).map((member) => member.ip).sort()
}

/**
 * What the engine's probes of control-plane members' /readyz said last, by address: the one piece of
 * the endpoint's answer that is not in the store (each replica probes for itself).
 */
export class EndpointHealth {
  private readonly answering = new Map<string, boolean>()

  /** Records a probe; whether it changed what is known (the DNS answer may then change). */
  record(ip: string, ok: boolean): boolean {
    const changed = this.answering.get(ip) !== ok
    this.answering.set(ip, ok)
    return changed
  }

  of(ip: string): boolean | undefined {
    return this.answering.get(ip)
  }

  /** Forgets addresses no longer probed (members that left). */
  retain(ips: ReadonlySet<string>): void {
    for (const ip of this.answering.keys()) if (!ips.has(ip)) this.answering.delete(ip)
  }
}
