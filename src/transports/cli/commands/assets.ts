import { EXIT, usageError } from '../cli-error.ts'
import { flag, keyValues, stringValue, stringValues, type CommandSpec } from '../command.ts'
import { CONFIG_OPTION, loadCommandConfig } from './engine.ts'

const KUBERNETES_VERSION = /^v[0-9]+\.[0-9]+\.[0-9]+$/

export const assetCommands: CommandSpec[] = [
  {
    path: ['assets', 'mirror'],
    summary: "fill the engine's /assets with a Flatcar release and Kubernetes sysexts, checksums verified, so installs need no internet",
    options: {
      ...CONFIG_OPTION,
      dir: { type: 'string', value: 'DIR', help: 'the assets folder (default: content.assetsDir of the configuration)' },
      channel: { type: 'string', value: 'CHANNEL', help: 'Flatcar channel (default: images.flatcarChannel)' },
      'flatcar-version': { type: 'string', value: 'VERSION', help: 'Flatcar release, or current (default: images.flatcarVersion)' },
      'from-flatcar': { type: 'string', value: 'URL', help: 'release server (default https://<channel>.release.flatcar-linux.net/amd64-usr)' },
      kubernetes: { type: 'string', value: 'VERSION', multiple: true, help: 'Kubernetes version of a sysext to mirror, e.g. v1.31.8 (repeatable; default: the default flavor version)' },
      'from-extensions': { type: 'string', value: 'URL', help: 'where kubernetes-<version>-x86-64.raw is (default https://extensions.flatcar.org/extensions)' },
      'sysext-sums': { type: 'string', value: 'URL', help: 'a SHA256SUMS listing the sysexts (default: <from-extensions>/SHA256SUMS)' },
      'sysext-sha256': { type: 'string', value: 'FILE=HEX', multiple: true, help: "a sysext's SHA-256 given by hand, when no SHA256SUMS lists it" },
      'kubernetes-binaries': { type: 'boolean', help: 'also kubeadm, kubelet and kubectl of each --kubernetes version, for Fedora CoreOS members' },
      'from-kubernetes': { type: 'string', value: 'URL', help: "where <version>/bin/linux/amd64/<binary> and its .sha256 are (default https://dl.k8s.io/release)" },
    },
    details:
      'Flatcar files are checked against the SHA-512 in their .DIGESTS, sysexts against a SHA-256; a file lands in the\n' +
      'folder only once it matches. Files already there and matching are kept. The layout is the release server\'s:\n' +
      '<dir>/flatcar/<channel>/<version>/ (and current -> the version), <dir>/extensions/, and with --kubernetes-binaries\n' +
      '<dir>/kubernetes/<version>/bin/linux/amd64/ (dl.k8s.io\'s layout, each binary checked against its .sha256).',
    async run(context) {
      const [config, { mirrorImages, MirrorError }, { DEFAULT_KUBERNETES_VERSION }] = await Promise.all([
        loadCommandConfig(context),
        import('../../../adapters/assets/image-mirror.ts'),
        import('../../../core/clusters/cluster.ts'),
      ])
      if (config === undefined) return EXIT.usage
      const channel = stringValue(context, 'channel') ?? config.images.flatcarChannel
      const flatcarVersion = stringValue(context, 'flatcar-version') ?? config.images.flatcarVersion
      if (!/^(current|[0-9]+\.[0-9]+\.[0-9]+)$/.test(flatcarVersion)) throw usageError(`--flatcar-version takes a release such as 4152.2.3, or current, not "${flatcarVersion}"`)
      if (!/^[a-z]+$/.test(channel)) throw usageError(`--channel takes a channel name such as stable, not "${channel}"`)
      const kubernetesVersions = stringValues(context, 'kubernetes')
      for (const version of kubernetesVersions) if (!KUBERNETES_VERSION.test(version)) throw usageError(`--kubernetes takes a version such as v1.31.8, not "${version}"`)
      const sums = keyValues(context, 'sysext-sha256')
      for (const [name, hex] of Object.entries(sums)) if (!/^[0-9a-f]{64}$/.test(hex)) throw usageError(`--sysext-sha256 ${name}: "${hex}" is not a SHA-256 in hex`)
      const sumsUrl = stringValue(context, 'sysext-sums')
      const out = context.out
      try {
        const result = await mirrorImages({
          dir: stringValue(context, 'dir') ?? config.content.assetsDir,
          channel,
          flatcarVersion,
          flatcarBaseUrl: stringValue(context, 'from-flatcar') ?? `https://${channel}.release.flatcar-linux.net/amd64-usr`,
          kubernetesVersions: kubernetesVersions.length ? kubernetesVersions : [DEFAULT_KUBERNETES_VERSION],
          sysextBaseUrl: stringValue(context, 'from-extensions') ?? 'https://extensions.flatcar.org/extensions',
          ...(sumsUrl ? { sysextSumsUrl: sumsUrl } : {}),
          sysextSha256: sums,
          ...(flag(context, 'kubernetes-binaries') ? { kubernetesBinariesBaseUrl: stringValue(context, 'from-kubernetes') ?? 'https://dl.k8s.io/release' } : {}),
          progress: (event) => {
            if (!out.json) out.print(`${event.state === 'present' ? 'kept      ' : 'downloaded'} ${event.file} (${event.bytes} bytes)`)
          },
        })
        if (out.json) out.printJson(JSON.stringify(result))
        else out.print(`Flatcar ${result.flatcarVersion} (${channel}) and ${result.files.filter((file) => file.path.startsWith('extensions')).length} sysext(s) are in place`)
        return EXIT.ok
      } catch (error) {
        if (!(error instanceof MirrorError)) throw error
        out.stderr.write(`slipway: ${error.message} (${error.code})\n`)
        return error.code === 'DOWNLOAD_FAILED' ? EXIT.unreachable : EXIT.failed
      }
    },
  },
]
