import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { chosenNamespace, namespaceArg, namespaceOption } from '../../lib/cli/namespace-arg.js'
import { renderNamespaceInit } from '../../lib/cli/render.js'
import type { NamespaceInit } from '../../lib/ns/init.js'

export default class NsInit extends WalCommand {
  static override summary =
    'Create what a namespace needs (Kafka: its log, DLQ and state topics; Kafka targets: their topics; SQS: its shard queues and DLQ; Cassandra targets: their keyspace and tables) and report what exists.'
  static override description = `Safe to run again: what exists is left as it is and reported. On Kafka, the log topic gets the partitions, replicationFactor and retentionMs of the namespace; the DLQ topic keeps entries until replayed or purged. On SQS, it creates the DLQ, then one queue per shard with a redrive policy to it (maxReceiveCount), both kept 14 days (the most SQS keeps); an existing queue whose redrive policy differs is reported. On Cassandra targets, it creates the keyspace and the declared tables if missing.
A partition count (embedded) or shard count (SQS) that differs from what exists re-maps keys, so per-key order across the change is lost: it is refused (exit 3) unless --allow-remap; drain the namespace first (stop producers, consume --until-idle), then change it.`
  static override examples = ['<%= config.bin %> ns init orders', '<%= config.bin %> ns init -n orders --json', '<%= config.bin %> ns init orders --allow-remap']
  static override args = namespaceArg('Namespace to initialize')
  static override flags = {
    ...namespaceOption('Namespace to initialize'),
    'allow-remap': Flags.boolean({ description: 'Change the partition (embedded) or shard (SQS) count to the config\'s, although keys move and lose their order across the change.' }),
  }

  async run(): Promise<NamespaceInit> {
    const { args, flags } = await this.parse(NsInit)
    const { initNamespace } = await import('../../lib/ns/init.js')
    const result = await initNamespace({ ...this.common(flags), namespace: chosenNamespace(args.namespace, flags.namespace), allowRemap: flags['allow-remap'] })
    this.log(renderNamespaceInit(result))
    return result
  }
}
