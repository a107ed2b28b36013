/**
 * A cheap pre-scan of JSON text, run before JSON.parse on everything that enters wal: it bounds the
 * nesting depth (so no input can make a parser, a stringifier or a target recurse without bound) and
 * finds where a value sits in the text, so a payload is kept as the exact text it arrived as (numbers of
 * any size and precision, whitespace, escapes) instead of being parsed and printed again.
 *
 * It does not validate: JSON.parse does that afterwards, on text already known to be shallow.
 */

/** Deepest nesting of arrays and objects wal takes in a payload (the envelope around it not counted). */
export const MAX_PAYLOAD_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

/** Why a text was refused by the scan, and where (a character index). */
export class JsonScanError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message)
  }
}

/** Index of the quote that closes the string opened at `open`; -1 when it is not closed. */
function stringEnd(text: string, open: number): number {
  let at = open
  for (;;) {
    at = text.indexOf('"', at + 1)
    if (at === -1) return -1
    // Escaped when preceded by an odd number of backslashes.
    let slashes = 0
    for (let b = at - 1; text.charCodeAt(b) === BACKSLASH; b--) slashes++
    if (slashes % 2 === 0) return at
  }
}

/** Where a top-level field's value sits: [start, end) in the text, or absent. */
export interface ValueSpan {
  start: number
  end: number
}

/**
 * Scans one JSON text whose top-level value is (normally) an object. Throws JsonScanError when it nests
 * deeper than `maxDepth` below that object. Returns the span of the top-level field named `field`
 * (the last one, as JSON.parse keeps the last of repeated names), or undefined.
 */
export function scanObjectField(text: string, field: string, maxDepth = MAX_PAYLOAD_DEPTH + 1): ValueSpan | undefined {
  const n = text.length
  let depth = 0
  let span: ValueSpan | undefined
  // The field's value is being read: it ends at the next "," or "}" at depth 1.
  let valueStart = -1
  let lastSolid = -1
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const end = stringEnd(text, i)
      if (end === -1) return span // not closed: JSON.parse says why
      if (depth === 1 && valueStart === -1) {
        // At the top level, a string followed by ":" is a field name.
        let next = end + 1
        while (next < n && isSpace(text.charCodeAt(next))) next++
        if (text.charCodeAt(next) === COLON && nameIs(text, i, end, field)) {
          let start = next + 1
          while (start < n && isSpace(text.charCodeAt(start))) start++
          valueStart = start
          i = start - 1
          continue
        }
      }
      i = end
      lastSolid = end
      continue
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++
      if (depth > maxDepth) {
        throw new JsonScanError(`nested more than ${maxDepth - 1} levels deep (the limit for a payload)`, i)
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth === 1 && valueStart !== -1) {
        span = { start: valueStart, end: lastSolid + 1 }
        valueStart = -1
      }
      depth--
    } else if (c === COMMA && depth === 1 && valueStart !== -1) {
      span = { start: valueStart, end: lastSolid + 1 }
      valueStart = -1
    } else if (isSpace(c)) continue
    lastSolid = i
  }
  return span
}

function nameIs(text: string, open: number, close: number, name: string): boolean {
  if (close - open - 1 === name.length && text.startsWith(name, open + 1)) return true
  // A name spelled with escapes ("pay\u006coad") is the same name to JSON.parse.
  if (text.indexOf('\\', open) > close || text.indexOf('\\', open) === -1) return false
  try {
    return JSON.parse(text.slice(open, close + 1)) === name
  } catch {
    return false
  }
}

/**
 * The items of a JSON body: each element's text when it is an array, else the whole text. Throws
 * JsonScanError when it nests deeper than `maxDepth`.
 */
export function splitTopLevelArray(text: string, maxDepth = MAX_PAYLOAD_DEPTH + 2): string[] | undefined {
  const n = text.length
  let first = 0
  while (first < n && isSpace(text.charCodeAt(first))) first++
  if (text.charCodeAt(first) !== OPEN_ARRAY) return undefined
  const items: string[] = []
  let depth = 0
  let itemStart = -1
  let lastSolid = -1
  for (let i = first; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const end = stringEnd(text, i)
      if (end === -1) break
      if (depth === 1 && itemStart === -1) itemStart = i
      i = end
      lastSolid = end
      continue
    }
    if (isSpace(c)) continue
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth === 1 && itemStart === -1) itemStart = i
      depth++
      if (depth > maxDepth) throw new JsonScanError(`nested more than ${maxDepth - 2} levels deep in a payload`, i)
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth === 1 && itemStart !== -1) {
        items.push(text.slice(itemStart, lastSolid + 1))
        itemStart = -1
      }
      depth--
    } else if (c === COMMA && depth === 1) {
      if (itemStart !== -1) items.push(text.slice(itemStart, lastSolid + 1))
      itemStart = -1
    } else if (depth === 1 && itemStart === -1) itemStart = i
    lastSolid = i
  }
  return items
}

