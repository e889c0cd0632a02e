/**
 * Debian's Chromium, driven headless through playwright-core (no browser download), for the web UI
 * tests; and checks that a screenshot is a real picture of a page rather than a blank one.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { REPO_ROOT } from './engine.ts'

export const CHROMIUM_PATH = process.env.SLIPWAY_CHROMIUM ?? '/usr/bin/chromium'
/** Screenshots of every run (gitignored); SLIPWAY_UPDATE_SCREENSHOTS=1 also copies them to docs/screenshots for the README. */
export const UI_ARTIFACTS_DIR = path.join(REPO_ROOT, 'test-artifacts', 'ui')
export const README_SCREENSHOTS_DIR = path.join(REPO_ROOT, 'docs', 'screenshots')
/** A laptop screen. */
export const LAPTOP_VIEWPORT = { width: 1366, height: 768 }

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`no Chromium at ${CHROMIUM_PATH}: apt-get install chromium (or set SLIPWAY_CHROMIUM)`)
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    // Nothing leaves loopback: no sandbox helper (containers), no GPU, and none of Chromium's own traffic.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
}

export function artifactPath(name: string): string {
  mkdirSync(UI_ARTIFACTS_DIR, { recursive: true })
  return path.join(UI_ARTIFACTS_DIR, name)
}

/** Width and height from a PNG's IHDR chunk, and its size; throws when the bytes are not a PNG. */
export function pngFacts(file: string): { width: number; height: number; bytes: number } {
  const bytes = readFileSync(file)
  if (bytes.length < 24 || bytes.toString('latin1', 1, 4) !== 'PNG' || bytes.toString('latin1', 12, 16) !== 'IHDR') throw new Error(`${file} is not a PNG`)
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20), bytes: bytes.length }
}
