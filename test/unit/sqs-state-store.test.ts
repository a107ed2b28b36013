// The SQS namespace's state store: large payloads as ordered chunks named by their SHA-256, transaction
// parts and markers, per-target progress, aborts, and forgetting what no message can refer to.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { SqsStateStore, STORE_CHUNK_BYTES } from '../../src/lib/log/sqs/state-store.js'

let dir: string
let store: SqsStateStore
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wal-sqs-state-'))
  store = SqsStateStore.open(SqsStateStore.pathOf(dir, 'orders'), true)!
})
afterEach(() => {
  store.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('the SQS state store', () => {
  it('says which file cannot be opened, and why, as a backend error (exit 5) rather than a crash', () => {
    writeFileSync(join(dir, 'blocked'), '')
    expect(() => SqsStateStore.open(join(dir, 'blocked', 'sqs-state', 'orders.sqlite'), true)).toThrow(
      expect.objectContaining({ name: 'BackendUnavailableError', message: expect.stringMatching(/cannot open the SQS namespace's state store .*blocked/) }),
    )
  })

  it('is not created by a reader: a namespace that never stored anything has none', () => {
    expect(SqsStateStore.open(SqsStateStore.pathOf(dir, 'other'), false)).toBeUndefined()
  })

  it('gives a payload back byte-exact from its chunks, and stores one payload once', () => {
    const value = randomBytes(STORE_CHUNK_BYTES * 2 + 17)
    const { sha, chunks } = store.putPayload(value, 1)
    expect(chunks).toBe(3)
    expect(store.putPayload(value, 2)).toEqual({ sha, chunks })
    const found = store.getPayload(sha, value.length)
    expect('value' in found && found.value.equals(value)).toBe(true)
  })

  it('says why a payload cannot be put together: unknown, above maxPayloadBytes, a chunk missing or damaged', () => {
    expect(store.getPayload('0'.repeat(64), 10)).toEqual({ why: expect.stringMatching(/holds no payload/) })
    const value = randomBytes(STORE_CHUNK_BYTES + 1)
    const { sha } = store.putPayload(value, 1)
    expect(store.getPayload(sha, 100)).toEqual({ why: expect.stringMatching(/above the namespace's maxPayloadBytes/) })
    const db = (store as unknown as { db: import('node:sqlite').DatabaseSync }).db
    db.prepare('UPDATE payload_chunks SET value = ? WHERE sha = ? AND idx = 1').run(Buffer.from([value.at(-1)! ^ 1]), sha)
    expect(store.getPayload(sha, value.length)).toEqual({ why: expect.stringMatching(/SHA-256/) })
    db.prepare('DELETE FROM payload_chunks WHERE sha = ? AND idx = 0').run(sha)
    expect(store.getPayload(sha, value.length)).toEqual({ why: 'chunk 0 of 2 is missing from the state store' })
    // Stored again whole, it is whole again.
    store.putPayload(value, 2)
    expect('value' in store.getPayload(sha, value.length)).toBe(true)
  })

  it('numbers parts without a sequence number after those stored, and commits only what adds up', () => {
    expect(store.putParts([{ txn: 't', seq: 0, envelope: 'a', partition: 0 }, { txn: 't', seq: -1, envelope: 'b', partition: 0 }], 1000, 60_000)).toEqual([undefined, undefined])
    expect(store.putParts([{ txn: 't', seq: -1, envelope: 'c', partition: 0 }], 1001, 60_000)).toEqual([undefined])
    expect(store.transaction('t')!.parts).toEqual([
      { seq: 0, envelope: 'a' },
      { seq: 1, envelope: 'b' },
      { seq: 2, envelope: 'c' },
    ])
    expect(store.commit('t', 4, 'm', 1002)).toEqual({ why: expect.stringMatching(/closes 4 parts, but the state store holds 3/) })
    expect(store.commit('none', 1, 'm', 1002)).toEqual({ why: expect.stringMatching(/has no parts/) })
    expect(store.commit('t', 3, 'm', 1002)).toEqual({ parts: 3 })
    expect(store.putParts([{ txn: 't', seq: 3, envelope: 'd', partition: 0 }], 1003, 60_000)[0]).toMatch(/already committed/)
    store.setProgress('kv', 't', 1, false, 1004)
    store.setProgress('kv', 't', 0, false, 1005)
    expect(store.progress('kv', 't')).toMatchObject({ appliedSeq: 1, state: 'applying' })
  })

  it('aborts a transaction with no marker within the timeout once, for each target, and refuses it afterwards', () => {
    store.putParts([{ txn: 'late', seq: 0, envelope: 'a', partition: 1 }], 1000, 5000)
    expect(store.abortExpired('kv', 5000, 5000)).toEqual([])
    expect(store.abortExpired('kv', 7000, 5000)).toEqual([{ id: 'late', partCount: 1, openedAtMs: 1000, partition: 1 }])
    expect(store.abortExpired('kv', 8000, 5000)).toEqual([])
    expect(store.abortExpired('api', 8000, 5000)).toHaveLength(1)
    expect(store.commit('late', 1, 'm', 9000)).toEqual({ why: expect.stringMatching(/aborted/) })
    expect(store.received('late', 9000)!.state).toBe('aborted')
  })

  it('forgets payloads and finished transactions last used before the cut, and keeps the rest', () => {
    const old = store.putPayload(Buffer.from('old'), 1000)
    const reused = store.putPayload(Buffer.from('reused'), 1000)
    store.putPayload(Buffer.from('reused'), 5000)
    store.putParts([{ txn: 'done', seq: 0, envelope: 'a', partition: 0 }, { txn: 'open', seq: 0, envelope: 'a', partition: 0 }], 1000, 60_000)
    store.commit('done', 1, 'm', 1000)
    expect(store.prune(2000)).toEqual({ payloads: 1, transactions: 1 })
    expect(store.getPayload(old.sha, 10)).toEqual({ why: expect.stringMatching(/holds no payload/) })
    expect('value' in store.getPayload(reused.sha, 10)).toBe(true)
    expect(store.transaction('done')).toBeUndefined()
    expect(store.transaction('open')!.parts).toHaveLength(1)
  })
})
