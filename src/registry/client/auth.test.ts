import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withTempDir } from '../../store/testing/helpers.js';
import { mergeScopes, parseChallenges } from './auth.js';
import { CredentialStore } from './credentials.js';
import { login, logout } from './login.js';
import { pullImage } from './pull.js';
import { pushImage } from './push.js';
import { FakeRegistry, addImage, error, withFakeRegistry } from './testing/fake-registry.js';

describe('WWW-Authenticate and scopes', () => {
  test('parses Docker Hub style bearer challenges', () => {
    assert.deepEqual(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      ),
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/busybox:pull',
          },
        },
      ],
    );
  });

  test('parses several challenges, tokens and escapes', () => {
    assert.deepEqual(
      parseChallenges('Basic realm="a \\"q\\"", Bearer realm=https://x/t, error="insufficient_scope"'),
      [
        { scheme: 'basic', params: { realm: 'a "q"' } },
        { scheme: 'bearer', params: { realm: 'https://x/t', error: 'insufficient_scope' } },
      ],
    );
    assert.deepEqual(parseChallenges(''), []);
  });

  test('merges scopes per resource, with ports in names', () => {
    assert.deepEqual(
      mergeScopes([
        'repository:a/b:pull',
        'repository:a/b:push',
        'repository:host:5000/c:pull',
        'registry:catalog:*',
        'repository:a/b:pull',
      ]),
      ['registry:catalog:*', 'repository:a/b:pull,push', 'repository:host:5000/c:pull'],
    );
    assert.deepEqual(mergeScopes(['repository:x:pull repository:y:pull']), [
      'repository:x:pull',
      'repository:y:pull',
    ]);
  });
});

interface TokenLog {
  scopes: string[];
  user: string | undefined;
}

/** Makes the fake registry demand bearer tokens from its own `/token` realm. */
function requireBearer(
  registry: FakeRegistry,
  users: Record<string, string>,
  options: { anonymous?: boolean } = {},
): TokenLog[] {
  const issued = new Set<string>();
  const log: TokenLog[] = [];
  registry.faults.push((req, res, path) => {
    const url = new URL(path, 'http://x');
    if (url.pathname === '/token') {
      let user: string | undefined;
      const header = req.headers.authorization;
      if (header?.startsWith('Basic ')) {
        const [name, password] = Buffer.from(header.slice(6), 'base64').toString().split(':');
        if (name === undefined || users[name] !== password) {
          res
            .writeHead(401, { 'content-type': 'application/json' })
            .end('{"details":"incorrect username or password"}');
          return true;
        }
        user = name;
      } else if (options.anonymous !== true) {
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end('{"details":"anonymous access denied"}');
        return true;
      }
      const scopes = url.searchParams.getAll('scope');
      log.push({ scopes, user });
      const token = `token-${issued.size}`;
      issued.add(token);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ access_token: token, expires_in: 300 }));
      return true;
    }
    const token = req.headers.authorization?.replace(/^Bearer /, '');
    if (token !== undefined && issued.has(token)) return false;
    const scope = /^\/v2\/(.+)\/(manifests|blobs|tags)\//.exec(url.pathname)?.[1];
    const challenge = `Bearer realm="http://${registry.host}/token",service="fake"${scope !== undefined ? `,scope="repository:${scope}:pull"` : ''}`;
    error(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': challenge });
    return true;
  });
  return log;
}

describe('token auth', () => {
  test('anonymous pull fetches one token and reuses it for every request', () =>
    withFakeRegistry(async (registry, store, dir) => {
      addImage(registry, { tag: 'latest' });
      const tokens = requireBearer(registry, {}, { anonymous: true });
      await pullImage(store, `${registry.host}/app`, { dockerConfigDir: join(dir, 'docker') });
      assert.equal(tokens.length, 1);
      assert.deepEqual(tokens[0], { scopes: ['repository:app:pull'], user: undefined });
    }));

  test('credentials from config.json are sent to the realm; push asks for joined scopes', () =>
    withFakeRegistry(async (registry, store, dir) => {
      addImage(registry, { tag: 'latest' });
      const tokens = requireBearer(registry, { alice: 's3cret' });
      const docker = join(dir, 'docker');
      await mkdir(docker);
      await writeFile(
        join(docker, 'config.json'),
        JSON.stringify({
          auths: { [registry.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } },
        }),
      );
      await pullImage(store, `${registry.host}/app`, { dockerConfigDir: docker });
      await store.images.set(
        `${registry.host}/copy:1`,
        (await store.images.get(`${registry.host}/app:latest`))!.target,
      );
      // Blobs are shared by all repositories of the fake; make the new one look empty to HEAD.
      registry.faults.unshift((req, res, path) => {
        if (req.method !== 'HEAD' || !path.startsWith('/v2/copy/blobs/')) return false;
        res.writeHead(404).end();
        return true;
      });
      await pushImage(store, `${registry.host}/copy:1`, { dockerConfigDir: docker });
      assert.ok(tokens.every((t) => t.user === 'alice'));
      const mountToken = tokens.find(
        (t) => t.scopes.includes('repository:app:pull') && t.scopes.includes('repository:copy:pull,push'),
      );
      assert.ok(mountToken, `a token for the mount covers both repositories: ${JSON.stringify(tokens)}`);
      assert.ok(registry.matching(/mount=sha256/).length > 0, 'blobs were mounted from app');
    }));

  test('wrong credentials are one line from the token server', () =>
    withFakeRegistry(async (registry, store, dir) => {
      addImage(registry, { tag: 'latest' });
      requireBearer(registry, { alice: 's3cret' });
      await assert.rejects(
        pullImage(store, `${registry.host}/app`, {
          credentials: { username: 'alice', password: 'nope' },
          dockerConfigDir: dir,
        }),
        /authentication with 127\.0\.0\.1:\d+ \(token server http:\/\/127\.0\.0\.1:\d+\): incorrect username or password \(HTTP 401\)/,
      );
    }));
});

