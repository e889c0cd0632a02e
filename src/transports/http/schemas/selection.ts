import Type from 'typebox'

/** Every query parameter is a label, as on /ipxe and /ignition. */
export const LabelsQuery = Type.Record(Type.String(), Type.String())
export const SelectionResponse = Type.Object({
  labels: Type.Record(Type.String(), Type.String()),
  group: Type.Object({ id: Type.String(), name: Type.String(), selector: Type.Record(Type.String(), Type.String()) }),
  profile: Type.Object({ id: Type.String(), name: Type.String() }),
})
