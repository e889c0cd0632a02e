/**
 * What one capability tells the others happened. Capabilities are wired in dependency order
 * (storage, access, provisioning, lifecycle, apps, DNS, reverse proxy); where one must wake a job
 * wired after it (a cluster joined: re-render its members, fan releases out again, rebuild DNS), it
 * emits an event and the later one listens, so that no capability refers to one wired after it.
 * Grep an event's name to find who reacts to it.
 */
export type EngineEvent =
  /** Groups, profiles or templates were written (API or content folders). */
  | 'content changed'
  /** A cluster was registered, joined, relabelled or removed from the registry. */
  | 'cluster changed'
  /** Certificates the engine issued as a cluster's CA were issued or renewed: members' configs changed. */
  | 'certificates issued'
  /** A cluster member reported where its kubeadm bootstrap is (its cluster's endpoint may change). */
  | 'bootstrap reported'
  /** A machine took an install slot or reported its install (an installed member answers in DNS). */
  | 'install state changed'
  /** A control-plane member's /readyz started or stopped answering the engine's probe. */
  | 'endpoint health changed'
  /** An inventory document was imported: every in-memory picture was reloaded. */
  | 'inventory imported'
  /** A machine reported the Ignition it runs (what a rolling update waits for). */
  | 'machine reported'
  /** A rolling update was created, paused, resumed or cancelled. */
  | 'rollout changed'
  /** A machine of a rolling update finished (updated or failed), freeing its slot. */
  | 'rollout machine finished'
  /** A release was created, changed or deleted. */
  | 'release changed'
  /** A release finished applying to (or removing from) one cluster. */
  | 'release cluster finished'
  /** A cluster health sweep finished. */
  | 'clusters swept'
  /** The DNS location table was replaced. */
  | 'dns locations changed'
  /** A reverse proxy route was added, changed or removed. */
  | 'proxy routes changed'

export class EngineEvents {
  private readonly listeners = new Map<EngineEvent, ((event: EngineEvent) => void)[]>()

  on(event: EngineEvent, listener: (event: EngineEvent) => void): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener])
  }

  /** Listeners run at once and only schedule work (a job's debounced trigger): emitting never waits. */
  emit(event: EngineEvent): void {
    for (const listener of this.listeners.get(event) ?? []) listener(event)
  }
}
