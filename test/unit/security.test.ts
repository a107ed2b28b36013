import type { IncomingMessage } from 'node:http'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { escapeControl, escapeLine } from '../../src/lib/cli/render.js'
import { resolveDaemonSettings } from '../../src/lib/config/daemon.js'
import { interpolateEnv } from '../../src/lib/config/interpolate.js'
import { redactSecrets, redactText } from '../../src/lib/config/redact.js'
import { searchStopDir } from '../../src/lib/config/search.js'
import { checkContentType, checkHost, checkListen, checkOrigin, checkToken } from '../../src/lib/daemon/gate.js'
import { compileWhere } from '../../src/lib/dlq/filter.js'

const request = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage
const settings = (daemon: Record<string, unknown> = {}) => resolveDaemonSettings(daemon, {})

describe('escapeControl', () => {
  it('shows C0, DEL, C1 and bidi overrides escaped, and keeps newlines and tabs', () => {
    expect(escapeControl('a\u001b[2Jb\u0007\r\u009b\u202e\n\tz')).toBe('a\\u001b[2Jb\\u0007\\r\\u009b\\u202e\n\tz')
    expect(escapeLine('a\nb\tc')).toBe('a\\nb\\tc')
    expect(escapeControl('plain ünïcode ✓')).toBe('plain ünïcode ✓')
  })
})

describe('the redaction rule', () => {
  it('hides secret keys, sensitive headers and URL user information, and nothing else', () => {
    const shown = redactSecrets({
      password: 'p',
      targets: [{ url: 'https://u:pw@h/x', headers: { 'x-auth': 'a', 'X-Api-Key': 'k', Cookie: 'c', 'x-team': 'ops', 'x-session-id': 's' } }],
      description: 'see http://ops@wiki/page',
    })
    expect(JSON.parse(JSON.stringify(shown))).toEqual({
      password: '<redacted>',
      targets: [{ url: 'https://<redacted>@h/x', headers: { 'x-auth': '<redacted>', 'X-Api-Key': '<redacted>', Cookie: '<redacted>', 'x-team': 'ops', 'x-session-id': '<redacted>' } }],
      description: 'see http://<redacted>@wiki/page',
    })
    expect(redactText('GET failed: Authorization: Bearer abc.def-123')).toBe('GET failed: Authorization: Bearer <redacted>')
  })

  it('hides the values of URL query parameters named like secrets, and keeps the others', () => {
    expect(redactText('https://h/x?token=abc&page=2&api_key=k1#top answered 500')).toBe('https://h/x?token=<redacted>&page=2&api_key=<redacted>#top answered 500')
    expect(redactText('http://h/?X-Amz-Signature=f00&X-Amz-Credential=AK%2F1&X-Amz-Date=20260101')).toBe('http://h/?X-Amz-Signature=<redacted>&X-Amz-Credential=<redacted>&X-Amz-Date=20260101')
    expect(JSON.parse(JSON.stringify(redactSecrets({ url: 'https://u:p@h/hook?sig=s3cr3t&v=1' })))).toEqual({ url: 'https://<redacted>@h/hook?sig=<redacted>&v=1' })
    expect(redactText('see https://wiki/page?id=7&lang=en')).toBe('see https://wiki/page?id=7&lang=en')
  })
})