/** The deepest nesting in a JSON text, stopping early past `limit` (returns limit + 1 then). */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0
  let deepest = 0
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const end = stringEnd(text, i)
      if (end === -1) return deepest
      i = end
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++
      if (depth > deepest) {
        deepest = depth
        if (deepest > limit) return deepest
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--
  }
  return deepest
}

/** Byte offset of the first byte that is not valid UTF-8, or -1 when all of them are. */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const n = bytes.length
  let i = 0
  while (i < n) {
    const b = bytes[i]!
    if (b < 0x80) {
      i++
      continue
    }
    // Continuation bytes needed, and the smallest code point that many may encode (no overlong forms).
    const need = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : 0
    if (need === 0) return i
    const min = need === 1 ? 0x80 : need === 2 ? 0x800 : 0x10000
    if (i + need >= n) return i
    let cp = b & (0x3f >> need)
    for (let k = 1; k <= need; k++) {
      const cont = bytes[i + k]
      if (cont === undefined || (cont & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (cont & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i
    i += need + 1
  }
  return -1
}

// The state of isJsonWithin's one pass (module-level: no closure or object per call on the read path).
let src = ''
let pos = 0
let depthLimit = 0
/** The text has no backslash and no control character: a string in it ends at the next quote. */
let plainText = false

// eslint-disable-next-line no-control-regex
const ESCAPE_OR_CONTROL = /[\\\u0000-\u001f]/

function skipSpace(): void {
  for (;;) {
    const c = src.charCodeAt(pos)
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++
    else return
  }
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

/** A string at `pos` (its opening quote); leaves `pos` after the closing quote. */
function scanString(): boolean {
  // Locals, not the module's state, in the loop: this runs over most characters of every line produced.
  const text = src
  let at = pos + 1
  if (plainText) {
    // Nothing in the text to check character by character: found at native speed.
    const end = text.indexOf('"', at)
    if (end === -1) return false
    pos = end + 1
    return true
  }
  for (;;) {
    const c = text.charCodeAt(at)
    if (c === QUOTE) {
      pos = at + 1
      return true
    }
    // Also the end of the text (NaN): not a string.
    if (!(c >= 0x20)) return false
    if (c === BACKSLASH) {
      const e = text.charCodeAt(at + 1)
      // " \ / b f n r t
      if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) at += 2
      else if (e === 0x75 && isHex(text.charCodeAt(at + 2)) && isHex(text.charCodeAt(at + 3)) && isHex(text.charCodeAt(at + 4)) && isHex(text.charCodeAt(at + 5))) at += 6
      else return false
    } else at++
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

function scanNumber(): boolean {
  if (src.charCodeAt(pos) === 0x2d) pos++
  const first = src.charCodeAt(pos)
  if (first === 0x30) pos++
  else if (first >= 0x31 && first <= 0x39) while (isDigit(src.charCodeAt(++pos)));
  else return false
  if (src.charCodeAt(pos) === 0x2e) {
    if (!isDigit(src.charCodeAt(++pos))) return false
    while (isDigit(src.charCodeAt(++pos)));
  }
  const e = src.charCodeAt(pos)
  if (e === 0x65 || e === 0x45) {
    const sign = src.charCodeAt(++pos)
    if (sign === 0x2b || sign === 0x2d) pos++
    if (!isDigit(src.charCodeAt(pos))) return false
    while (isDigit(src.charCodeAt(++pos)));
  }
  return true
}

function scanWord(word: string): boolean {
  if (!src.startsWith(word, pos)) return false
  pos += word.length
  return true
}

/** A value at `pos` (after any space) inside `depth` containers. */
function scanValue(depth: number): boolean {
  skipSpace()
  const c = src.charCodeAt(pos)
  if (c === QUOTE) return scanString()
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    if (depth + 1 > depthLimit) return false
    const object = c === OPEN_OBJECT
    const close = object ? CLOSE_OBJECT : CLOSE_ARRAY
    pos++
    skipSpace()
    if (src.charCodeAt(pos) === close) {
      pos++
      return true
    }
    for (;;) {
      if (object) {
        skipSpace()
        if (src.charCodeAt(pos) !== QUOTE || !scanString()) return false
        skipSpace()
        if (src.charCodeAt(pos) !== COLON) return false
        pos++
      }
      if (!scanValue(depth + 1)) return false
      skipSpace()
      const next = src.charCodeAt(pos++)
      if (next === close) return true
      if (next !== COMMA) return false
    }
  }
  if (c === 0x74) return scanWord('true')
  if (c === 0x66) return scanWord('false')
  if (c === 0x6e) return scanWord('null')
  return scanNumber()
}

/**
 * Whether JSON.parse would accept the text and it nests at most `maxDepth` arrays and objects deep: one
 * pass that builds nothing (the read path checks every stored payload this way, and parsing each into
 * objects only to drop them cost a consumer a tenth of its time, and its garbage collector more).
 * False for anything else; the caller then finds out why the slow way.
 *
 * A loop with its state in locals and the open containers on a small stack, not scanValue's recursion
 * over the module's state: this runs once per record a consumer reads, and was a tenth of its CPU.
 */
export function isJsonWithin(text: string, maxDepth: number): boolean {
  const stack = maxDepth < OPEN_STACK.length ? OPEN_STACK : new Uint8Array(maxDepth + 1)
  const end = text.length
  scanPlain = !ESCAPE_OR_CONTROL.test(text)
  let i = 0
  let depth = 0
  let c: number
  for (;;) {
    // A value at i, after any space.
    c = text.charCodeAt(i)
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i)
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth >= maxDepth) return false
      const object = c === OPEN_OBJECT
      c = text.charCodeAt(++i)
      while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i)
      if (c === (object ? CLOSE_OBJECT : CLOSE_ARRAY)) i++
      else {
        stack[depth++] = object ? 1 : 0
        if (object) {
          i = memberValueAt(text, i)
          if (i < 0) return false
        }
        continue
      }
    } else if (c === QUOTE) {
      i = plainStringEnd(text, i)
      if (i < 0) return false
    } else if (c === 0x74) {
      if (!text.startsWith('true', i)) return false
      i += 4
    } else if (c === 0x66) {
      if (!text.startsWith('false', i)) return false
      i += 5
    } else if (c === 0x6e) {
      if (!text.startsWith('null', i)) return false
      i += 4
    } else {
      i = numberEnd(text, i)
      if (i < 0) return false
    }
    // After a whole value: close what it ends, or go on to the next element or member.
    for (;;) {
      c = text.charCodeAt(i)
      while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i)
      if (depth === 0) return i === end
      const object = stack[depth - 1] === 1
      if (c === COMMA) {
        i++
        if (object) {
          c = text.charCodeAt(i)
          while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i)
          i = memberValueAt(text, i)
          if (i < 0) return false
        }
        break
      }
      if (c !== (object ? CLOSE_OBJECT : CLOSE_ARRAY)) return false
      i++
      depth--
    }
  }
}

