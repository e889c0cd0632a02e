// TFTP throughput: the engine's TFTP server vs tftpd-hpa, same file, same client (curl), on 127.0.0.1.
// Run: npx tsx bench/tftp.bench.ts   (BENCH_TFTP_SIZE_MB, BENCH_TFTP_CLIENTS, BENCH_TFTP_RUNS to change)
import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import path from 'node:path'
import pino from 'pino'
import { startTftpServer, type TftpServer } from '../src/transports/tftp/tftp-server.ts'
import { runCommand, sha256OfFile, writeRandomFile } from '../test/transports/tftp/tftp-test-kit.ts'
import { sleep } from '../test/helpers/wait.ts'

const SIZE_MB = Number(process.env.BENCH_TFTP_SIZE_MB ?? 30)
const MAX_CLIENTS = Number(process.env.BENCH_TFTP_CLIENTS ?? 20)
const RUNS = Number(process.env.BENCH_TFTP_RUNS ?? 1)
const BLOCK_SIZE = 1468
const IN_TFTPD = process.env.BENCH_IN_TFTPD ?? '/usr/sbin/in.tftpd'
const FILE_NAME = 'bench.bin'

interface Cell {
  server: 'engine' | 'tftpd-hpa'
  clients: number
  wallSeconds: number
  megabytesPerSecond: number
  runsWallSeconds: number[]
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const port = socket.address().port
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

/** N curl clients at once; fails unless every download has the full size. Returns wall seconds. */
async function downloadConcurrently(port: number, clients: number, fileBytes: number): Promise<number> {
  const started = performance.now()
  const results = await Promise.all(
    Array.from({ length: clients }, () =>
      runCommand('curl', ['-s', '--tftp-blksize', String(BLOCK_SIZE), '-o', '/dev/null', '-w', '%{size_download}',
        `tftp://127.0.0.1:${port}/${FILE_NAME}`], 600_000),
    ),
  )
  const wall = (performance.now() - started) / 1000
  for (const result of results) {
    if (result.code !== 0 || Number(result.stdout) !== fileBytes) {
      throw new Error(`curl failed on port ${port}: exit ${result.code}, ${result.stdout} bytes, ${result.stderr}`)
    }
  }
  return wall
}

async function verifiedDownload(port: number, target: string, expectedSha: string): Promise<void> {
  const result = await runCommand('curl', ['-s', '--tftp-blksize', String(BLOCK_SIZE), '-o', target, `tftp://127.0.0.1:${port}/${FILE_NAME}`])
  if (result.code !== 0 || (await sha256OfFile(target)) !== expectedSha) {
    throw new Error(`download from port ${port} is not byte-identical (curl exit ${result.code})`)
  }
  await rm(target)
}

async function startTftpdHpa(folder: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freeUdpPort()
  // -L foreground, -a address:port, -s chroot into the folder, -u root (the temp folder is 0700),
  // -B the same largest block size the engine acknowledges.
  const child = spawn(IN_TFTPD, ['-L', '-a', `127.0.0.1:${port}`, '-s', '-u', 'root', '-B', String(BLOCK_SIZE), folder], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk) => (stderr += chunk))
  for (let attempt = 0; attempt < 50; attempt++) {
    const probe = await runCommand('curl', ['-s', '-o', '/dev/null', `tftp://127.0.0.1:${port}/probe.txt`], 5000)
    if (probe.code === 0) return { child, port }
    if (child.exitCode !== null) break
    await sleep(100)
  }
  stopChild(child)
  throw new Error(`tftpd-hpa did not start on 127.0.0.1:${port}: ${stderr}`)
}

function stopChild(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGTERM')
}

async function main(): Promise<void> {
  const base = await mkdtemp(path.join(tmpdir(), 'slipway-tftp-bench-'))
  const folder = path.join(base, 'served')
  await mkdir(folder)
  let engine: TftpServer | undefined
  let tftpd: ChildProcess | undefined
  const cleanup = async (): Promise<void> => {
    if (tftpd) stopChild(tftpd)
    await engine?.close()
    await rm(base, { recursive: true, force: true })
  }
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))
  try {
    const fileBytes = Math.round(SIZE_MB * 1024 * 1024)
    await writeRandomFile(path.join(folder, FILE_NAME), fileBytes)
    await writeFile(path.join(folder, 'probe.txt'), 'ready\n')
    const expectedSha = await sha256OfFile(path.join(folder, FILE_NAME))

    // Every curl is 127.0.0.1 here: the per-client limit must let all of them in, as tftpd-hpa does.
    engine = await startTftpServer({ host: '127.0.0.1', port: 0, ipxeDir: folder, logger: pino({ level: 'warn' }), maxTransfersPerClient: Math.max(MAX_CLIENTS, 1) })
    const hpa = await startTftpdHpa(folder)
    tftpd = hpa.child
    const servers = [
      { name: 'engine' as const, port: engine.port },
      { name: 'tftpd-hpa' as const, port: hpa.port },
    ]
    for (const server of servers) await verifiedDownload(server.port, path.join(base, `check-${server.name}`), expectedSha)

    const concurrencies = [...new Set([1, MAX_CLIENTS])]
    const cells: Cell[] = []
    for (const clients of concurrencies) {
      for (const server of servers) {
        const runsWallSeconds: number[] = []
        for (let run = 0; run < RUNS; run++) runsWallSeconds.push(await downloadConcurrently(server.port, clients, fileBytes))
        const wallSeconds = median(runsWallSeconds)
        const megabytesPerSecond = (clients * fileBytes) / 1e6 / wallSeconds
        cells.push({ server: server.name, clients, wallSeconds, megabytesPerSecond, runsWallSeconds })
        console.log(
          `${server.name.padEnd(10)} clients ${String(clients).padStart(3)}  wall ${wallSeconds.toFixed(2).padStart(7)} s  ` +
            `${megabytesPerSecond.toFixed(1).padStart(7)} MB/s (aggregate)`,
        )
      }
    }
    const ratios = concurrencies.map((clients) => {
      const engineCell = cells.find((cell) => cell.server === 'engine' && cell.clients === clients)!
      const hpaCell = cells.find((cell) => cell.server === 'tftpd-hpa' && cell.clients === clients)!
      return { clients, throughputRatio: engineCell.megabytesPerSecond / hpaCell.megabytesPerSecond }
    })
    console.log('\nRatio engine / tftpd-hpa, throughput (higher is better for the engine):')
    for (const ratio of ratios) console.log(`  ${String(ratio.clients).padStart(3)} client(s): ${ratio.throughputRatio.toFixed(2)}`)

    const tftpdVersion = (await runCommand(IN_TFTPD, ['-V'])).stdout.trim() || (await runCommand(IN_TFTPD, ['-V'])).stderr.trim()
    const resultsFolder = path.join(import.meta.dirname, 'results')
    await mkdir(resultsFolder, { recursive: true })
    await writeFile(
      path.join(resultsFolder, 'tftp.json'),
      JSON.stringify(
        {
          date: new Date().toISOString(),
          cpu: { model: cpus()[0]?.model, count: cpus().length },
          node: process.version,
          tftpd: tftpdVersion.split('\n')[0],
          client: (await runCommand('curl', ['--version'])).stdout.split('\n')[0],
          settings: { sizeMB: SIZE_MB, fileBytes, maxClients: MAX_CLIENTS, runs: RUNS, blockSize: BLOCK_SIZE },
          cells,
          ratios,
        },
        null,
        2,
      ) + '\n',
    )
    console.log(`\nwrote ${path.join('bench', 'results', 'tftp.json')}`)
  } finally {
    await cleanup()
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error)
  process.exitCode = 1
})
