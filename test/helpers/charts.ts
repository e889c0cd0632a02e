import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { helmPath } from './tools.ts'

const run = promisify(execFile)

/** Runs the real helm with private homes (never the user's); returns stdout. */
export async function helm(args: string[], options: { cwd?: string; home?: string } = {}): Promise<string> {
  const home = options.home ?? path.join(os.tmpdir(), 'slipway-test-helm-home')
  const { stdout } = await run(await helmPath(), args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, HELM_CACHE_HOME: path.join(home, 'cache'), HELM_CONFIG_HOME: path.join(home, 'config'), HELM_DATA_HOME: path.join(home, 'data') },
    maxBuffer: 16 * 1024 * 1024,
  })
  return stdout
}

/** Files of a chart, by path under the chart folder (Chart.yaml, values.yaml, templates/...). */
export type ChartFiles = Record<string, string>

/** `helm package` of the given files: the .tgz bytes a user would upload. */
export async function packageChart(files: ChartFiles): Promise<Buffer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'slipway-chart-'))
  try {
    const chartDir = path.join(dir, 'chart')
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(chartDir, file)), { recursive: true })
      await writeFile(path.join(chartDir, file), text)
    }
    const out = path.join(dir, 'out')
    await helm(['package', chartDir, '--destination', out])
    const name = /^name:\s*(\S+)/m.exec(files['Chart.yaml']!)![1]
    const version = /^version:\s*(\S+)/m.exec(files['Chart.yaml']!)![1]
    return await readFile(path.join(out, `${name}-${version}.tgz`))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}
          ports: [{containerPort: 8080}]
`
const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80, targetPort: 8080}]
`
const CONFIG_MAP = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
  cluster: {{ (((.Values.slipway).cluster).name) | default "unknown" | quote }}
`

/** A small web chart: a Deployment, a Service and (in 1.0.0, not in 1.1.0) a ConfigMap with values. */
export function webChart(version: '1.0.0' | '1.1.0'): ChartFiles {
  return {
    'Chart.yaml': `apiVersion: v2\nname: web\nversion: ${version}\nappVersion: "2.4"\ndescription: A web front end\n`,
    'values.yaml': 'replicas: 1\nimage: registry.example/web:2.4\ngreeting: hello\n',
    'templates/deployment.yaml': DEPLOYMENT,
    'templates/service.yaml': SERVICE,
    ...(version === '1.0.0' ? { 'templates/configmap.yaml': CONFIG_MAP } : {}),
    'templates/NOTES.txt': 'web is served on port 80 of service {{ .Release.Name }}\n',
  }
}

/** A chart that cannot render without a value it does not default. */
export const brokenChart: ChartFiles = {
  'Chart.yaml': 'apiVersion: v2\nname: broken\nversion: 0.1.0\n',
  'values.yaml': '{}\n',
  'templates/configmap.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  image: {{ required "values.image is required" .Values.image }}\n',
}

/** A multipart/form-data body as browsers and curl send it (undici's FormData), for app.inject. */
export async function multipartBody(fields: Record<string, string>, files: Record<string, { name: string; bytes: Buffer }>): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData()
  for (const [key, value] of Object.entries(fields)) form.append(key, value)
  for (const [key, file] of Object.entries(files)) form.append(key, new Blob([new Uint8Array(file.bytes)], { type: 'application/gzip' }), file.name)
  const request = new Request('http://localhost/', { method: 'POST', body: form })
  return { payload: Buffer.from(await request.arrayBuffer()), headers: { 'content-type': request.headers.get('content-type')! } }
}
