/**
 * What a netbooting client is told to load: one decision, in one place, for the DHCP server (full and
 * proxy modes) and anything else that needs it. Pure: it sees only what the client said.
 *
 * The chain it builds is loop-free: firmware PXE gets an iPXE binary over TFTP; iPXE (which says so
 * with user class "iPXE" or option 175) gets the HTTP URL of `/boot.ipxe`; UEFI HTTP boot clients get
 * the iPXE binary over HTTP.
 */

/** RFC 4578 option 93 values (IANA "Processor Architecture Types") that matter here. */
export const ARCH = {
  BIOS: 0,
  UEFI_IA32: 6,
  UEFI_X64_BC: 7, // RFC 4578 called 7 "EFI BC"; in practice x86-64 firmware sends 7 (and some 9)
  UEFI_X64: 9,
  UEFI_ARM32: 10,
  UEFI_ARM64: 11,
  UEFI_X86_HTTP: 15,
  UEFI_X64_HTTP: 16,
  BIOS_HTTP: 20,
} as const

/** What the client said in its DHCP packet, as parsed by the transport. */
export interface BootClient {
  mac: string
  /** Option 93, first value. */
  arch?: number
  /** Option 60, e.g. `PXEClient:Arch:00007:UNDI:003016` or `HTTPClient:Arch:00016:UNDI:003001`. */
  vendorClass?: string
  /** Option 77 user classes (iPXE sends `iPXE`). */
  userClasses: readonly string[]
  /** Option 175 (iPXE encapsulated options) was present. */
  sentIpxeOptions: boolean
}

/** File names of the iPXE builds to hand out, per firmware family. */
export interface IpxeBinaries {
  bios: string
  uefiX64: string
  uefiIa32: string
  uefiArm64: string
}

export const DEFAULT_IPXE_BINARIES: IpxeBinaries = {
  bios: 'undionly.kpxe',
  uefiX64: 'ipxe.efi',
  uefiIa32: 'ipxe-ia32.efi',
  uefiArm64: 'snp-arm64.efi',
}

export interface BootServer {
  /** The engine's IPv4 address on the boot network: `siaddr`, option 54 in proxy mode, TFTP server. */
  address: string
  /** Base URL of the engine's HTTP, without a trailing slash (e.g. `http://10.0.0.1:8080`). */
  httpUrl: string
  binaries: IpxeBinaries
}

export type BootDecision =
  | {
      kind: 'ipxe-script' | 'tftp-binary' | 'http-binary'
      /** BOOTP `file` and option 67. */
      filename: string
      /** BOOTP `siaddr` (next server) and option 66 / `sname`. */
      nextServer: string
      /** Option 60 to send back: `PXEClient` for PXE firmware, `HTTPClient` for UEFI HTTP boot. */
      vendorClass?: 'PXEClient' | 'HTTPClient'
      /** iPXE option 175.176 (`no-pxedhcp`) = 1: iPXE then does not wait ~3 s for a proxyDHCP offer. */
      ipxeNoProxyDhcp: boolean
      /** One line for the log: why this file. */
      reason: string
    }
  | { kind: 'none'; reason: string }

export const isIpxe = (client: BootClient) => client.sentIpxeOptions || client.userClasses.includes('iPXE')
export const isHttpBootClient = (client: BootClient) =>
  client.vendorClass?.startsWith('HTTPClient') === true ||
  client.arch === ARCH.UEFI_X86_HTTP ||
  client.arch === ARCH.UEFI_X64_HTTP ||
  client.arch === ARCH.BIOS_HTTP
export const isPxeClient = (client: BootClient) => client.vendorClass?.startsWith('PXEClient') === true

/** A client that asked to boot from the network at all; anything else only gets an address. */
export const isNetbootClient = (client: BootClient) => isIpxe(client) || isHttpBootClient(client) || isPxeClient(client)

export function decideBoot(client: BootClient, server: BootServer): BootDecision {
  if (isIpxe(client)) {
    return {
      kind: 'ipxe-script',
      filename: `${server.httpUrl}/boot.ipxe`,
      nextServer: server.address,
      ipxeNoProxyDhcp: true,
      reason: 'iPXE client: chain the boot script over HTTP',
    }
  }
  const binary = binaryFor(client.arch, server.binaries)
  if (isHttpBootClient(client)) {
    const httpBinary = client.arch === ARCH.BIOS_HTTP ? server.binaries.bios : client.arch === ARCH.UEFI_X86_HTTP ? server.binaries.uefiIa32 : binary.name
    return {
      kind: 'http-binary',
      filename: `${server.httpUrl}/pxe/${httpBinary}`,
      nextServer: server.address,
      vendorClass: 'HTTPClient',
      ipxeNoProxyDhcp: false,
      reason: `UEFI HTTP boot client (arch ${client.arch ?? 'unknown'}): iPXE over HTTP`,
    }
  }
  if (isPxeClient(client)) {
    return {
      kind: 'tftp-binary',
      filename: binary.name,
      nextServer: server.address,
      vendorClass: 'PXEClient',
      ipxeNoProxyDhcp: false,
      reason: `PXE firmware, ${binary.family} (arch ${client.arch ?? 'not sent'}): iPXE over TFTP`,
    }
  }
  return { kind: 'none', reason: 'not a netboot client (no PXEClient/HTTPClient vendor class, no iPXE user class)' }
}

function binaryFor(arch: number | undefined, binaries: IpxeBinaries): { name: string; family: string } {
  switch (arch) {
    case ARCH.UEFI_X64_BC:
    case ARCH.UEFI_X64:
    case ARCH.UEFI_X64_HTTP:
      return { name: binaries.uefiX64, family: 'x86-64 UEFI' }
    case ARCH.UEFI_IA32:
      return { name: binaries.uefiIa32, family: 'IA32 UEFI' }
    case ARCH.UEFI_ARM32:
    case ARCH.UEFI_ARM64:
      return { name: binaries.uefiArm64, family: 'ARM UEFI' }
    default:
      // 0 and anything unknown: legacy BIOS is by far the most common firmware that omits or garbles 93.
      return { name: binaries.bios, family: 'BIOS' }
  }
}
