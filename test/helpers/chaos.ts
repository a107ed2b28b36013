/**
 * A seeded nemesis run against wal's promise (Jepsen-style): writers produce hostile mutations on
 * colliding keys, sharded consumers (and the daemon) apply them to a kv and a file target while a
 * nemesis SIGKILLs, SIGSTOPs (past the lease TTL) and restarts them; then a drain, and a history check:
 *
 * - every mutation acked durable=true is applied by each target, or is in that target's DLQ with a reason;
 * - per key, the mutations of one writer are first applied in the order they were produced;
 * - key, headers and payload reach the file target and the DLQ byte for byte;
 * - the kv store ends with each key's newest write (createdAt, id) and nothing else: no duplicate
 *   or late apply changed an effect; a DLQ entry is filed once per target;
 * - (embedded) committed offsets and lease epochs never move back: a consumer frozen past its lease
 *   never commits under the owner that took over.
 *
 * (The kv store's history keeps no row for a first-try apply, so kv's order is checked by its end state.)
 *
 * The seed is printed; WAL_CHAOS_SEED=<n> replays the same choices (timings still vary).
 */
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

import { committedOffsets, kvItems, leaseRows } from './state.js'
import { jsonLines, type Sandbox } from './wal.js'

export function chaosSeed(): number {
  const fixed = process.env.WAL_CHAOS_SEED
  const seed = fixed !== undefined && fixed !== '' ? Number(fixed) >>> 0 : (Math.random() * 2 ** 32) >>> 0
  return seed
}

/** mulberry32: small, seeded, good enough to pick faults. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Keys that collide across writers, with bytes a terminal or a parser would trip on. */
export const CHAOS_KEYS = ['k0', 'ключ-ü', 'k\u001b[31mred\u001b[0m', 'a b\tc\nd', 'emoji-😀-\u202e', 'q"\\/\u0007']

const HOSTILE = ['\u001b[2J\u001b[H', 'é😀\u2028\u2029', '\u0000\u0007\b\f', '"\\/', '\u202etxt', '%s%n{{x}}', '\r\n', '\ud83d\ude00']

export interface Spec {
  writer: number
  seq: number
  key: string
  headers: Record<string, string>
  /** The payload's exact JSON text as sent. */
  raw: string
  /** A kv operation (else the kv target must dead-letter it as fatal). */
  op: boolean
}

export interface AckRecord {
  spec: Spec
  id: string
  durable: true | false | 'unknown'
  /** Where the log put it (embedded, Kafka; not SQS). */
  offset?: number
}

/** One writer's mutations: mostly kv puts with hostile strings, some non-operations, a few large or deep. */
export function writerSpecs(writer: number, count: number, random: () => number, maxPayloadBytes: number): Spec[] {
  const specs: Spec[] = []
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  for (let seq = 0; seq < count; seq++) {
    const key = pick(CHAOS_KEYS)
    const headers: Record<string, string> = { 'x-writer': String(writer) }
    if (random() < 0.3) headers[`h-${pick(HOSTILE)}`] = pick(HOSTILE)
    const s = pick(HOSTILE)
    const roll = random()
    let raw: string
    let op = true
    if (roll < 0.06) {
      op = false
      raw = `{"not":"an operation", "w":${writer},"seq":${seq},"s":${JSON.stringify(s)}}`
    } else {
      let extra = ''
      if (roll < 0.09) extra = `,"big":${JSON.stringify('x'.repeat(Math.floor(maxPayloadBytes * (0.3 + random() * 0.4))))}`
      else if (roll < 0.12) extra = `,"deep":${'['.repeat(58)}1${']'.repeat(58)}`
      else if (roll < 0.2) extra = `,"esc":"\\u00e9\\/\\ud83d\\ude00\\u001b"  ,"n":9007199254740993, "f":1.10`
      raw = `{"op":"put","table":"t","key":{"id":${JSON.stringify(key)}},"item":{"w":${writer},"seq":${seq},"s":${JSON.stringify(s)}${extra}}}`
    }
    specs.push({ writer, seq, key, headers, raw, op })
  }
  // One payload at the namespace's limit exactly (a non-operation, so the kv store stays small).
  const room = maxPayloadBytes - Buffer.byteLength(`{"not":"an operation","w":${writer},"seq":${count},"pad":""}`)
  specs.push({ writer, seq: count, key: pick(CHAOS_KEYS), headers: { 'x-writer': String(writer) }, raw: `{"not":"an operation","w":${writer},"seq":${count},"pad":"${'y'.repeat(room)}"}`, op: false })
  return specs
}

