import type { DrainOptions, DrainReport, NodeDrainer } from '../../src/core/lifecycle/ports.ts'
import { failing } from './intentional-error.ts'
import { ScriptedFake, type CallJournal } from './scripted-fake.ts'

export interface FakeNode {
  /** The node's Ready condition (default true). */
  ready?: boolean
  /** namespace/name of the pods a drain evicts. */
  pods?: string[]
}

/** What the API server answers for a node it does not have. */
export const nodeNotFound = (node: string) => Object.assign(new Error(`nodes "${node}" not found`), { code: 404 })

/**
 * A cluster's nodes as the rollout reaches them through the API server, with the given nodes: cordon
 * and uncordon flip `cordoned`, a drain evicts the node's pods and reports them. A node it does not
 * have is 404, as on the real server. Calls are written "cordon n1", "drain n1", "isReady n1",
 * "uncordon n1" and can be scripted to fail or wait (ScriptedFake).
 */
export class FixedNodeDrainer extends ScriptedFake implements NodeDrainer {
  readonly cordoned = new Set<string>()
  /** The options of every drain, in order. */
  readonly drains: Array<{ node: string; options: DrainOptions }> = []
  private readonly nodes = new Map<string, Required<FakeNode>>()

  constructor(nodes: Record<string, FakeNode> = {}, calls: CallJournal = []) {
    super(calls)
    for (const [name, node] of Object.entries(nodes)) this.nodes.set(name, { ready: node.ready ?? true, pods: [...(node.pods ?? [])] })
  }

  async cordon(node: string): Promise<void> {
    await this.called(`cordon ${node}`)
    this.existing(node)
    this.cordoned.add(node)
  }

  async drain(node: string, options: DrainOptions, progress?: (message: string) => void): Promise<DrainReport> {
    await this.called(`drain ${node}`)
    const pods = this.existing(node).pods.splice(0)
    this.drains.push({ node, options })
    progress?.(`evicting ${pods.length} pod(s)`)
    return { evicted: pods, skipped: [] }
  }

  async uncordon(node: string): Promise<void> {
    await this.called(`uncordon ${node}`)
    this.existing(node)
    this.cordoned.delete(node)
  }

  async isReady(node: string): Promise<boolean> {
    await this.called(`isReady ${node}`)
    return this.nodes.get(node)?.ready ?? false
  }

  /** What the kubelet would do: the node turns Ready or not. */
  setReady(node: string, ready: boolean): void {
    this.existing(node).ready = ready
  }

  private existing(node: string): Required<FakeNode> {
    const found = this.nodes.get(node)
    if (!found) throw nodeNotFound(node)
    return found
  }
}

/** A cluster without nodes: every node call is 404, no node is Ready. */
export class EmptyNodeDrainer extends FixedNodeDrainer {
  constructor(calls: CallJournal = []) {
    super({}, calls)
  }
}

/** An API server that fails every call. */
export class BrokenNodeDrainer implements NodeDrainer {
  cordon(): Promise<void> {
    return failing('NodeDrainer.cordon')
  }
  drain(): Promise<DrainReport> {
    return failing('NodeDrainer.drain')
  }
  uncordon(): Promise<void> {
    return failing('NodeDrainer.uncordon')
  }
  isReady(): Promise<boolean> {
    return failing('NodeDrainer.isReady')
  }
}
