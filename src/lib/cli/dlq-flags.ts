/** The flags every `wal dlq` command shares: the namespace and the filters. */
import * as Flags from '@oclif/core/flags'

import type { DlqFilterOptions } from '../dlq/filter.js'
import { timeFlag } from './flags.js'

export const dlqFlags = {
  namespace: Flags.string({ char: 'n', description: 'Namespace whose DLQ to use (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }),
  key: Flags.string({ char: 'k', description: 'Only entries with this key.', helpGroup: 'FILTER' }),
  target: Flags.string({ description: 'Only entries of this target.', helpGroup: 'FILTER' }),
  'error-class': Flags.string({ description: 'Only entries of this error class.', options: ['retryable', 'fatal', 'infrastructure', 'poison', 'txn-aborted'], helpGroup: 'FILTER' }),
  since: timeFlag({ description: 'Only entries dead-lettered at or after this time (ISO, or a duration ago: 2h).', helpGroup: 'FILTER' }),
  until: timeFlag({ description: 'Only entries dead-lettered before this time.', helpGroup: 'FILTER' }),
  where: Flags.string({
    description: 'Only entries for which this expression holds, e.g. \'code == "HTTP_503" and attempts >= 3\', \'headers.source == "crm"\', \'message ~= "timeout"\'.',
    helpGroup: 'FILTER',
  }),
}

export function filterOptions(flags: { key?: string; target?: string; 'error-class'?: string; since?: string; until?: string; where?: string }): DlqFilterOptions {
  return { key: flags.key, target: flags.target, errorClass: flags['error-class'], since: flags.since, until: flags.until, where: flags.where }
}