export const lineOf = (s: Spec): string => `{"key":${JSON.stringify(s.key)},"headers":${JSON.stringify(s.headers)},"payload":${s.raw}}`

/** The exact text a file target / DLQ export line holds for this mutation. */
export const expectedText = (s: Spec): string =>
  `"key":${JSON.stringify(s.key)},"payload":${s.raw},"payloadEncoding":"json","headers":${JSON.stringify(s.headers)}`

interface Proc {
  child: ChildProcess
  closed: Promise<void>
  stopped: boolean
  out: string
  err: string
}

function track(child: ChildProcess): Proc {
  const p: Proc = { child, closed: new Promise((resolve) => child.on('close', () => resolve())), stopped: false, out: '', err: '' }
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (p.out += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (p.err = (p.err + d).slice(-20_000)))
  child.stdin!.on('error', () => undefined)
  return p
}

export interface ChaosOptions {
  wal: Sandbox
  seed: number
  namespace: string
  /** Target names in the config: a kv and a file target (path). */
  kv: string
  file: { name: string; path: string }
  leaseTtlMs: number
  /** How long a frozen consumer stays frozen, at least (default 1.5 × the lease TTL). */
  pauseMs?: number
  writers: number
  perWriter: number
  maxPayloadBytes: number
  /** Consumer slots: extra args after `consume -n NS`, or 'daemon' for `wal daemon run`. */
  slots: Array<string[] | 'daemon'>
  /** Nemesis actions. */
  steps: number
  /** Embedded state is readable: also watch committed offsets and lease epochs. */
  embedded: boolean
  log(message: string): void
}

export interface ChaosResult {
  acks: AckRecord[]
  problems: string[]
  drainCode: number | null
  actions: string[]
}