/** Whether the text isJsonWithin scans has no backslash and no control character: a string ends at the next quote. */
let scanPlain = false

/** isJsonWithin's stack of open containers (1: object, 0: array), for the usual depths. */
const OPEN_STACK = new Uint8Array(MAX_PAYLOAD_DEPTH + 2)

/** A member's name at `at` (its opening quote), then a colon: the index after the colon, or -1. */
function memberValueAt(text: string, at: number): number {
  if (text.charCodeAt(at) !== QUOTE) return -1
  let i = plainStringEnd(text, at)
  if (i < 0) return -1
  let c = text.charCodeAt(i)
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i)
  return c === COLON ? i + 1 : -1
}

/** The index after the string opened at `open` (a quote), or -1 when it is not a JSON string. */
function plainStringEnd(text: string, open: number): number {
  if (scanPlain) {
    const close = text.indexOf('"', open + 1)
    return close === -1 ? -1 : close + 1
  }
  let at = open + 1
  for (;;) {
    const c = text.charCodeAt(at)
    if (c === QUOTE) return at + 1
    // Also the end of the text (NaN): not a string.
    if (!(c >= 0x20)) return -1
    if (c === BACKSLASH) {
      const e = text.charCodeAt(at + 1)
      // " \ / b f n r t
      if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) at += 2
      else if (e === 0x75 && isHex(text.charCodeAt(at + 2)) && isHex(text.charCodeAt(at + 3)) && isHex(text.charCodeAt(at + 4)) && isHex(text.charCodeAt(at + 5))) at += 6
      else return -1
    } else at++
  }
}

