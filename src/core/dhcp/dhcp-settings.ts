/**
 * Start-up validation of the `dhcp` configuration section. The JSON schema checks types; this checks
 * what only makes sense together (a range inside the subnet, a server address when enabled). Problems
 * are reported all at once, each with the key to fix, in the shape of Ignition's validation report.
 */
import { isIpv4, parseCidr, parseIpv4, subnetContains, type Ipv4Subnet } from '../../lib/ipv4.ts'

/** The fields of `Config['dhcp']` this module reads (kept structural so core does not import config). */
export interface DhcpSettings {
  mode: 'off' | 'full' | 'proxy'
  serverAddress: string
  port: number
  subnet: string
  rangeStart: string
  rangeEnd: string
  router: string
  dnsServers: string[]
  domain: string
  leaseSeconds: number
}

export interface DhcpSettingsProblem {
  /** Stable code, e.g. `DHCP_RANGE_OUTSIDE_SUBNET`. */
  code: string
  /** Config key, e.g. `dhcp.rangeStart`. */
  path: string
  message: string
}

/** The pool of a valid full-mode configuration, as numbers. */
export interface DhcpPool {
  subnet: Ipv4Subnet
  start: number
  end: number
}

export function validateDhcpSettings(settings: DhcpSettings): DhcpSettingsProblem[] {
  const problems: DhcpSettingsProblem[] = []
  if (settings.mode === 'off') return problems
  const problem = (code: string, path: string, message: string) => problems.push({ code, path, message })

  if (!settings.serverAddress) problem('DHCP_SERVER_ADDRESS_REQUIRED', 'dhcp.serverAddress', `dhcp.mode is ${settings.mode}: set dhcp.serverAddress to this engine's IPv4 address on the boot network`)
  else if (!isIpv4(settings.serverAddress)) problem('DHCP_SERVER_ADDRESS_INVALID', 'dhcp.serverAddress', `"${settings.serverAddress}" is not an IPv4 address`)

  if (settings.router && !isIpv4(settings.router)) problem('DHCP_ROUTER_INVALID', 'dhcp.router', `"${settings.router}" is not an IPv4 address`)
  settings.dnsServers.forEach((server, index) => {
    if (!isIpv4(server)) problem('DHCP_DNS_SERVER_INVALID', `dhcp.dnsServers[${index}]`, `"${server}" is not an IPv4 address`)
  })

  // Proxy mode hands out no addresses; a subnet is optional there (it only picks the broadcast address).
  if (settings.mode === 'proxy') {
    if (settings.subnet && !parseCidr(settings.subnet)) problem('DHCP_SUBNET_INVALID', 'dhcp.subnet', `"${settings.subnet}" is not an IPv4 CIDR such as 10.0.0.0/24`)
    return problems
  }

  const subnet = settings.subnet ? parseCidr(settings.subnet) : undefined
  if (!settings.subnet) problem('DHCP_SUBNET_REQUIRED', 'dhcp.subnet', 'full mode needs dhcp.subnet, the boot network in CIDR form (e.g. 10.0.0.0/24)')
  else if (!subnet) problem('DHCP_SUBNET_INVALID', 'dhcp.subnet', `"${settings.subnet}" is not an IPv4 CIDR such as 10.0.0.0/24`)
  else if (subnet.prefixLength > 30) problem('DHCP_SUBNET_TOO_SMALL', 'dhcp.subnet', `a /${subnet.prefixLength} has no room for clients; use /30 or larger`)

  const start = checkPoolEnd(settings.rangeStart, 'dhcp.rangeStart', subnet, problem)
  const end = checkPoolEnd(settings.rangeEnd, 'dhcp.rangeEnd', subnet, problem)
  if (start !== undefined && end !== undefined && start > end) problem('DHCP_RANGE_REVERSED', 'dhcp.rangeEnd', `dhcp.rangeEnd (${settings.rangeEnd}) comes before dhcp.rangeStart (${settings.rangeStart})`)

  const server = parseIpv4(settings.serverAddress)
  if (subnet && server !== undefined && !subnetContains(subnet, server)) problem('DHCP_SERVER_OUTSIDE_SUBNET', 'dhcp.serverAddress', `${settings.serverAddress} is not inside dhcp.subnet ${settings.subnet}`)
  if (server !== undefined && start !== undefined && end !== undefined && server >= start && server <= end) {
    problem('DHCP_SERVER_IN_RANGE', 'dhcp.rangeStart', `the pool ${settings.rangeStart}-${settings.rangeEnd} contains the server's own address ${settings.serverAddress}`)
  }
  return problems
}

function checkPoolEnd(text: string, path: string, subnet: Ipv4Subnet | undefined, problem: (code: string, path: string, message: string) => void): number | undefined {
  if (!text) {
    problem('DHCP_RANGE_REQUIRED', path, `full mode needs ${path}`)
    return undefined
  }
  const value = parseIpv4(text)
  if (value === undefined) {
    problem('DHCP_RANGE_INVALID', path, `"${text}" is not an IPv4 address`)
    return undefined
  }
  if (subnet && (!subnetContains(subnet, value) || value === subnet.network || value === subnet.broadcast)) {
    problem('DHCP_RANGE_OUTSIDE_SUBNET', path, `${text} is not a host address of dhcp.subnet`)
    return undefined
  }
  return value
}

/** The pool of settings that passed `validateDhcpSettings` in full mode. */
export function dhcpPoolOf(settings: DhcpSettings): DhcpPool {
  const subnet = parseCidr(settings.subnet)
  const start = parseIpv4(settings.rangeStart)
  const end = parseIpv4(settings.rangeEnd)
  if (!subnet || start === undefined || end === undefined) throw new Error('dhcpPoolOf: settings were not validated')
  return { subnet, start, end }
}