/** Runs writers and consumers under the nemesis, drains, and returns what broke the promise. */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const random = rng(o.seed)
  const { wal, namespace: ns } = o
  const actions: string[] = []
  const problems: string[] = []
  const ttl = `${o.leaseTtlMs}ms`

  // Fencing watch (embedded): committed offsets and lease epochs never move back.
  const lastOffset = new Map<string, number>()
  const lastEpoch = new Map<string, number>()
  const watch = o.embedded
    ? setInterval(() => {
        try {
          for (const r of committedOffsets(wal.stateDir, ns)) {
            const id = `${r.target}/${r.partition}`
            const before = lastOffset.get(id)
            if (before !== undefined && r.next_offset < before) problems.push(`committed offset of ${id} moved back: ${before} -> ${r.next_offset}`)
            lastOffset.set(id, r.next_offset)
          }
          for (const r of leaseRows(wal.stateDir, ns)) {
            const id = `${r.target}/${r.partition}`
            const before = lastEpoch.get(id)
            if (before !== undefined && r.epoch < before) problems.push(`lease epoch of ${id} moved back: ${before} -> ${r.epoch}`)
            lastEpoch.set(id, r.epoch)
          }
        } catch {
          // busy: the next sample
        }
      }, 100)
    : undefined

  // Writers: stdin fed in small batches while the nemesis runs.
  const specsByWriter = Array.from({ length: o.writers }, (_, w) => writerSpecs(w, o.perWriter, rng(o.seed + 1 + w), o.maxPayloadBytes))
  const writerProcs: Proc[] = []
  const writersDone = specsByWriter.map(async (specs, w) => {
    const p = track(wal.spawn(['produce', '-n', ns, '--json']))
    writerProcs[w] = p
    const wr = rng(o.seed + 100 + w)
    for (let i = 0; i < specs.length; ) {
      const n = 1 + Math.floor(wr() * 25)
      const chunk = specs.slice(i, i + n).map(lineOf).join('\n') + '\n'
      i += n
      if (p.child.exitCode !== null || p.child.signalCode !== null) break
      p.child.stdin!.write(chunk)
      await sleep(20 + wr() * 150)
    }
    p.child.stdin!.end()
    await p.closed
  })

  // Consumers.
  const slots: Array<Proc | undefined> = []
  const start = (i: number): void => {
    const slot = o.slots[i]!
    const args = slot === 'daemon' ? ['daemon', 'run', '--port', '0'] : ['consume', '-n', ns, '--lease-ttl', ttl, '--concurrency', '4', ...slot]
    slots[i] = track(wal.spawn(args))
  }
  o.slots.forEach((_, i) => start(i))

  let writing = true
  void Promise.all(writersDone).then(() => (writing = false))
  let writerKilled = false
  let killedWriter: number | undefined
  for (let step = 0; step < o.steps || writing; step++) {
    if (step > o.steps + 400) throw new Error('the writers did not finish')
    await sleep(300 + random() * 1200)
    const i = Math.floor(random() * o.slots.length)
    const p = slots[i]!
    const roll = random()
    if (roll < 0.4) {
      actions.push(`SIGKILL slot ${i}`)
      p.child.kill('SIGKILL')
      await p.closed
      await sleep(random() * 500)
      start(i)
    } else if (roll < 0.75) {
      const ms = Math.floor((o.pauseMs ?? o.leaseTtlMs * 1.5) * (1 + random()))
      actions.push(`SIGSTOP slot ${i} for ${ms}ms`)
      p.child.kill('SIGSTOP')
      p.stopped = true
      await sleep(ms)
      p.child.kill('SIGCONT')
      p.stopped = false
    } else if (roll < 0.9) {
      actions.push(`SIGTERM slot ${i}`)
      p.child.kill('SIGTERM')
      const ended = await Promise.race([p.closed.then(() => true), sleep(60_000).then(() => false)])
      if (!ended) {
        problems.push(`slot ${i} (${JSON.stringify(o.slots[i])}) did not stop within 60 s of SIGTERM`)
        p.child.kill('SIGKILL')
        await p.closed
      }
      start(i)
    } else if (!writerKilled && writing) {
      writerKilled = true
      const w = Math.floor(random() * o.writers)
      killedWriter = w
      actions.push(`SIGKILL writer ${w}`)
      writerProcs[w]?.child.kill('SIGKILL')
    }
  }
  await Promise.all(writersDone)
  for (const p of slots) {
    if (p === undefined) continue
    p.child.kill('SIGCONT')
    p.child.kill('SIGKILL')
    await p.closed
  }
  o.log(`actions: ${actions.join('; ')}`)

  // Acks: only complete lines are acks a user saw.
  const acks: AckRecord[] = []
  writerProcs.forEach((p, w) => {
    const complete = p.out.slice(0, p.out.lastIndexOf('\n') + 1)
    for (const a of jsonLines<{ line: number; id?: string; durable: boolean | 'unknown'; error?: unknown; offset?: number }>(complete)) {
      const spec = specsByWriter[w]![a.line - 1]!
      if (a.durable === false) problems.push(`writer ${w} line ${a.line} was rejected: ${JSON.stringify(a.error)}`)
      else acks.push({ spec, id: a.id!, durable: a.durable, ...(typeof a.offset === 'number' ? { offset: a.offset } : {}) })
    }
  })

  // Drain.
  const linesBefore = existsSync(o.file.path) ? readFileSync(o.file.path, 'utf8').split('\n').length - 1 : 0
  o.log(`before the drain: file lines ${linesBefore}`)
  const drain = await wal.run(['consume', '-n', ns, '--until-idle', '--lease-ttl', ttl])
  if (drain.code !== 0 && drain.code !== 8) problems.push(`the drain exited ${drain.code}: ${drain.stderr.slice(-2000)}`)
  if (watch) clearInterval(watch)

  await gatherOutputs(o)
  if (killedWriter !== undefined) adoptUnacked(o, acks, specsByWriter[killedWriter]!, problems)
  checkOutcome(o, acks, problems)
  o.log(`acks: ${acks.filter((a) => a.durable === true).length} durable, ${acks.filter((a) => a.durable === 'unknown').length} unknown; drain exit ${drain.code}; ` +
    `file lines: ${existsSync(o.file.path) ? readFileSync(o.file.path, 'utf8').split('\n').length - 1 : 0}; dlq entries: ${dlqExport.get(o)?.length}`)
  return { acks, problems, drainCode: drain.code, actions }
}

interface DlqLine {
  id: string
  failures: Array<{ target: string; message: string; errorClass: string }>
}

/**
 * A writer killed with SIGKILL can have had lines written that it never printed an ack for (killed
 * between the write and the ack). Such a line may land, but only as sent: each target line or DLQ entry
 * whose id no ack names must be one of the killed writer's unacked lines, byte for byte, under one id.
 * Those join the acks as `durable: 'unknown'`, so the order and kv checks count them like the others.
 */
