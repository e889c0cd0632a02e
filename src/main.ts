import { serve, startupFailureMessage } from './serve.ts'

// `npm start`; `slipway serve` runs the same function.
serve().catch((error: unknown) => {
  process.stderr.write(startupFailureMessage(error))
  process.exit(1)
})
