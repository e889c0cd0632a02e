import type { LockGroupView } from '../api-types.ts'
import { EXIT, usageError } from '../cli-error.ts'
import { positional, type CommandSpec } from '../command.ts'
import { formatAge } from '../table.ts'

const GROUP = /^.{1,64}$/s

export const lockCommands: CommandSpec[] = [
  {
    path: ['locks', 'list'],
    summary: 'the reboot lock groups with their slots and holders',
    async run(context) {
      const answer = await (await context.api()).call<LockGroupView[]>('GET', '/api/v1/locks')
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.table(
        [{ header: 'GROUP' }, { header: 'SLOTS', align: 'right' }, { header: 'FREE', align: 'right' }, { header: 'TTL', align: 'right' }, { header: 'HOLDERS', shrink: true }],
        answer.data.map((group) => [
          group.name,
          group.slots,
          group.free,
          group.ttl_seconds === null ? '-' : `${group.ttl_seconds}s`,
          group.holders.map((holder) => `${holder.id} (${formatAge(holder.acquired_at)})`).join(', ') || '-',
        ]),
        'no lock groups',
      )
      return EXIT.ok
    },
  },
  {
    path: ['locks', 'release'],
    summary: 'force-release a holder of a lock group (a machine that will not come back)',
    args: '<group> <holder>',
    arity: [2, 2],
    async run(context) {
      const group = positional(context, 0)
      const holder = positional(context, 1)
      if (!GROUP.test(group)) throw usageError('a lock group name has 1 to 64 characters')
      if (holder.length === 0 || holder.length > 128) throw usageError('a holder id has 1 to 128 characters')
      const answer = await (await context.api()).call<LockGroupView>('DELETE', `/api/v1/locks/${encodeURIComponent(group)}/holders/${encodeURIComponent(holder)}`)
      if (context.out.json) context.out.printJson(answer.raw)
      else context.out.print(`released ${holder} from ${group}: ${answer.data.free}/${answer.data.slots} slot(s) free`)
      return EXIT.ok
    },
  },
]