function adoptUnacked(o: ChaosOptions, acks: AckRecord[], killedSpecs: Spec[], problems: string[]): void {
  const ids = new Set(acks.map((a) => a.id))
  const acked = new Set(acks.filter((a) => a.spec.writer === killedSpecs[0]?.writer).map((a) => a.spec.seq))
  const adopted = new Map<number, string>()
  const texts = [
    ...(existsSync(o.file.path) ? readFileSync(o.file.path, 'utf8').split('\n').filter((l) => l !== '') : []),
    ...(dlqExport.get(o) ?? []),
  ]
  for (const line of texts) {
    const id = (JSON.parse(line) as { id: string }).id
    if (ids.has(id)) continue
    const spec = killedSpecs.find((s) => !acked.has(s.seq) && line.includes(expectedText(s)))
    if (spec === undefined) continue // reported by checkOutcome as held without an ack
    const before = adopted.get(spec.seq)
    if (before !== undefined && before !== id) problems.push(`writer ${spec.writer} seq ${spec.seq} (never acked) landed under two ids: ${before}, ${id}`)
    if (before !== undefined) continue
    adopted.set(spec.seq, id)
    ids.add(id)
    acks.push({ spec, id, durable: 'unknown' })
  }
  if (adopted.size > 0) o.log(`${adopted.size} lines of killed writer ${killedSpecs[0]?.writer} landed without an ack`)
}

function checkOutcome(o: ChaosOptions, acks: AckRecord[], problems: string[]): void {
  const { wal, namespace: ns } = o
  const byId = new Map(acks.map((a) => [a.id, a]))
  if (byId.size !== acks.length) problems.push('two acks carry the same id')

  // File target: every line is a known mutation, byte for byte.
  const fileLines = existsSync(o.file.path) ? readFileSync(o.file.path, 'utf8').split('\n').filter((l) => l !== '') : []
  const fileSeen = new Set<string>()
  const fileFirst: string[] = []
  for (const line of fileLines) {
    const id = (JSON.parse(line) as { id: string }).id
    const ack = byId.get(id)
    if (ack === undefined) {
      problems.push(`the file target holds ${id}, which no writer was acked for`)
      continue
    }
    if (!line.includes(expectedText(ack.spec))) problems.push(`the file target altered ${id} (writer ${ack.spec.writer} seq ${ack.spec.seq}): ${line.slice(0, 300)}`)
    if (!fileSeen.has(id)) fileFirst.push(id)
    fileSeen.add(id)
  }

  // DLQ, per target.
  const dlqRun = readDlq(o)
  const dlq = new Map<string, DlqLine>()
  for (const { line, entry } of dlqRun) {
    const target = entry.failures.at(-1)?.target ?? '?'
    const k = `${target}/${entry.id}`
    if (dlq.has(k)) problems.push(`${entry.id} is filed twice in the DLQ of ${target}`)
    dlq.set(k, entry)
    const ack = byId.get(entry.id)
    if (ack === undefined) problems.push(`the DLQ holds ${entry.id}, which no writer was acked for`)
    else if (!line.includes(expectedText(ack.spec))) problems.push(`the DLQ altered ${entry.id}: ${line.slice(0, 300)}`)
    if (!entry.failures.at(-1)?.message) problems.push(`the DLQ entry of ${entry.id} gives no reason`)
  }

  // Every durable ack: applied by each target or dead-lettered there with a reason.
  for (const a of acks) {
    if (a.durable !== true) continue
    const where = `writer ${a.spec.writer} seq ${a.spec.seq} (${a.id})`
    if (!fileSeen.has(a.id) && !dlq.has(`${o.file.name}/${a.id}`)) problems.push(`${where}: acked durable, neither in the file target nor its DLQ`)
    if (a.spec.op && dlq.has(`${o.kv}/${a.id}`)) problems.push(`${where}: a valid put was dead-lettered by kv: ${dlq.get(`${o.kv}/${a.id}`)!.failures.at(-1)?.message}`)
    if (!a.spec.op && !dlq.has(`${o.kv}/${a.id}`)) {
      const elsewhere = dlqRun.filter((d) => d.entry.id === a.id).map((d) => JSON.stringify(d.entry.failures))
      problems.push(`${where}: a non-operation is not in kv's DLQ (DLQ entries of it: ${elsewhere.join(' | ') || 'none'})`)
    }
  }

  // Per key and writer, first applications follow produce order.
  const orderCheck = (name: string, ids: string[]): void => {
    const last = new Map<string, number>()
    for (const id of ids) {
      const a = byId.get(id)
      if (a === undefined) continue
      const k = `${a.spec.writer}/${a.spec.key}`
      const before = last.get(k)
      if (before !== undefined && a.spec.seq < before) problems.push(`${name}: key ${JSON.stringify(a.spec.key)} of writer ${a.spec.writer}: seq ${a.spec.seq} first applied after seq ${before}`)
      last.set(k, Math.max(before ?? -1, a.spec.seq))
    }
  }
  orderCheck(o.file.name, fileFirst)

  // Noted, not failed: the file target's last line of a key is the key's newest mutation in the log.
  // A consumer frozen past its lease can flush lines it applied before the freeze when it wakes, before
  // its commit is fenced off: at-least-once (documented) allows that duplicate, even behind newer lines.
  const lastLine = new Map<string, AckRecord>()
  for (const line of fileLines) {
    const a = byId.get((JSON.parse(line) as { id: string }).id)
    if (a) lastLine.set(a.spec.key, a)
  }
  for (const [key, last] of lastLine) {
    if (last.offset === undefined) continue
    const newer = acks.filter((a) => a.spec.key === key && a.offset !== undefined && a.offset > last.offset!)
    if (newer.length > 0) o.log(`note: the file target's last line of key ${JSON.stringify(key)} is offset ${last.offset} (writer ${last.spec.writer} seq ${last.spec.seq}), behind acked offset ${Math.max(...newer.map((a) => a.offset!))}`)
  }

  // kv: the effect of the newest write per key, by the store's version (createdAt, id).
  const created = createdAtOf(o)
  const candidates = acks.filter((a) => a.spec.op && (a.durable === true || fileSeen.has(a.id)))
  const winner = new Map<string, AckRecord>()
  for (const a of candidates) {
    const c = created.get(a.id)
    if (c === undefined) {
      if (a.durable === true) problems.push(`acked ${a.id} has no createdAt in the log`)
      continue
    }
    const w = winner.get(a.spec.key)
    if (w === undefined || c > created.get(w.id)! || (c === created.get(w.id)! && a.id > w.id)) winner.set(a.spec.key, a)
  }
  const rows = kvItems(wal.stateDir, ns)
  const seenKeys = new Set<string>()
  for (const row of rows) {
    const key = (JSON.parse(row.pk) as Array<[string, string]>)[0]![1]
    seenKeys.add(key)
    const w = winner.get(key)
    if (w === undefined) {
      problems.push(`kv holds key ${JSON.stringify(key)}, which no acked put wrote`)
      continue
    }
    if (row.mutation_id !== w.id) {
      const got = byId.get(row.mutation_id)
      problems.push(`kv key ${JSON.stringify(key)} holds ${row.mutation_id} (writer ${got?.spec.writer} seq ${got?.spec.seq}), expected the newest ${w.id} (writer ${w.spec.writer} seq ${w.spec.seq})`)
    }
    const item = JSON.parse(row.item ?? 'null') as { w?: number; seq?: number } | null
    if (item?.w !== byId.get(row.mutation_id)?.spec.writer || item?.seq !== byId.get(row.mutation_id)?.spec.seq) problems.push(`kv key ${JSON.stringify(key)}: the item is not that of ${row.mutation_id}`)
  }
  for (const key of winner.keys()) if (!seenKeys.has(key)) problems.push(`kv lacks key ${JSON.stringify(key)}`)

}

