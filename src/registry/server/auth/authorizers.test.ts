import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import fc from 'fast-check';
import { SignJWT, calculateJwkThumbprint } from 'jose';

import type { AccessRule } from './access.js';
import { allowAll, basicAuthorizer, tokenAuthorizer } from './authorizers.js';
import { Htpasswd } from './htpasswd.js';
import { parseScopes } from './scope.js';
import { TokenIssuer, createTokenEndpoint, createTokenValidator, type SigningKey } from './token.js';
import type { AuthDecision, Authorizer, Scope } from './types.js';

const SERVICE = 'registry.test';
const REALM = 'https://registry.test/token';

const temporaryDirectories: string[] = [];
after(() => Promise.all(temporaryDirectories.map((dir) => rm(dir, { recursive: true, force: true }))));

async function users(): Promise<Htpasswd> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-authz-'));
  temporaryDirectories.push(dir);
  const path = join(dir, 'htpasswd');
  const hash = (password: string): string => `$2y$${bcrypt.hashSync(password, 4).slice(4)}`;
  await writeFile(path, `alice:${hash('alice-pw')}\nbob:${hash('bob-pw')}\n`);
  return Htpasswd.load(path);
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** The scopes a route needs, written as the token grammar spells them. */
function needs(text: string): Scope[] {
  return parseScopes(text);
}

function denial(decision: AuthDecision): Extract<AuthDecision, { kind: 'deny' }> {
  if (decision.kind !== 'deny') assert.fail('expected a denial');
  return decision;
}

async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as Parameters<typeof calculateJwkThumbprint>[0];
  return { privateKey, publicKey, keyId: await calculateJwkThumbprint(jwk) };
}

/** Headers a confused or hostile client might send. */
const malformedAuthorization = fc.oneof(
  fc.string(),
  fc.string().map((text) => `Basic ${text}`),
  fc.string().map((text) => `Basic ${Buffer.from(text).toString('base64')}`),
  fc.tuple(fc.string(), fc.string()).map(([user, password]) => basic(user, password)),
  fc.string().map((text) => `Bearer ${text}`),
  fc.constantFrom(
    'Basic',
    'Bearer',
    'bearer ',
    'BASIC  =',
    'Bearer a.b.c',
    'Bearer ..',
    'Digest x',
    '\u0000',
  ),
  fc
    .tuple(fc.jsonValue(), fc.jsonValue(), fc.string())
    .map(
      ([header, payload, signature]) =>
        `Bearer ${Buffer.from(JSON.stringify(header) ?? 'null').toString('base64url')}.${Buffer.from(
          JSON.stringify(payload) ?? 'null',
        ).toString('base64url')}.${Buffer.from(signature).toString('base64url')}`,
    ),
  fc
    .record({
      alg: fc.constantFrom('ES256', 'RS256', 'none', 'HS256'),
      x5c: fc.jsonValue(),
      kid: fc.jsonValue(),
    })
    .map(
      (header) =>
        `Bearer ${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(
          JSON.stringify({ iss: 'strata', aud: SERVICE, exp: 4102444800, access: [] }),
        ).toString('base64url')}.c2ln`,
    ),
);

describe('allowAll', () => {
  test('allows everything, anonymously', async () => {
    assert.deepEqual(await allowAll().authorize({}, needs('repository:a:push,delete registry:catalog:*')), {
      kind: 'allow',
    });
  });
});

