import Type from 'typebox'
import { MACHINE_STATES } from '../../../core/machines/machine-state.ts'

export const InstallIdentity = Type.Object(
  {
    uuid: Type.Optional(Type.String({ maxLength: 64, description: 'The machine uuid (SMBIOS); required, with mac.' })),
    mac: Type.Optional(Type.String({ maxLength: 32, description: 'The boot MAC, any common form; required, with uuid.' })),
  },
  // Installers may pass the same label set as the boot routes; only uuid and mac matter here.
  { additionalProperties: true },
)
export const InstallGranted = Type.Object({ authorized: Type.Literal(true) })
export const InstallDenied = Type.Object({ authorized: Type.Literal(false), code: Type.Literal('INSTALL_SLOTS_FULL'), message: Type.String() })
export const InstallReportBody = Type.Union([Type.Object({ message: Type.Optional(Type.String({ maxLength: 8192 })) }, { additionalProperties: false }), Type.Null()])
export const InstallReportAnswer = Type.Object({ uuid: Type.String(), state: Type.Enum([...MACHINE_STATES]) })
export const WipeReportAnswer = Type.Object({ uuid: Type.String(), deprovision: Type.String({ description: 'wiped (the engine powers the machine off in a moment) or wipe_failed' }) })