describe('the daemon gate', () => {
  it('takes loopback names, IP addresses and allowed hosts in Host, and refuses other names', () => {
    for (const host of ['127.0.0.1:7460', 'localhost', '[::1]:80', '10.1.2.3:7460', 'api.localhost']) expect(checkHost(request({ host }), settings())).toBeNull()
    expect(checkHost(request({ host: 'evil.example:7460' }), settings())?.status).toBe(421)
    expect(checkHost(request({}), settings())?.status).toBe(400)
    expect(checkHost(request({ host: '[::1' }), settings())?.status).toBe(421)
    expect(checkHost(request({ host: 'WAL.internal:7460' }), settings({ allowedHosts: ['wal.internal'] }))).toBeNull()
  })

  it('refuses any Origin not allowed, a missing or wrong token, and bodies that are not JSON or NDJSON', () => {
    expect(checkOrigin(request({}), settings())).toBeNull()
    expect(checkOrigin(request({ origin: 'null' }), settings())?.status).toBe(403)
    expect(checkOrigin(request({ origin: 'https://ok.example' }), settings({ allowedOrigins: ['https://ok.example'] }))).toBeNull()
    expect(checkToken(request({ authorization: 'Bearer right-token' }), 'right-token')).toBeNull()
    expect(checkToken(request({ authorization: 'Bearer wrong-token' }), 'right-token')?.status).toBe(401)
    // The scheme in any case, as RFC 9110 has it; the token exactly.
    expect(checkToken(request({ authorization: 'bearer right-token' }), 'right-token')).toBeNull()
    expect(checkToken(request({ authorization: 'BEARER  right-token' }), 'right-token')).toBeNull()
    for (const authorization of ['Bearer Right-token', 'Basic right-token', 'right-token', 'Bearer', 'Bearer right-token ', 'Bearerright-token']) {
      expect(checkToken(request({ authorization }), 'right-token')?.status, authorization).toBe(401)
    }
    expect(checkToken(request({}), null)).toBeNull()
    expect(checkContentType(request({ 'content-type': 'application/json; charset=utf-8' }))).toBeNull()
    expect(checkContentType(request({ 'content-type': 'application/x-ndjson' }))).toBeNull()
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '']) expect(checkContentType(request({ 'content-type': type }))?.status).toBe(415)
  })

  it('lets the daemon listen without a token only on loopback, and beyond loopback only with TLS or when told', () => {
    expect(checkListen('127.0.0.1', settings())).toEqual([])
    expect(checkListen('127.0.0.1', settings({ auth: 'none' }))).toHaveLength(1)
    expect(() => checkListen('0.0.0.0', settings({ auth: 'none' }))).toThrow(/only on loopback/)
    expect(() => checkListen('0.0.0.0', settings())).toThrow(/without TLS/)
    expect(checkListen('0.0.0.0', settings({ allowPlainHttp: true }))).toHaveLength(1)
  })
})

describe('config loading', () => {
  it('stops the search at the project root, at $HOME, or (outside both) where it starts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wal-stop-'))
    try {
      mkdirSync(join(dir, 'home', 'proj', '.git'), { recursive: true })
      mkdirSync(join(dir, 'home', 'proj', 'src'), { recursive: true })
      mkdirSync(join(dir, 'home', 'loose', 'a'), { recursive: true })
      mkdirSync(join(dir, 'elsewhere', 'b'), { recursive: true })
      const home = join(dir, 'home')
      expect(searchStopDir(join(home, 'proj', 'src'), home)).toBe(join(home, 'proj'))
      expect(searchStopDir(join(home, 'loose', 'a'), home)).toBe(home)
      expect(searchStopDir(join(dir, 'elsewhere', 'b'), home)).toBe(join(dir, 'elsewhere', 'b'))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses values that contain themselves, and keys like __proto__ stay keys', () => {
    const circular: Record<string, unknown> = {}
    circular.self = circular
    expect(() => interpolateEnv({ namespaces: circular }, {}, (p) => `key "${p}"`)).toThrow(/key "namespaces.self": the value contains itself/)
    const out = interpolateEnv(JSON.parse('{"__proto__": {"polluted": true}}'), {}, (p) => p) as Record<string, unknown>
    expect(Object.keys(out)).toEqual(['__proto__'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

describe('--where', () => {
  it('fails closed on unknown names and bad regexes, and runs regexes in linear time', () => {
    expect(() => compileWhere('not (cdoe == "X")')).toThrow(/unknown field "cdoe"/)
    expect(() => compileWhere('nope(key)')).toThrow(/unknown function nope\(\)/)
    expect(() => compileWhere('key ~= "[a-"')).toThrow(/not a regular expression/)
    expect(() => compileWhere('key ~= key')).not.toThrow()
    expect(() => compileWhere('headers.x == "a" and payload.a.b == 1 and parked == false')).not.toThrow()
  })

  it('refuses an expression nested 10,000 deep or longer than 4096 characters with a message, not a stack overflow', () => {
    const deep = `${'('.repeat(10_000)}key == "a"${')'.repeat(10_000)}`
    expect(() => compileWhere(deep)).toThrow(/is too large: at most 4096 characters and 64 levels of parentheses/)
    expect(() => compileWhere(`key == "${'a'.repeat(5000)}"`)).toThrow(/is too large/)
    let message = ''
    try {
      compileWhere(deep)
    } catch (error) {
      message = (error as Error).message
    }
    expect(message.length).toBeLessThan(300)
    expect(() => compileWhere(`${'('.repeat(64)}key == "a"${')'.repeat(64)}`)).not.toThrow()
  })
})