describe('basicAuthorizer', () => {
  test('no credentials: 401 with the Basic challenge', async () => {
    const authorizer = basicAuthorizer({
      realm: 'strata "test"',
      users: await users(),
      anonymousRead: false,
    });
    for (const needed of [[], needs('repository:a:pull')]) {
      const decision = denial(await authorizer.authorize({}, needed));
      assert.equal(decision.status, 401);
      assert.equal(decision.code, 'UNAUTHORIZED');
      assert.equal(decision.challenge, 'Basic realm="strata \\"test\\""');
    }
  });

  test('anonymous read: pull and /v2/ without credentials, nothing else', async () => {
    const authorizer = basicAuthorizer({ realm: 'r', users: await users(), anonymousRead: true });
    assert.deepEqual(await authorizer.authorize({}, []), { kind: 'allow' });
    assert.deepEqual(await authorizer.authorize({}, needs('repository:a/b:pull')), { kind: 'allow' });
    assert.equal(denial(await authorizer.authorize({}, needs('repository:a:pull,push'))).status, 401);
    assert.equal(denial(await authorizer.authorize({}, needs('registry:catalog:*'))).status, 401);
  });

  test('right credentials are allowed and named; wrong ones are 401', async () => {
    const authorizer = basicAuthorizer({ realm: 'r', users: await users(), anonymousRead: true });
    const needed = needs('repository:a:pull,push');
    assert.deepEqual(await authorizer.authorize({ authorization: basic('alice', 'alice-pw') }, needed), {
      kind: 'allow',
      subject: 'alice',
    });
    assert.deepEqual(await authorizer.authorize({ authorization: basic('alice', 'alice-pw') }, []), {
      kind: 'allow',
      subject: 'alice',
    });
    for (const authorization of [basic('alice', 'bob-pw'), basic('carol', 'x'), 'Basic', 'Basic ***']) {
      const decision = denial(await authorizer.authorize({ authorization }, needs('repository:a:pull')));
      assert.equal(decision.status, 401, authorization);
      assert.equal(decision.challenge, 'Basic realm="r"');
    }
  });

  test('authenticated without the right: 403 DENIED, no challenge', async () => {
    const rules: AccessRule[] = [
      { account: 'alice', repository: 'alice/**', actions: ['*'] },
      { account: '*', repository: 'shared/*', actions: ['pull'] },
    ];
    const authorizer = basicAuthorizer({ realm: 'r', users: await users(), rules, anonymousRead: false });
    const bob = { authorization: basic('bob', 'bob-pw') };
    assert.deepEqual(await authorizer.authorize(bob, needs('repository:shared/x:pull')), {
      kind: 'allow',
      subject: 'bob',
    });
    const decision = denial(await authorizer.authorize(bob, needs('repository:shared/x:pull,push')));
    assert.deepEqual(decision, {
      kind: 'deny',
      status: 403,
      code: 'DENIED',
      message: 'bob may not push shared/x',
    });
    assert.equal(denial(await authorizer.authorize(bob, needs('registry:catalog:*'))).status, 403);
    assert.equal(denial(await authorizer.authorize(bob, needs('repository:alice/app:pull'))).status, 403);
    assert.deepEqual(
      await authorizer.authorize(
        { authorization: basic('alice', 'alice-pw') },
        needs('repository:alice/a/b:delete'),
      ),
      { kind: 'allow', subject: 'alice' },
    );
    // A cross-repository mount needs pull on the source as well.
    assert.equal(
      denial(
        await authorizer.authorize(
          { authorization: basic('alice', 'alice-pw') },
          needs('repository:alice/app:pull,push repository:bob/private:pull'),
        ),
      ).status,
      403,
    );
  });

  test('anonymous rules in the configuration open /v2/ and what they grant', async () => {
    const rules: AccessRule[] = [{ account: 'anonymous', repository: 'public/*', actions: ['pull'] }];
    const authorizer = basicAuthorizer({ realm: 'r', users: await users(), rules, anonymousRead: false });
    assert.deepEqual(await authorizer.authorize({}, []), { kind: 'allow' });
    assert.deepEqual(await authorizer.authorize({}, needs('repository:public/x:pull')), { kind: 'allow' });
    assert.equal(denial(await authorizer.authorize({}, needs('repository:private/x:pull'))).status, 401);
  });

  test('an Authorization header of another scheme counts as none', async () => {
    const authorizer = basicAuthorizer({ realm: 'r', users: await users(), anonymousRead: true });
    assert.deepEqual(
      await authorizer.authorize({ authorization: 'Bearer x.y.z' }, needs('repository:a:pull')),
      {
        kind: 'allow',
      },
    );
    assert.equal(
      denial(await authorizer.authorize({ authorization: 'Bearer x.y.z' }, needs('repository:a:push')))
        .status,
      401,
    );
  });

  test('malformed Authorization headers never throw and are always denied', async () => {
    const authorizer = basicAuthorizer({ realm: 'r', users: await users(), anonymousRead: false });
    await fc.assert(
      fc.asyncProperty(malformedAuthorization, async (authorization) => {
        const decision = await authorizer.authorize({ authorization }, needs('repository:a:push'));
        assert.equal(decision.kind, 'deny');
      }),
      { numRuns: 300 },
    );
  });
});