function readDlq(o: ChaosOptions): Array<{ line: string; entry: DlqLine }> {
  const out: Array<{ line: string; entry: DlqLine }> = []
  for (const line of dlqExport.get(o) ?? []) out.push({ line, entry: JSON.parse(line) as DlqLine })
  return out
}

function createdAtOf(o: ChaosOptions): Map<string, string> {
  return createdAts.get(o) ?? new Map()
}

const dlqExport = new WeakMap<ChaosOptions, string[]>()
const createdAts = new WeakMap<ChaosOptions, Map<string, string>>()

/** Micro-second sortable form of an ISO createdAt (…:19.469Z or …:19.469123Z). */
export function sortableTime(iso: string): string {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(iso)
  if (!m) return iso
  return `${m[1]}.${(m[2] ?? '').padEnd(6, '0')}`
}

/** Reads the DLQ export and the log's createdAt (from the file target and the DLQ, which carry them). */
export async function gatherOutputs(o: ChaosOptions): Promise<void> {
  const exported = await o.wal.run(['dlq', 'export', '-n', o.namespace])
  if (exported.code !== 0) throw new Error(`dlq export exited ${exported.code}: ${exported.stderr}`)
  const lines = exported.stdout.split('\n').filter((l) => l !== '')
  dlqExport.set(o, lines)
  const created = new Map<string, string>()
  const fileLines = existsSync(o.file.path) ? readFileSync(o.file.path, 'utf8').split('\n').filter((l) => l !== '') : []
  for (const line of [...fileLines, ...lines]) {
    const e = JSON.parse(line) as { id: string; createdAt: string }
    created.set(e.id, sortableTime(e.createdAt))
  }
  createdAts.set(o, created)
}
