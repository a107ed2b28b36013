/**
 * Every service a command calls, behind one module: commands import it on use, so `--help` and
 * `--version` load none of it, and a command loads it as one bundle chunk rather than many small ones
 * (each file costs start-up time, and scripts call `wal produce` in loops).
 */
export { configFileYaml, effectiveConfig, listContexts, useContext, validateConfigFile } from './config/show.js'
export { consume } from './consume/consume.js'
export { auditLog, deadLetterStats, exportDeadLetters, listDeadLetters, purgeDeadLetters, replayDeadLetters, showDeadLetter } from './dlq/dlq.js'
export { explain, explainMutationOrTxn } from './explain/explain.js'
export { initNamespace } from './ns/init.js'
export { completionNames, listNamespaces, showNamespace } from './ns/ns.js'
export { produce } from './produce/produce.js'
export { tail } from './tail/tail.js'
export { resetOffsets, showOffsets } from './offsets/offsets.js'
export { listSkips, skip } from './skip/skip.js'