describe('tokenAuthorizer', () => {
  const setUp = async (
    options: { anonymousRead?: boolean; now?: () => number; rules?: readonly AccessRule[] } = {},
  ): Promise<{ authorizer: Authorizer; issuer: TokenIssuer; key: SigningKey }> => {
    const key = await newSigningKey();
    const issuer = new TokenIssuer({
      name: 'strata',
      key,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    const validator = createTokenValidator({
      audience: SERVICE,
      issuers: [issuer.trusted()],
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    const authorizer = tokenAuthorizer({
      realm: REALM,
      service: SERVICE,
      validator,
      anonymousRead: options.anonymousRead ?? false,
    });
    return { authorizer, issuer, key };
  };
  const bearerFor = async (
    issuer: TokenIssuer,
    access: readonly Scope[],
    subject = 'alice',
    audience = SERVICE,
  ): Promise<{ authorization: string }> => {
    const { token } = await issuer.issue({ subject, audience, access, expiresInSeconds: 300 });
    return { authorization: `Bearer ${token}` };
  };

  test('a realm computed per request names the host the client used', async () => {
    const issuer = new TokenIssuer({ name: 'strata', key: await newSigningKey() });
    const validator = createTokenValidator({ audience: SERVICE, issuers: [issuer.trusted()] });
    const authorizer = tokenAuthorizer({
      realm: (request) => `http://${request.host ?? 'fallback'}/token`,
      service: SERVICE,
      validator,
      anonymousRead: false,
    });
    const viaName = denial(await authorizer.authorize({ host: 'registry.lan:5000' }, []));
    assert.equal(viaName.challenge, `Bearer realm="http://registry.lan:5000/token",service="${SERVICE}"`);
    const noHost = denial(await authorizer.authorize({}, []));
    assert.equal(noHost.challenge, `Bearer realm="http://fallback/token",service="${SERVICE}"`);
  });

  test('no token: 401 with realm and service, and the scope when one is needed', async () => {
    const { authorizer } = await setUp();
    const ping = denial(await authorizer.authorize({}, []));
    assert.equal(ping.status, 401);
    assert.equal(ping.code, 'UNAUTHORIZED');
    assert.equal(ping.challenge, `Bearer realm="${REALM}",service="${SERVICE}"`);
    const pull = denial(await authorizer.authorize({}, needs('repository:localhost:5000/a:pull')));
    assert.equal(
      pull.challenge,
      `Bearer realm="${REALM}",service="${SERVICE}",scope="repository:localhost:5000/a:pull"`,
    );
    const mount = denial(await authorizer.authorize({}, needs('repository:b:pull,push repository:a:pull')));
    assert.equal(
      mount.challenge,
      `Bearer realm="${REALM}",service="${SERVICE}",scope="repository:b:pull,push repository:a:pull"`,
    );
    const catalog = denial(
      await authorizer.authorize({ authorization: 'Basic abc' }, needs('registry:catalog:*')),
    );
    assert.match(catalog.challenge ?? '', /,scope="registry:catalog:\*"$/);
  });

  test('a valid token with the needed actions is allowed and names its subject', async () => {
    const { authorizer, issuer } = await setUp();
    const access = needs('repository:a:pull,push');
    assert.deepEqual(
      await authorizer.authorize(await bearerFor(issuer, access), needs('repository:a:push')),
      {
        kind: 'allow',
        subject: 'alice',
      },
    );
    const anonymous = await issuer.issue({
      subject: undefined,
      audience: SERVICE,
      access: [],
      expiresInSeconds: 60,
    });
    assert.deepEqual(await authorizer.authorize({ authorization: `Bearer ${anonymous.token}` }, []), {
      kind: 'allow',
    });
    const everything = needs('repository:a:* registry:catalog:*');
    const all = await bearerFor(issuer, everything);
    assert.equal(
      (await authorizer.authorize(all, needs('repository:a:delete'))).kind,
      'allow',
      '* covers delete',
    );
    assert.equal((await authorizer.authorize(all, needs('registry:catalog:*'))).kind, 'allow');
  });

  test('a token for repository A can neither pull nor push repository B', async () => {
    const { authorizer, issuer } = await setUp();
    const tokenForA = await bearerFor(issuer, needs('repository:team/a:pull,push'));
    for (const needed of [
      'repository:team/b:pull',
      'repository:team/b:pull,push',
      'repository:team/a/b:pull',
    ]) {
      const decision = denial(await authorizer.authorize(tokenForA, needs(needed)));
      assert.equal(decision.status, 401);
      assert.equal(
        decision.challenge,
        `Bearer realm="${REALM}",service="${SERVICE}",scope="${needed}",error="insufficient_scope"`,
      );
    }
  });

  test('a pull token on a push: 401 insufficient_scope asking for pull,push', async () => {
    const { authorizer, issuer } = await setUp();
    const decision = denial(
      await authorizer.authorize(
        await bearerFor(issuer, needs('repository:a:pull')),
        needs('repository:a:pull,push'),
      ),
    );
    assert.equal(decision.status, 401);
    assert.equal(decision.code, 'UNAUTHORIZED');
    assert.match(decision.challenge ?? '', /scope="repository:a:pull,push",error="insufficient_scope"$/);
    assert.match(decision.message, /does not grant repository:a:pull,push/);
  });

  test('an invalid, expired, foreign or forged token: 401 invalid_token', async () => {
    let now = Date.now();
    const { authorizer, issuer } = await setUp({ now: () => now });
    const needed = needs('repository:a:pull');
    const access = needs('repository:a:pull');
    const expectInvalid = async (authorization: string, reason: RegExp): Promise<void> => {
      const decision = denial(await authorizer.authorize({ authorization }, needed));
      assert.equal(decision.status, 401);
      assert.equal(
        decision.challenge,
        `Bearer realm="${REALM}",service="${SERVICE}",scope="repository:a:pull",error="invalid_token"`,
      );
      assert.match(decision.message, reason);
    };
    const expiring = (await bearerFor(issuer, access)).authorization;
    await expectInvalid(
      (await bearerFor(issuer, access, 'alice', 'elsewhere')).authorization,
      /another service/,
    );
    const stranger = new TokenIssuer({ name: 'strata', key: await newSigningKey() });
    await expectInvalid((await bearerFor(stranger, access)).authorization, /unknown key/);
    await expectInvalid('Bearer not-a-jwt', /malformed/);
    await expectInvalid('Bearer ', /malformed/);
    const forged = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'HS256', kid: issuer.keyId })
      .setIssuer('strata')
      .setAudience(SERVICE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('any secret at all, 32 bytes long!'));
    await expectInvalid(`Bearer ${forged}`, /not accepted/);
    now += 10 * 60_000;
    await expectInvalid(expiring, /expired/);
  });

  test('anonymous read: pulls without a token; a token for A still pulls B', async () => {
    const { authorizer, issuer } = await setUp({ anonymousRead: true });
    assert.deepEqual(await authorizer.authorize({}, []), { kind: 'allow' });
    assert.deepEqual(await authorizer.authorize({}, needs('repository:any/thing:pull')), { kind: 'allow' });
    const push = denial(await authorizer.authorize({}, needs('repository:a:pull,push')));
    assert.equal(push.status, 401);
    assert.doesNotMatch(push.challenge ?? '', /error=/);
    assert.equal(denial(await authorizer.authorize({}, needs('registry:catalog:*'))).status, 401);
    const tokenForA = await bearerFor(issuer, needs('repository:a:pull,push'));
    assert.deepEqual(await authorizer.authorize(tokenForA, needs('repository:b:pull')), {
      kind: 'allow',
      subject: 'alice',
    });
    assert.equal(denial(await authorizer.authorize(tokenForA, needs('repository:b:push'))).status, 401);
    // A bad token is not silently downgraded to anonymous.
    assert.equal(
      denial(await authorizer.authorize({ authorization: 'Bearer x.y.z' }, needs('repository:b:pull')))
        .status,
      401,
    );
  });

  test('malformed Authorization headers never throw and are always denied', async () => {
    const { authorizer } = await setUp();
    await fc.assert(
      fc.asyncProperty(malformedAuthorization, async (authorization) => {
        const decision = await authorizer.authorize({ authorization }, needs('repository:a:pull'));
        assert.equal(decision.kind, 'deny');
        assert.equal(decision.kind === 'deny' && decision.status, 401);
      }),
      { numRuns: 300 },
    );
  });
});

describe('token flow end to end', () => {
  test('challenge → token endpoint → retry, with rules deciding what the token carries', async () => {
    const accounts = await users();
    const key = await newSigningKey();
    const issuer = new TokenIssuer({ name: 'strata', key });
    const rules: AccessRule[] = [
      { account: 'alice', repository: 'alice/**', actions: ['pull', 'push'] },
      { account: '*', repository: 'library/*', actions: ['pull'] },
    ];
    const endpoint = createTokenEndpoint({
      path: '/token',
      service: SERVICE,
      issuer,
      users: accounts,
      rules,
      anonymousRead: false,
    });
    const authorizer = tokenAuthorizer({
      realm: REALM,
      service: SERVICE,
      validator: createTokenValidator({ audience: SERVICE, issuers: [issuer.trusted()] }),
      anonymousRead: false,
    });
    const tokenFor = async (scope: string, authorization?: string): Promise<string> => {
      const response = await endpoint.handle({
        method: 'GET',
        query: new URLSearchParams({ service: SERVICE, scope }),
        ...(authorization === undefined ? {} : { authorization }),
      });
      assert.equal(response.status, 200);
      return `Bearer ${String((response.body as { token: string }).token)}`;
    };

    const push = needs('repository:alice/app:pull,push');
    const challenge = denial(await authorizer.authorize({}, push)).challenge ?? '';
    const scope = /scope="([^"]*)"/.exec(challenge)?.[1] ?? '';
    const alice = await tokenFor(scope, basic('alice', 'alice-pw'));
    assert.deepEqual(await authorizer.authorize({ authorization: alice }, push), {
      kind: 'allow',
      subject: 'alice',
    });

    const bob = await tokenFor(scope, basic('bob', 'bob-pw'));
    assert.match(
      denial(await authorizer.authorize({ authorization: bob }, push)).challenge ?? '',
      /insufficient_scope/,
    );
    const bobPull = await tokenFor('repository:library/debian:pull,push', basic('bob', 'bob-pw'));
    assert.equal(
      (await authorizer.authorize({ authorization: bobPull }, needs('repository:library/debian:pull'))).kind,
      'allow',
    );
    assert.equal(
      (await authorizer.authorize({ authorization: bobPull }, needs('repository:library/debian:push'))).kind,
      'deny',
    );
    const anonymous = await tokenFor('repository:library/debian:pull');
    assert.equal(
      (await authorizer.authorize({ authorization: anonymous }, needs('repository:library/debian:pull')))
        .kind,
      'deny',
      'anonymous is not "*" (any authenticated user)',
    );
  });
});
