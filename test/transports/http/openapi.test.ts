/**
 * The OpenAPI document at /apidocs/json as its readers meet it: a real validator
 * (@apidevtools/swagger-parser, against the OpenAPI 3.0 schema, every $ref resolved) accepts it;
 * every operation has an operationId (unique), a summary, and responses that say what they mean,
 * with a schema; the machine-facing routes are documented with the security they really have; and a
 * client generated from it by openapi-typescript type-checks against real calls.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import SwaggerParser from '@apidevtools/swagger-parser'
import openapiTS, { astToString } from 'openapi-typescript'
import t from 'tap'
import { REPO_ROOT, removeTree, startTestEngine } from '../../helpers/engine.ts'

type Operation = { operationId?: string; summary?: string; security?: Record<string, string[]>[]; parameters?: { name: string; in: string }[]; responses: Record<string, { description: string; content?: Record<string, { schema?: unknown }> }> }
type Document = { paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, unknown> }; security: unknown }

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']
const operations = (document: Document) =>
  Object.entries(document.paths).flatMap(([url, item]) => Object.entries(item).filter(([method]) => METHODS.includes(method)).map(([method, operation]) => ({ url, method, operation })))

t.test('the OpenAPI document validates, names every operation, documents every answer and every route machines use', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const document = (await engine.app.inject({ method: 'GET', url: '/apidocs/json' })).json() as Document
  await t.resolves(SwaggerParser.validate(structuredClone(document) as never), 'swagger-parser validates it against the OpenAPI 3.0 schema')

  const all = operations(document)
  t.ok(all.length > 100, `${all.length} operations`)
  const ids = all.map((entry) => entry.operation.operationId)
  t.same(all.filter((entry) => !entry.operation.operationId).map((entry) => `${entry.method} ${entry.url}`), [], 'every operation has an operationId')
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  t.same(all.filter((entry) => !entry.operation.summary).map((entry) => `${entry.method} ${entry.url}`), [], 'and a summary')
  const vague = all.flatMap((entry) => Object.entries(entry.operation.responses).filter(([, response]) => !response.description || response.description === 'Default Response').map(([code]) => `${entry.method} ${entry.url} ${code}`))
  t.same(vague, [], 'no response described as "Default Response"')
  const schemaless = all.flatMap((entry) => Object.entries(entry.operation.responses).filter(([code, response]) => code !== '204' && !/^3/.test(code) && !Object.values(response.content ?? {}).some((media) => media.schema)).map(([code]) => `${entry.method} ${entry.url} ${code}`))
  t.same(schemaless, [], 'every answer with a body has a schema')

  const selection = document.paths['/api/v1/selection']!.get!
  t.notOk((selection.parameters ?? []).some((parameter) => ['type', 'additionalProperties'].includes(parameter.name)), "the selection's free-form labels do not leak as parameters named after schema keywords")

  // What machines call, with the security they have.
  const machineFacing = ['/ipxe', '/ignition', '/metadata', '/generic', '/boot.ipxe', '/assets/{path}', '/pxe/{path}', '/healthz', '/metrics', '/discovery']
  for (const url of machineFacing) {
    const item = document.paths[url]
    t.ok(item, `${url} is documented`)
    const operation = item?.get ?? item?.post
    t.same(operation?.security, [], `${url}: no token (firmware and installers cannot send one)`)
  }
  t.ok(document.components.securitySchemes.machineCredential, 'a security scheme for the machine credential')
  for (const [url, method] of [['/lifecycle/bootstrap', 'post'], ['/lifecycle/ignition', 'post']] as const) {
    t.same(document.paths[url]?.[method]?.security, [{ machineCredential: [] }], `${method} ${url} asks for the machine credential`)
  }
  t.same(document.paths['/api/v1/machines']!.get!.security, undefined, 'admin routes keep the document-wide bearer token')

  // A client generated from it, used as a program would: type-checked by tsc.
  const types = astToString(await openapiTS(document as never))
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-openapi-'))
  t.teardown(() => removeTree(scratch))
  writeFileSync(path.join(scratch, 'api.d.ts'), types)
  writeFileSync(
    path.join(scratch, 'use.ts'),
    [
      "import type { paths, operations } from './api.d.ts'",
      "type Clusters = paths['/api/v1/clusters']['get']['responses']['200']['content']['application/json']",
      "export const names = (clusters: Clusters): string[] => clusters.map((cluster) => cluster.name)",
      "type Flavor = operations['postApiV1Flavors']['requestBody']",
      "export const flavor: NonNullable<Flavor>['content']['application/json'] = { name: 'small', control_plane_count: 3, nodes_max: 2 }",
      '',
    ].join('\n'),
  )
  const tsc = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsc')
  const checked = await promisify(execFile)(tsc, ['--noEmit', '--strict', '--allowImportingTsExtensions', '--module', 'nodenext', '--target', 'es2022', '--skipLibCheck', path.join(scratch, 'use.ts')]).then(
    () => '',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  )
  t.equal(checked, '', 'the generated client type-checks against real calls')
})
