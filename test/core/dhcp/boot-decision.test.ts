import t from 'tap'
import { decideBoot, DEFAULT_IPXE_BINARIES, isNetbootClient, type BootClient } from '../../../src/core/dhcp/boot-decision.ts'

const server = { address: '10.0.0.1', httpUrl: 'http://10.0.0.1:8080', binaries: DEFAULT_IPXE_BINARIES }
const client = (overrides: Partial<BootClient>): BootClient => ({ mac: '52:54:00:00:00:01', userClasses: [], sentIpxeOptions: false, ...overrides })
const pxe = (arch: number) => client({ arch, vendorClass: `PXEClient:Arch:${String(arch).padStart(5, '0')}:UNDI:002001` })

t.test('PXE firmware gets the iPXE build for its architecture over TFTP', async (t) => {
  for (const [arch, file] of [
    [0, 'undionly.kpxe'],
    [6, 'ipxe-ia32.efi'],
    [7, 'ipxe.efi'],
    [9, 'ipxe.efi'],
    [10, 'snp-arm64.efi'],
    [11, 'snp-arm64.efi'],
  ] as const) {
    const decision = decideBoot(pxe(arch), server)
    t.equal(decision.kind, 'tftp-binary', `arch ${arch}`)
    if (decision.kind === 'none') continue
    t.equal(decision.filename, file, `arch ${arch}`)
    t.equal(decision.nextServer, '10.0.0.1')
    t.equal(decision.vendorClass, 'PXEClient')
    t.equal(decision.ipxeNoProxyDhcp, false)
  }
  const noArch = decideBoot(client({ vendorClass: 'PXEClient' }), server)
  t.equal(noArch.kind === 'tftp-binary' && noArch.filename, 'undionly.kpxe', 'no option 93: BIOS')
})

t.test('iPXE (user class or option 175) gets the boot script over HTTP and no proxyDHCP wait', async (t) => {
  for (const ipxe of [client({ userClasses: ['iPXE'], arch: 0, vendorClass: 'PXEClient:Arch:00000' }), client({ sentIpxeOptions: true, arch: 7 })]) {
    const decision = decideBoot(ipxe, server)
    t.equal(decision.kind, 'ipxe-script')
    if (decision.kind === 'none') continue
    t.equal(decision.filename, 'http://10.0.0.1:8080/boot.ipxe')
    t.equal(decision.ipxeNoProxyDhcp, true)
  }
})

t.test('UEFI HTTP boot clients get an HTTP URL and HTTPClient', async (t) => {
  for (const [arch, file] of [
    [16, 'ipxe.efi'],
    [15, 'ipxe-ia32.efi'],
    [20, 'undionly.kpxe'],
  ] as const) {
    const decision = decideBoot(client({ arch, vendorClass: `HTTPClient:Arch:000${arch}:UNDI:003001` }), server)
    t.equal(decision.kind, 'http-binary', `arch ${arch}`)
    if (decision.kind === 'none') continue
    t.equal(decision.filename, `http://10.0.0.1:8080/pxe/${file}`)
    t.equal(decision.vendorClass, 'HTTPClient')
  }
})

t.test('anything else is not a netboot client', async (t) => {
  const plain = client({ vendorClass: 'udhcp 1.36.1' })
  t.notOk(isNetbootClient(plain))
  t.equal(decideBoot(plain, server).kind, 'none')
  t.equal(decideBoot(client({}), server).kind, 'none')
})
