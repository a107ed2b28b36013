/**
 * Compression of Kafka record batches: none, gzip (built into kafkajs), snappy, lz4 and zstd, with
 * pure-JS codecs (snappyjs, lz4js) and a WebAssembly one (zstd), no native addons. Registered with
 * kafkajs when it loads, so batches are compressed as configured (`compression` on a Kafka namespace
 * or target) and compressed batches written by any client (Java, librdkafka/kcat) are read.
 */
import { createRequire } from 'node:module'

export const COMPRESSIONS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const
export type Compression = (typeof COMPRESSIONS)[number]

type KafkaModule = typeof import('kafkajs')
interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>
  decompress(buffer: Buffer): Promise<Buffer>
}

/** The codec number of a setting, as in a record batch's attributes (kafkajs's CompressionTypes). */
const CODEC_IDS: Record<Compression, number> = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 }

export function compressionType(_kafkajs: KafkaModule, compression: Compression): number {
  return CODEC_IDS[compression]
}

// Snappy as Kafka's Java client writes it: xerial's framing (a magic header, then length-prefixed
// blocks). Unframed snappy (librdkafka may write it) is read too.
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00])
const XERIAL_BLOCK = 32 * 1024

function snappyCodec(require: NodeJS.Require): Codec {
  const snappy = require('snappyjs') as { compress(b: Uint8Array): Uint8Array; uncompress(b: Uint8Array, max?: number): Uint8Array }
  return {
    async compress({ buffer }) {
      const parts: Buffer[] = [XERIAL_MAGIC, Buffer.from([0, 0, 0, 1, 0, 0, 0, 1])]
      for (let at = 0; at < buffer.length; at += XERIAL_BLOCK) {
        const block = Buffer.from(snappy.compress(buffer.subarray(at, at + XERIAL_BLOCK)))
        const length = Buffer.alloc(4)
        length.writeUInt32BE(block.length)
        parts.push(length, block)
      }
      return Buffer.concat(parts)
    },
    async decompress(buffer) {
      if (buffer.length < 16 || !buffer.subarray(0, 8).equals(XERIAL_MAGIC)) return Buffer.from(snappy.uncompress(buffer))
      const parts: Buffer[] = []
      for (let at = 16; at < buffer.length; ) {
        const length = buffer.readUInt32BE(at)
        parts.push(Buffer.from(snappy.uncompress(buffer.subarray(at + 4, at + 4 + length))))
        at += 4 + length
      }
      return Buffer.concat(parts)
    },
  }
}

/**
 * LZ4 in the frame format, written as Kafka's Java client writes it: independent 64 KiB blocks (the
 * brokers refuse frames whose blocks depend on each other, which lz4js's own frames do), no checksums.
 * Any frame is read (lz4js).
 */
const LZ4_MAGIC = 0x184d2204
const LZ4_BLOCK = 64 * 1024

interface Lz4js {
  compressBound(n: number): number
  compressBlock(src: Uint8Array, dst: Uint8Array, sIndex: number, sLength: number, hashTable: Uint32Array): number
  decompress(b: Uint8Array): Uint8Array
}

function lz4Codec(require: NodeJS.Require): Codec {
  const lz4 = require('lz4js') as Lz4js
  const xxh32 = (require('lz4js/xxh32.js') as { hash(seed: number, src: Uint8Array, index: number, length: number): number }).hash
  return {
    async compress({ buffer }) {
      const header = Buffer.alloc(7)
      header.writeUInt32LE(LZ4_MAGIC, 0)
      header[4] = 0x60 // version 01, blocks independent
      header[5] = 4 << 4 // blocks of at most 64 KiB
      header[6] = (xxh32(0, header, 4, 2) >> 8) & 0xff
      const parts: Buffer[] = [header]
      const out = Buffer.alloc(lz4.compressBound(LZ4_BLOCK))
      for (let at = 0; at < buffer.length; at += LZ4_BLOCK) {
        const block = Uint8Array.prototype.slice.call(buffer, at, at + LZ4_BLOCK)
        const size = lz4.compressBlock(block, out, 0, block.length, new Uint32Array(1 << 16))
        const length = Buffer.alloc(4)
        if (size === 0 || size >= block.length) {
          length.writeUInt32LE((0x80000000 | block.length) >>> 0)
          parts.push(length, Buffer.from(block))
        } else {
          length.writeUInt32LE(size)
          parts.push(length, Buffer.from(out.subarray(0, size)))
        }
      }
      parts.push(Buffer.alloc(4)) // the end mark
      return Buffer.concat(parts)
    },
    async decompress(buffer) {
      return Buffer.from(lz4.decompress(buffer))
    },
  }
}

/** zstd, as WebAssembly (loaded on first use). A frame that does not say its size gets growing room. */
function zstdCodec(require: NodeJS.Require): Codec {
  const zstd = require('@bokuweb/zstd-wasm') as {
    init(): Promise<void>
    compress(b: Uint8Array, level?: number): Uint8Array
    decompress(b: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array
  }
  let ready: Promise<void> | undefined
  const init = (): Promise<void> => (ready ??= zstd.init())
  return {
    async compress({ buffer }) {
      await init()
      return Buffer.from(zstd.compress(buffer, 3))
    },
    async decompress(buffer) {
      await init()
      for (let room = 1 << 20; ; room *= 4) {
        try {
          return Buffer.from(zstd.decompress(buffer, { defaultHeapSize: room }))
        } catch (error) {
          if (room >= 1 << 28) throw error
        }
      }
    },
  }
}

let registered = false

/** Gives kafkajs the snappy, lz4 and zstd codecs (gzip is its own). */
export function registerCodecs(): void {
  if (registered) return
  registered = true
  const require = createRequire(import.meta.url)
  // The registry kafkajs's encoder and decoder look codecs up in (an ESM import does not show it).
  const codecs = (require('kafkajs') as { CompressionCodecs: Record<number, () => Codec> }).CompressionCodecs
  let snappy: Codec | undefined
  let lz4: Codec | undefined
  let zstd: Codec | undefined
  codecs[CODEC_IDS.snappy] = () => (snappy ??= snappyCodec(require))
  codecs[CODEC_IDS.lz4] = () => (lz4 ??= lz4Codec(require))
  codecs[CODEC_IDS.zstd] = () => (zstd ??= zstdCodec(require))
}
