import Type, { type TSchema } from 'typebox'

/** `schema` or null: a field that is always present, empty as null rather than left out. */
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])
