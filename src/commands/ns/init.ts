import * as Args from '@oclif/core/args'

import { WalCommand } from '../../lib/cli/base-command.js'
import { renderNamespaceInit } from '../../lib/cli/render.js'
import type { NamespaceInit } from '../../lib/ns/init.js'

export default class NsInit extends WalCommand {
  static override summary = 'Create what a namespace needs (Kafka: its log, DLQ and state topics; SQS: its shard queues and DLQ) and report what exists.'
  static override description =
    'Safe to run again: what exists is left as it is and reported. On Kafka, the log topic gets the partitions, replicationFactor and retentionMs of the namespace; the DLQ topic keeps entries until replayed or purged. On SQS, it creates the DLQ, then one queue per shard with a redrive policy to it (maxReceiveCount), both kept 14 days (the most SQS keeps); an existing queue whose redrive policy differs is reported.'
  static override examples = ['<%= config.bin %> ns init orders', '<%= config.bin %> ns init orders --json']
  static override args = {
    namespace: Args.string({ description: 'Namespace to initialize.', default: 'default' }),
  }

  async run(): Promise<NamespaceInit> {
    const { args, flags } = await this.parse(NsInit)
    const { initNamespace } = await import('../../lib/services.js')
    const result = await initNamespace({ ...this.common(flags), namespace: args.namespace })
    this.log(renderNamespaceInit(result))
    return result
  }
}
