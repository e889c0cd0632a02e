/**
 * The Redfish BMC double as a process of its own, for a lab: started inside the lab's network
 * namespace (where the engine runs) with one argument, a JSON file of its settings, it serves HTTPS on
 * `host`:`port` and drives its machine through the chassis program ipmi_sim would use. It prints
 * `redfish bmc listening on <url>` once it serves, and stops on SIGTERM.
 */
import { readFileSync } from 'node:fs'
import { chassisControl } from '../helpers/chassis.ts'
import { RedfishBmc } from './redfish-bmc.ts'

export interface RedfishBmcProcessSettings {
  host: string
  port: number
  certificateFile: string
  keyFile: string
  username: string
  password: string
  chassisProgram: string
  chassisStateDir: string
}

const settings = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as RedfishBmcProcessSettings
const bmc = await RedfishBmc.start(
  {
    certificatePem: readFileSync(settings.certificateFile, 'utf8'),
    privateKeyPem: readFileSync(settings.keyFile, 'utf8'),
    username: settings.username,
    password: settings.password,
    chassis: chassisControl(settings.chassisProgram, settings.chassisStateDir),
  },
  settings.host,
  settings.port,
)
console.log(`redfish bmc listening on ${bmc.url}`)
process.once('SIGTERM', () => void bmc.close().then(() => process.exit(0)))
