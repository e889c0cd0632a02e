import { reportStartupFailure, serve } from './serve.ts'

// `npm start`; `slipway serve` runs the same function.
serve().catch((error: unknown) => {
  reportStartupFailure(error)
  process.exit(1)
})
