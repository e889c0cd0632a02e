import Type from 'typebox'

export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String({ description: 'Stable machine-readable error code, e.g. GROUP_NOT_FOUND.' }),
    message: Type.String({ description: 'What went wrong and what to do about it.' }),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { $id: 'ErrorResponse' },
)

export const Source = Type.Enum(['file', 'api'], { description: 'Loaded from a content folder at start-up, or written through the API.' })

/** Errors every admin route may answer with. */
export const adminErrors = {
  400: ErrorResponse,
  401: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  413: ErrorResponse,
  415: ErrorResponse,
}