describe('credentials and login', () => {
  test('login verifies with the token server, stores base64 auth (0600); logout removes it', () =>
    withFakeRegistry(async (registry, _store, dir) => {
      requireBearer(registry, { bob: 'pw' });
      const docker = join(dir, 'docker');
      await assert.rejects(
        login(registry.host, { username: 'bob', password: 'bad', dockerConfigDir: docker }),
        /incorrect username or password/,
      );
      await assert.rejects(
        readFile(join(docker, 'config.json')),
        { code: 'ENOENT' },
        'nothing stored after a failed login',
      );
      assert.equal(
        await login(registry.host, { username: 'bob', password: 'pw', dockerConfigDir: docker }),
        registry.host,
      );
      const config = JSON.parse(await readFile(join(docker, 'config.json'), 'utf8')) as {
        auths: Record<string, { auth: string }>;
      };
      assert.equal(config.auths[registry.host]?.auth, Buffer.from('bob:pw').toString('base64'));
      assert.equal((await stat(join(docker, 'config.json'))).mode & 0o777, 0o600);
      assert.deepEqual(await logout(registry.host, { dockerConfigDir: docker }), {
        registry: registry.host,
        removed: true,
      });
      assert.deepEqual(await logout(registry.host, { dockerConfigDir: docker }), {
        registry: registry.host,
        removed: false,
      });
    }));

  test('Basic auth registries get credentials after the challenge', () =>
    withFakeRegistry(async (registry, store, dir) => {
      addImage(registry, { tag: 'latest' });
      registry.faults.push((req, res) => {
        if (req.headers.authorization === `Basic ${Buffer.from('u:p').toString('base64')}`) return false;
        error(res, 401, 'UNAUTHORIZED', 'basic auth required', { 'www-authenticate': 'Basic realm="fake"' });
        return true;
      });
      await assert.rejects(
        pullImage(store, `${registry.host}/app`, { dockerConfigDir: dir }),
        /basic auth required \(HTTP 401/,
      );
      await pullImage(store, `${registry.host}/app`, {
        dockerConfigDir: dir,
        credentials: { username: 'u', password: 'p' },
      });
    }));

  test('Docker Hub keys, credHelpers and the helper protocol', () =>
    withTempDir(async (dir) => {
      const bin = join(dir, 'bin');
      await mkdir(bin);
      // A credential helper speaking Docker's protocol: server URL on stdin, JSON on stdout.
      await writeFile(
        join(bin, 'docker-credential-fake'),
        [
          '#!/bin/sh',
          'read -r server',
          `echo "$1 $server" >> "${join(dir, 'helper.log')}"`,
          'case "$1" in',
          '  get) if [ "$server" = "helped.example:5000" ]; then echo \'{"ServerURL":"x","Username":"hu","Secret":"hs"}\'; else echo "credentials not found in native keychain"; exit 1; fi ;;',
          '  store) ;;',
          '  erase) ;;',
          'esac',
        ].join('\n'),
      );
      await chmod(join(bin, 'docker-credential-fake'), 0o755);
      const docker = join(dir, 'docker');
      await mkdir(docker);
      await writeFile(
        join(docker, 'config.json'),
        JSON.stringify({
          auths: {
            'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw:with:colons').toString('base64') },
          },
          credHelpers: { 'helped.example:5000': 'fake', 'other.example': 'fake' },
        }),
      );
      const path = process.env.PATH;
      process.env.PATH = `${bin}:${path ?? ''}`;
      try {
        const credentials = new CredentialStore(docker);
        assert.deepEqual(await credentials.get('docker.io'), { username: 'hub', password: 'pw:with:colons' });
        assert.deepEqual(await credentials.get('helped.example:5000'), { username: 'hu', password: 'hs' });
        assert.equal(await credentials.get('other.example'), undefined);
        assert.equal(await credentials.get('nowhere.example'), undefined);
        await credentials.store('helped.example:5000', { username: 'n', password: 'p' });
        assert.match(
          await readFile(join(dir, 'helper.log'), 'utf8'),
          /store \{"ServerURL":"helped\.example:5000","Username":"n","Secret":"p"\}/,
        );
      } finally {
        process.env.PATH = path;
      }
    }));
});
