import Type from 'typebox'

/** Every query parameter is a label, as on /ipxe and /ignition. */
// Free-form: every query parameter is a label (an object of string values, not a Record, so that the
// OpenAPI document does not list the schema's own keywords as parameters).
export const LabelsQuery = Type.Object({}, { additionalProperties: Type.String() })
export const SelectionResponse = Type.Object({
  labels: Type.Record(Type.String(), Type.String()),
  group: Type.Object({ id: Type.String(), name: Type.String(), selector: Type.Record(Type.String(), Type.String()) }),
  profile: Type.Object({ id: Type.String(), name: Type.String() }),
})
