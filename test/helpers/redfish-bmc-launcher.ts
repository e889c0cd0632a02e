/**
 * A Redfish BMC for a lab VM: the Redfish double (test/fakes/redfish-bmc.ts) run as a process of its
 * own by the caller's launcher (the lab: inside its network namespace, where the engine reaches it),
 * serving HTTPS with a certificate of a CA made here, and powering its machine through the same
 * stand-in chassis ipmi_sim drives (chassis.ts), so a test reads both kinds of BMC's calls alike.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import type { RedfishBmcProcessSettings } from '../fakes/redfish-bmc-process.ts'
import { standInChassis } from './chassis.ts'
import type { LaunchedProcess } from './ipmi-sim.ts'
import { servingCertificate } from './test-pki.ts'
import { until } from './wait.ts'

const ENTRY = fileURLToPath(new URL('../fakes/redfish-bmc-process.ts', import.meta.url))

export interface LabRedfishBmc {
  host: string
  port: number
  username: string
  password: string
  /** The CA the BMC's certificate chains to (the engine's `ca_bundle`). */
  caPem: string
  calls(): string[]
  machineOn(): boolean
  stop(): Promise<void>
}

export interface LabRedfishBmcOptions {
  port: number
  password: string
  machineCommand: string[]
  /** Runs `node` with these arguments; returns the process and its output so far. */
  launch: (args: string[]) => LaunchedProcess & { stdout(): string; stderr(): string }
}

export async function startLabRedfishBmc(options: LabRedfishBmcOptions): Promise<LabRedfishBmc> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-redfish-bmc-'))
  const chassis = standInChassis(dir, options.machineCommand)
  const pki = await x509ClusterPkiIssuer.issue('bmc', new Date())
  const certificate = await servingCertificate(pki)
  const settings: RedfishBmcProcessSettings = {
    host: '127.0.0.1',
    port: options.port,
    certificateFile: path.join(dir, 'bmc.crt'),
    keyFile: path.join(dir, 'bmc.key'),
    username: 'root',
    password: options.password,
    chassisProgram: chassis.program,
    chassisStateDir: chassis.stateDir,
  }
  writeFileSync(settings.certificateFile, certificate.certificatePem)
  writeFileSync(settings.keyFile, certificate.privateKeyPem, { mode: 0o600 })
  writeFileSync(path.join(dir, 'settings.json'), JSON.stringify(settings))
  const child = options.launch(['--import', import.meta.resolve('tsx'), ENTRY, path.join(dir, 'settings.json')])
  await until(
    'the Redfish BMC listening',
    () => (child.hasExited() ? Promise.reject(new Error(`the Redfish BMC exited at start: ${child.stderr()}`)) : child.stdout().includes('listening on') || undefined),
    30_000,
    100,
  )
  return {
    host: settings.host,
    port: settings.port,
    username: settings.username,
    password: settings.password,
    caPem: pki.kubernetesCa.certificatePem,
    calls: chassis.calls,
    machineOn: chassis.machineOn,
    stop: async () => {
      await child.stop()
      chassis.kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
