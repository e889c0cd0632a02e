import type { KubeObject, ReleaseRenderer, Rendered, RenderInput } from '../../src/core/releases/ports.ts'
import { failing } from './intentional-error.ts'
import { ScriptedFake, type CallJournal } from './scripted-fake.ts'

/** What the fake "chart" holds: a ConfigMap with the values and a Deployment, in the release's namespace. */
export const defaultObjects = (input: RenderInput): KubeObject[] => [
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${input.releaseName}-values`, namespace: input.namespace }, data: { values: JSON.stringify(input.values) } },
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: input.releaseName, namespace: input.namespace }, spec: { replicas: 1 } },
]

/**
 * `helm template` with given output (`objects` of each input). Calls are written
 * "render <namespace>/<release> <values as JSON>" and can be scripted to fail or wait (ScriptedFake).
 */
export class FixedReleaseRenderer extends ScriptedFake implements ReleaseRenderer {
  constructor(
    calls: CallJournal = [],
    private readonly objects: (input: RenderInput) => KubeObject[] = defaultObjects,
  ) {
    super(calls)
  }

  async render(input: RenderInput): Promise<Rendered> {
    await this.called(`render ${input.namespace}/${input.releaseName} ${JSON.stringify(input.values)}`)
    const objects = this.objects(input)
    return { manifest: objects.map((object) => `---\n${JSON.stringify(object)}\n`).join(''), objects, notes: '' }
  }
}

/** A chart without templates: every render is empty. */
export class EmptyReleaseRenderer extends FixedReleaseRenderer {
  constructor(calls: CallJournal = []) {
    super(calls, () => [])
  }
}

/** helm failing every render. */
export class BrokenReleaseRenderer implements ReleaseRenderer {
  render(): Promise<Rendered> {
    return failing('ReleaseRenderer.render')
  }
}
