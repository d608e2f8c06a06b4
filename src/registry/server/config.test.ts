import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseListenAddress, parseRegistryServerConfig, type RegistryServerFlags } from './config.js';

function parse(text: string, flags: RegistryServerFlags = {}, env: NodeJS.ProcessEnv = {}) {
  return parseRegistryServerConfig(text, { source: 'config.yml', flags, env, defaultRoot: '/var/lib/x' });
}

test('defaults: :5000, filesystem at the default root, deletes on, no auth', () => {
  const config = parse('');
  assert.deepEqual(config.listen, { host: '0.0.0.0', port: 5000 });
  assert.deepEqual(config.storage, { driver: 'filesystem', root: '/var/lib/x' });
  assert.equal(config.deleteEnabled, true);
  assert.deepEqual(config.auth, { kind: 'none' });
  assert.equal(config.anonymousRead, false);
  assert.equal(config.accessLog, true);
  assert.equal(config.gc.intervalMs, undefined);
  assert.equal(config.gc.gracePeriodMs, 3_600_000);
});

test("distribution's config.yml is read as it is", () => {
  const config = parse(
    [
      'version: 0.1',
      'log:',
      '  accesslog:',
      '    disabled: true',
      '  fields:',
      '    service: registry',
      'storage:',
      '  filesystem:',
      '    rootdirectory: /srv/registry',
      '  delete:',
      '    enabled: false',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: true',
      '      age: 48h',
      'http:',
      '  addr: 127.0.0.1:5001',
      '  headers:',
      '    X-Content-Type-Options: [nosniff]',
      '  tls:',
      '    certificate: /certs/domain.crt',
      '    key: /certs/domain.key',
      'auth:',
      '  htpasswd:',
      '    realm: basic-realm',
      '    path: /auth/htpasswd',
    ].join('\n'),
  );
  assert.deepEqual(config.listen, { host: '127.0.0.1', port: 5001 });
  assert.deepEqual(config.storage, { driver: 'filesystem', root: '/srv/registry' });
  assert.equal(config.deleteEnabled, false);
  assert.equal(config.accessLog, false);
  assert.deepEqual(config.tls, { certificate: '/certs/domain.crt', key: '/certs/domain.key' });
  assert.deepEqual(config.auth, { kind: 'htpasswd', realm: 'basic-realm', path: '/auth/htpasswd' });
  assert.equal(config.gc.uploadPurgeAgeMs, 48 * 3_600_000);
});

test("strata's keys: built-in token issuer, access rules, anonymous read, online GC", () => {
  const config = parse(
    [
      'storage: {filesystem: {rootdirectory: /srv/r}}',
      'auth:',
      '  anonymousread: true',
      '  token:',
      '    service: strata',
      '    issuer: strata-issuer',
      '    builtin:',
      '      htpasswd: /auth/htpasswd',
      '      expiration: 10s',
      '  access:',
      '    - {account: alice, repository: "team-a/**", actions: [pull, push, delete]}',
      '    - {account: "*", repository: "**", actions: [pull]}',
      '    - {account: admin, type: registry, repository: catalog, actions: ["*"]}',
      'gc: {interval: 30m, grace: 2h}',
    ].join('\n'),
  );
  assert.deepEqual(config.auth, {
    kind: 'token',
    service: 'strata',
    issuer: 'strata-issuer',
    // Never under 60 s: clients would have to fetch a token for almost every request.
    builtin: { key: '/srv/r/token-signing-key.pem', htpasswd: '/auth/htpasswd', expiresInSeconds: 60 },
  });
  assert.equal(config.anonymousRead, true);
  assert.equal(config.access.length, 3);
  assert.equal(config.access[2]?.type, 'registry');
  assert.deepEqual(config.access[0], {
    account: 'alice',
    repository: 'team-a/**',
    actions: ['pull', 'push', 'delete'],
  });
  assert.equal(config.gc.intervalMs, 1_800_000);
  assert.equal(config.gc.gracePeriodMs, 7_200_000);
});