/** The index after the number at `at`, or -1 when there is none. */
function numberEnd(text: string, at: number): number {
  let i = at
  if (text.charCodeAt(i) === 0x2d) i++
  let c = text.charCodeAt(i)
  if (c === 0x30) c = text.charCodeAt(++i)
  else if (c >= 0x31 && c <= 0x39) {
    do c = text.charCodeAt(++i)
    while (c >= 0x30 && c <= 0x39)
  } else return -1
  if (c === 0x2e) {
    c = text.charCodeAt(++i)
    if (!(c >= 0x30 && c <= 0x39)) return -1
    do c = text.charCodeAt(++i)
    while (c >= 0x30 && c <= 0x39)
  }
  if (c === 0x65 || c === 0x45) {
    c = text.charCodeAt(++i)
    if (c === 0x2b || c === 0x2d) c = text.charCodeAt(++i)
    if (!(c >= 0x30 && c <= 0x39)) return -1
    do c = text.charCodeAt(++i)
    while (c >= 0x30 && c <= 0x39)
  }
  return i
}

/** Where the parts of a line of the common shape sit (see scanKeyPayloadLine). */
export interface KeyPayloadSpans {
  /** The key's string, quotes included: [keyStart, keyEnd); keyStart is -1 when the line has no key. */
  keyStart: number
  keyEnd: number
  /** The payload's exact text: [payloadStart, payloadEnd). */
  payloadStart: number
  payloadEnd: number
}

function plainName(start: number, end: number, name: string): boolean {
  return end - start === name.length && src.startsWith(name, start)
}

/**
 * The shape nearly every `wal produce` line has — an object of a "payload" (any JSON value nesting at
 * most `maxDepth` arrays and objects) and optionally a "key" string, each once, names written plainly —
 * checked in one pass that builds nothing, as isJsonWithin checks a payload: what it accepts,
 * JSON.parse accepts and reads as those two fields. Returns where they are; undefined for any other
 * line, valid or not, which the caller then reads the ordinary way (parsing it, and wording the error).
 */
export function scanKeyPayloadLine(text: string, maxDepth: number): KeyPayloadSpans | undefined {
  src = text
  pos = 0
  depthLimit = maxDepth
  plainText = !ESCAPE_OR_CONTROL.test(text)
  try {
    skipSpace()
    if (src.charCodeAt(pos) !== OPEN_OBJECT) return undefined
    pos++
    let keyStart = -1
    let keyEnd = -1
    let payloadStart = -1
    let payloadEnd = -1
    for (;;) {
      skipSpace()
      if (src.charCodeAt(pos) !== QUOTE) return undefined
      const nameStart = pos + 1
      if (!scanString()) return undefined
      const isKey = plainName(nameStart, pos - 1, 'key')
      if (!isKey && !plainName(nameStart, pos - 1, 'payload')) return undefined
      skipSpace()
      if (src.charCodeAt(pos) !== COLON) return undefined
      pos++
      skipSpace()
      if (isKey) {
        if (keyStart !== -1 || src.charCodeAt(pos) !== QUOTE) return undefined
        keyStart = pos
        if (!scanString()) return undefined
        keyEnd = pos
      } else {
        if (payloadStart !== -1) return undefined
        payloadStart = pos
        if (!scanValue(0)) return undefined
        payloadEnd = pos
      }
      skipSpace()
      const next = src.charCodeAt(pos++)
      if (next === CLOSE_OBJECT) break
      if (next !== COMMA) return undefined
    }
    skipSpace()
    if (pos !== text.length || payloadStart === -1) return undefined
    return { keyStart, keyEnd, payloadStart, payloadEnd }
  } finally {
    src = ''
    plainText = false
  }
}
