import Type from 'typebox'
import { TEMPLATE_KINDS } from '../../../core/boot/template.ts'
import { ID_PATTERN, TEMPLATE_ID_MAX_LENGTH, TEMPLATE_ID_PATTERN } from '../../../core/selection/documents.ts'
import { Source } from './common.ts'

// matchbox's content: groups, profiles and the templates they name.

export const GroupResponse = Type.Object({
  id: Type.String(),
  name: Type.String(),
  profile: Type.String(),
  selector: Type.Record(Type.String(), Type.String()),
  metadata: Type.Record(Type.String(), Type.Unknown()),
  source: Type.Optional(Source),
})

export const ProfileResponse = Type.Object({
  id: Type.String(),
  name: Type.String(),
  ignition_id: Type.Optional(Type.String()),
  generic_id: Type.Optional(Type.String()),
  boot: Type.Optional(Type.Object({ kernel: Type.String(), initrd: Type.Array(Type.String()), args: Type.Array(Type.String()) })),
  source: Type.Optional(Source),
})

/** A group's or a profile's id in the path. */
export const IdParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN }) })

const Kind = Type.Enum([...TEMPLATE_KINDS], { description: 'Template folder: ignition, generic or ipxe.' })
export const TemplateSummary = Type.Object({ kind: Kind, id: Type.String(), source: Source, created_at: Type.String(), updated_at: Type.String() })
export const TemplateResponse = Type.Object({ ...TemplateSummary.properties, body: Type.String() })
export const TemplateParams = Type.Object({ kind: Kind, '*': Type.String({ pattern: TEMPLATE_ID_PATTERN, maxLength: TEMPLATE_ID_MAX_LENGTH, description: 'Template id (file name, may include subfolders).' }) })
export const TemplateListQuery = Type.Object({ kind: Type.Optional(Kind) })
export const TemplateBody = Type.Union([Type.String({ maxLength: 4 * 1024 * 1024 }), Type.Object({ body: Type.String() }, { additionalProperties: false })])
