/**
 * Boots a QEMU x86-64 machine (q35, TCG) inside a lab namespace, netbooting from one virtio NIC on a
 * tap device. Three firmware set-ups:
 *  - `bios`: SeaBIOS with QEMU's iPXE option ROM (pxe-virtio.rom, loaded automatically);
 *  - `uefi`: OVMF with QEMU's iPXE EFI ROM (efi-virtio.rom, loaded automatically);
 *  - `uefi-no-rom`: OVMF with `romfile=` empty, so the firmware's own PXE runs and TFTPs an iPXE binary.
 * The serial console goes to a file; the machine is killed by PID. TCG only: the /dev/kvm on these
 * machines is a software layer that fails to emulate firmware.
 */
import { copyFileSync, existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import type { LabNetwork, LabProcess } from './lab-network.ts'

export type Firmware = 'bios' | 'uefi' | 'uefi-no-rom'

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd'
export const IPXE_ROMS = { bios: '/usr/lib/ipxe/qemu/pxe-virtio.rom', uefi: '/usr/lib/ipxe/qemu/efi-virtio.rom' }

/** Fails with a clear message when QEMU or the firmware files this firmware needs are missing. */
export function assertQemuPrerequisites(firmware: Firmware): void {
  const needed = ['/usr/bin/qemu-system-x86_64']
  if (firmware === 'bios') needed.push(IPXE_ROMS.bios)
  if (firmware === 'uefi') needed.push(IPXE_ROMS.uefi)
  if (firmware !== 'bios') needed.push(OVMF_CODE, OVMF_VARS)
  const missing = needed.filter((file) => !existsSync(file))
  if (missing.length > 0) {
    throw new Error(
      `cannot boot a ${firmware} VM, missing: ${missing.join(', ')}\n` +
        `Install on Debian: apt-get install --no-install-recommends qemu-system-x86 ipxe-qemu ovmf`,
    )
  }
}

export interface VmOptions {
  lab: LabNetwork
  tap: string
  mac: string
  uuid: string
  firmware: Firmware
  /** Scratch folder for the serial log and the writable UEFI variable store. */
  workDir: string
  name?: string
  memoryMb?: number
  /** A raw disk image, attached as virtio-blk after the NIC in boot order (the NIC always boots first). */
  disk?: string
  /**
   * Whether a guest reboot restarts the VM (an installer reboots into the installed OS). Off by
   * default: with `-no-reboot` a reboot ends QEMU, which is how one-shot boots end.
   */
  allowReboot?: boolean
  /** `tcg` unless a KVM probe succeeded (see probeKvm). */
  accel?: 'tcg' | 'kvm'
}

export interface Vm {
  process: LabProcess
  serialLog: string
  /** The serial console so far. */
  serial(): string
  stop(): Promise<void>
}

export function qemuArgs(options: VmOptions, serialLog: string): string[] {
  const args = [
    '-machine', 'q35',
    '-accel', options.accel ?? 'tcg',
    '-m', String(options.memoryMb ?? 256),
    '-smp', '1',
    '-nographic',
    '-vga', 'none',
    '-monitor', 'none',
    // Appended to: a VM whose BMC powers it off and on again is a new QEMU, and its console goes on.
    '-chardev', `file,id=console,path=${serialLog},append=on`,
    '-serial', 'chardev:console',
    ...(options.allowReboot ? [] : ['-no-reboot']),
    '-uuid', options.uuid,
    '-netdev', `tap,id=n0,ifname=${options.tap},script=no,downscript=no`,
  ]
  const nic = `virtio-net-pci,netdev=n0,mac=${options.mac},bootindex=1`
  args.push('-device', options.firmware === 'uefi-no-rom' ? `${nic},romfile=` : nic)
  if (options.disk) args.push('-drive', `if=none,id=d0,format=raw,file=${options.disk}`, '-device', 'virtio-blk-pci,drive=d0,bootindex=2')
  if (options.firmware !== 'bios') {
    const vars = path.join(options.workDir, `${options.name ?? 'vm'}-OVMF_VARS.fd`)
    copyFileSync(OVMF_VARS, vars)
    args.push(
      '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive', `if=pflash,format=raw,unit=1,file=${vars}`,
    )
  }
  return args
}

export function startVm(options: VmOptions): Vm {
  assertQemuPrerequisites(options.firmware)
  const name = options.name ?? 'vm'
  const serialLog = path.join(options.workDir, `${name}-serial.log`)
  const args = qemuArgs(options, serialLog)
  const proc = options.lab.spawn(`qemu ${name}`, 'qemu-system-x86_64', args)
  const serial = () => {
    try {
      return readFileSync(serialLog, 'latin1')
    } catch {
      return ''
    }
  }
  return { process: proc, serialLog, serial, stop: () => proc.stop(1000) }
}