test('REGISTRY_* variables override the file, flags override both', () => {
  const env = {
    REGISTRY_HTTP_ADDR: '127.0.0.1:6000',
    REGISTRY_STORAGE_DELETE_ENABLED: 'false',
    REGISTRY_AUTH_HTPASSWD_PATH: '/env/htpasswd',
    OTHER: 'ignored',
  };
  const fromEnv = parse('http: {addr: ":5000"}', {}, env);
  assert.deepEqual(fromEnv.listen, { host: '127.0.0.1', port: 6000 });
  assert.equal(fromEnv.deleteEnabled, false);
  assert.deepEqual(fromEnv.auth, { kind: 'htpasswd', realm: 'strata-registry', path: '/env/htpasswd' });
  const fromFlags = parse(
    'storage: {inmemory: {}}',
    { addr: '[::1]:7000', root: '/flag/root', anonymousRead: true },
    env,
  );
  assert.deepEqual(fromFlags.listen, { host: '::1', port: 7000 });
  assert.deepEqual(fromFlags.storage, { driver: 'filesystem', root: '/flag/root' });
  assert.equal(fromFlags.anonymousRead, true);
  // On an empty file too (no mapping to set keys in yet).
  const empty = parse(
    '',
    { root: '/only/flag', addr: '127.0.0.1:1' },
    { REGISTRY_AUTH_ANONYMOUSREAD: 'true' },
  );
  assert.deepEqual(empty.storage, { driver: 'filesystem', root: '/only/flag' });
  assert.equal(empty.anonymousRead, true);
});

test('mistakes name the file, the line and the key', () => {
  assert.throws(() => parse('http:\n  addr: [1, 2]\n'), /: config\.yml:2: http\.addr: /);
  assert.throws(
    () => parse('storage:\n  filesystem:\n    rootdirectory: /x\ngc:\n  grace: soon\n'),
    /: config\.yml:5: gc\.grace: expected a duration like 30s, 10m or 1h$/,
  );
  assert.throws(
    () => parse('auth: {htpasswd: {path: /a}, token: {service: s, issuer: i, jwks: /j, realm: r}}'),
    /choose htpasswd or token/,
  );
  assert.throws(
    () => parse('auth: {token: {service: s, issuer: i}}'),
    /auth\.token: needs builtin, rootcertbundle, jwks or publickey/,
  );
  assert.throws(() => parse('http: {addr: "nope"}'), /http\.addr: invalid address "nope"/);
  assert.throws(() => parse('http: [\n'), /: config\.yml:\d+: invalid YAML: /);
  assert.throws(() => parse('- a\n- b\n'), /: config\.yml:1: expected a mapping/);
  assert.throws(
    () => parse('auth:\n  access:\n    - {account: a, repository: r, actions: [read]}\n'),
    /: config\.yml:3: auth\.access\.0\.actions\.0: /,
  );
});

test('mistakes found after the schema name their line too', () => {
  assert.throws(
    () => parse('# registry\nhttp:\n  addr: nonsense\n'),
    /: config\.yml:3: http\.addr: invalid address "nonsense"/,
  );
  assert.throws(
    () =>
      parse(
        'version: 0.1\nauth:\n  htpasswd: {path: /a}\n  token: {service: s, issuer: i, jwks: /j, realm: r}\n',
      ),
    /: config\.yml:2: auth: choose htpasswd or token, not both/,
  );
  assert.throws(
    () => parse('auth:\n  token:\n    service: s\n    issuer: i\n'),
    /: config\.yml:2: auth\.token: needs builtin/,
  );
  assert.throws(
    () => parse('storage: {inmemory: {}}\nauth:\n  token:\n    service: s\n    issuer: i\n    builtin: {}\n'),
    /: config\.yml:6: auth\.token\.builtin\.key: required with in-memory storage/,
  );
  // Rules without authentication would be a registry that looks locked and is not.
  assert.throws(
    () => parse('auth:\n  access:\n    - {account: a, repository: r, actions: [pull]}\n'),
    /: config\.yml:2: auth\.access: rules need auth\.htpasswd or auth\.token/,
  );
});

test('listen addresses', () => {
  assert.deepEqual(parseListenAddress(':5000'), { host: '0.0.0.0', port: 5000 });
  assert.deepEqual(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  assert.deepEqual(parseListenAddress('[::]:5000'), { host: '::', port: 5000 });
  for (const bad of ['5000', 'host:', 'a:b', '1.2.3.4:70000', '[::1]5000']) {
    assert.throws(() => parseListenAddress(bad), /invalid address/, bad);
  }
});
