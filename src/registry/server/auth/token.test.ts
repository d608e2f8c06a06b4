import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { SignJWT, UnsecuredJWT, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose';

import { isStrataError } from '../../../errors.js';
import { withTempDir } from '../../../store/testing/helpers.js';
import { Htpasswd } from './htpasswd.js';
import {
  TokenIssuer,
  createTokenEndpoint,
  createTokenValidator,
  libtrustKeyId,
  loadOrCreateSigningKey,
  loadSigningKey,
  loadTrustedIssuer,
  parseCertificateBundle,
  verifyCertificateChain,
  type SigningKey,
  type TokenEndpointOptions,
  type TokenValidation,
  type TrustedIssuer,
} from './token.js';
import type { Scope, TokenRequest, TokenResponse } from './types.js';

/**
 * Test certificates (P-256), made with openssl: ROOT (CA) → INTERMEDIATE (CA) → LEAF;
 * ROOT → NOT_CA_INTERMEDIATE (CA:FALSE) → LEAF_UNDER_NOT_CA; OTHER_ROOT → LEAF_UNDER_OTHER_ROOT.
 * CAs are valid for 100 years, leaves for 10, from the same day.
 */
const FIXTURES = {
  ROOT: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBnDCCAUOgAwIBAgIUUtQoRPyf1E4Tpzk+WdooFVMcOgIwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc3RyYXRhIHRlc3Qgcm9vdDAgFw0yNjEyMDUwMjE3MjlaGA8y
MTI2MTExMTAyMTcyOVowGzEZMBcGA1UEAwwQc3RyYXRhIHRlc3Qgcm9vdDBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABECcREBkNh/rgzxIqRcKRTrCFobIEAag4OHC
6nF08J/3h3UiSgOkNVEzBkOcbyeu+EOOJMv4wzWf70hR2mzDGDmjYzBhMB0GA1Ud
DgQWBBSZvwL3DPEDAo98h+b/j4rLmXznjTAfBgNVHSMEGDAWgBSZvwL3DPEDAo98
h+b/j4rLmXznjTAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBhjAKBggq
hkjOPQQDAgNHADBEAiBzVVDSrEzv4ljx1w1NT63lPw09nq8yr6GrF39YKsx7QAIg
UkiZN8LV5CFBZ9qhVKjFJOVgMorigYl5s1Gngcmo1W0=
-----END CERTIFICATE-----`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQ3F9H4VQw09O1sxb
i/pyHLjBW1yX9mP/8y1pwe4N+e6hRANCAARAnERAZDYf64M8SKkXCkU6whaGyBAG
oODhwupxdPCf94d1IkoDpDVRMwZDnG8nrvhDjiTL+MM1n+9IUdpswxg5
-----END PRIVATE KEY-----`,
  },
  INTERMEDIATE: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBpDCCAUugAwIBAgIUaduU4I16YLABBcx22v5XzJ/CRs8wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc3RyYXRhIHRlc3Qgcm9vdDAgFw0yNjEyMDUwMjE3MjlaGA8y
MTI2MTExMTAyMTcyOVowIzEhMB8GA1UEAwwYc3RyYXRhIHRlc3QgaW50ZXJtZWRp
YXRlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEBwXurvnd8Fhx+Tpl7FWJKwIl
fsf44o7jlQf8AeIPC76a0szspv2D/+fQHqeHSd+Mz24aqruGtE45RNTEOCl25qNj
MGEwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAYYwHQYDVR0OBBYEFKYA
WfJc6Kgv13LjvhrMa+/t3T1fMB8GA1UdIwQYMBaAFJm/AvcM8QMCj3yH5v+PisuZ
fOeNMAoGCCqGSM49BAMCA0cAMEQCIGz+IIQ87/J4XLt2QyyWZbemyGslpbnzKGjx
RwELaw9dAiAswZAaCr3DJ+6MSkqfGj+2jxke9gecrD5oWkA9h5KlGw==
-----END CERTIFICATE-----`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQJ2vGHWX4vQW5aNP
QOg0qHChvV17b9usv77BIdsyiBKhRANCAAQHBe6u+d3wWHH5OmXsVYkrAiV+x/ji
juOVB/wB4g8LvprSzOym/YP/59Aep4dJ34zPbhqqu4a0TjlE1MQ4KXbm
-----END PRIVATE KEY-----`,
  },
  LEAF: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBojCCAUmgAwIBAgIUL4e45kiNHpDNYCxVRQyA+iiLpOQwCgYIKoZIzj0EAwIw
IzEhMB8GA1UEAwwYc3RyYXRhIHRlc3QgaW50ZXJtZWRpYXRlMB4XDTI2MTIwNTAy
MTcyOVoXDTM2MTIwMjAyMTcyOVowHjEcMBoGA1UEAwwTc3RyYXRhIHRva2VuIHNp
Z25lcjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABL+HhQVQ6x2AKK9JCkeIZe+6
VxVG0Cr2nQdBhWckinGZ92p9ofjJefdX2lIXOlGc/6cr+5n556RwrQRG7d/1voSj
YDBeMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMB0GA1UdDgQWBBTvNxDO
nr3dlLSP6LlhLNmlitg3jzAfBgNVHSMEGDAWgBSmAFnyXOioL9dy474azGvv7d09
XzAKBggqhkjOPQQDAgNHADBEAiB3Xi4tHPKcui8TvJqRM50WxIJcqOfg2T9Z3hhv
gYLyuwIgdv2K/AGhDM0DNNU1lQh4WISdFQoXeIT/V3Jx5Z9s8SE=
-----END CERTIFICATE-----`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgq0J8V46sJp8W8Mhk
hD5nXKZEZD6cltf62sAk8EYMyamhRANCAAS/h4UFUOsdgCivSQpHiGXvulcVRtAq
9p0HQYVnJIpxmfdqfaH4yXn3V9pSFzpRnP+nK/uZ+eekcK0ERu3f9b6E
-----END PRIVATE KEY-----`,
  },
  NOT_CA_INTERMEDIATE: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBkjCCATigAwIBAgIUaduU4I16YLABBcx22v5XzJ/CRtAwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc3RyYXRhIHRlc3Qgcm9vdDAgFw0yNjEyMDUwMjE3MjlaGA8y
MTI2MTExMTAyMTcyOVowEzERMA8GA1UEAwwIbm90IGEgQ0EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATwnib8qHrNOirDDlz7AWnTNPGKZr8dVuj6kn3iOQnk+uUP
y2EfGDQdEAeoIEd8t0iHx/bvQtb5whomFAXJd91zo2AwXjAMBgNVHRMBAf8EAjAA
MA4GA1UdDwEB/wQEAwIHgDAdBgNVHQ4EFgQUhGMUAFKRUt7Vych8loF/2TQLLx0w
HwYDVR0jBBgwFoAUmb8C9wzxAwKPfIfm/4+Ky5l8540wCgYIKoZIzj0EAwIDSAAw
RQIgAqBgbKc9RJRzR52jqSL3Cb58Fmky/FSRA5BVAR35s+sCIQCD/xGubR35I5MA
sArWB/Crj1zuT5lSbtcm5GjdhVkkDA==
-----END CERTIFICATE-----`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg1SLLn2ckAjA5r1Sn
/mLgwmNp9lle20GCLKM+9EFa/DShRANCAATwnib8qHrNOirDDlz7AWnTNPGKZr8d
Vuj6kn3iOQnk+uUPy2EfGDQdEAeoIEd8t0iHx/bvQtb5whomFAXJd91z
-----END PRIVATE KEY-----`,
  },
  LEAF_UNDER_NOT_CA: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBkjCCATigAwIBAgIUJ+KhFLy8Mgdq0olvmi2H0IhSZHQwCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIbm90IGEgQ0EwHhcNMjYxMjA1MDIxNzI5WhcNMzYxMjAyMDIx
NzI5WjAdMRswGQYDVQQDDBJzaWduZWQgYnkgYSBub24tQ0EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAASpdLMYrnVBbPtyGv9OUqqZleRyNB4zEnrCZb+rk8GhI83N
RKE81rQt/FoMfG4oO8Fd8JwVRFR8R8xZi9h/wXFMo2AwXjAMBgNVHRMBAf8EAjAA
MA4GA1UdDwEB/wQEAwIHgDAdBgNVHQ4EFgQUZzHnjZG1uACgUHzPZ2xZ9yLNoIww
HwYDVR0jBBgwFoAUhGMUAFKRUt7Vych8loF/2TQLLx0wCgYIKoZIzj0EAwIDSAAw
RQIgDHrdunNhBhxS8y3RduacuGsiAk5rrWJZx5EaX75QLVQCIQDYJapIEbsxyH8s
sfpdal8iclpKAmvVRBvwS9tyYsct6A==
-----END CERTIFICATE-----`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrNq1QFnWHyeXqJ8i
Cszi9qJbLxeTK89XjbZYgeFQJG+hRANCAASpdLMYrnVBbPtyGv9OUqqZleRyNB4z
EnrCZb+rk8GhI83NRKE81rQt/FoMfG4oO8Fd8JwVRFR8R8xZi9h/wXFM
-----END PRIVATE KEY-----`,
  },
  OTHER_ROOT: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUf8jMdi25bF4v9SHsVce7QxY2geUwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPb3RoZXIgdGVzdCByb290MCAXDTI2MTIwNTAyMTcyOVoYDzIx
MjYxMTExMDIxNzI5WjAaMRgwFgYDVQQDDA9vdGhlciB0ZXN0IHJvb3QwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAARWzxe7pCLcVUOt7Im/i5H2jXFt4ommfXn6eRLH
8e23udVVdR2UeQIyn2DODyhdpJvcjOGuY+h8XUTEkRsXMCLdo2MwYTAdBgNVHQ4E
FgQUzUOSxopnD5YmCi/S66cdDbLaCEMwHwYDVR0jBBgwFoAUzUOSxopnD5YmCi/S
66cdDbLaCEMwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAYYwCgYIKoZI
zj0EAwIDRwAwRAIgSe8/y9CwFc5KK4eaKOaXsOQ9LgOW3kv3Y9X0jboxiy4CIFRL
jIncKCP1cZhCnWLGpegMw2MG692aHUHwOtsAUMeG
-----END CERTIFICATE-----`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4FwEz6H/7DTjpyZy
kKg9L2SROQqKHefmROJ+Dwh2f1OhRANCAARWzxe7pCLcVUOt7Im/i5H2jXFt4omm
fXn6eRLH8e23udVVdR2UeQIyn2DODyhdpJvcjOGuY+h8XUTEkRsXMCLd
-----END PRIVATE KEY-----`,
  },
  LEAF_UNDER_OTHER_ROOT: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBkzCCATmgAwIBAgIUT07uoWvPn8haEmSW9ub7OLkEOSYwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPb3RoZXIgdGVzdCByb290MB4XDTI2MTIwNTAyMTcyOVoXDTM2
MTIwMjAyMTcyOVowFzEVMBMGA1UEAwwMb3RoZXIgc2lnbmVyMFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAE0f0rBLx0DoJ21XHN4CvXGeM25AQQkwrzoYzfV8JjRPC1
xaMFCFk9q77ieaWlIBWRGTYnQWqbfNP4NvwOLthDzaNgMF4wDAYDVR0TAQH/BAIw
ADAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0OBBYEFILOrTFEJVg5YyTUPcYRqTZSweA7
MB8GA1UdIwQYMBaAFM1DksaKZw+WJgov0uunHQ2y2ghDMAoGCCqGSM49BAMCA0gA
MEUCIQDysBQ3QDZVwdfNuxsO//UBaZriqmV8cOpBxqaOboNBvQIgcjuc8JFZjvHW
3CyWU8Cw8FPm+xv5+NQ3G3V4f9C5ohM=
-----END CERTIFICATE-----`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2q8PeG3XexH3ZfkT
7p+w4nn/r8OIJi3gPyG+08E6il6hRANCAATR/SsEvHQOgnbVcc3gK9cZ4zbkBBCT
CvOhjN9XwmNE8LXFowUIWT2rvuJ5paUgFZEZNidBapt80/g2/A4u2EPN
-----END PRIVATE KEY-----`,
  },
} as const;

const SERVICE = 'registry.test';
const ISSUER = 'strata-test-issuer';

async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as Parameters<typeof calculateJwkThumbprint>[0];
  return { privateKey, publicKey, keyId: await calculateJwkThumbprint(jwk) };
}

function validToken(validation: TokenValidation): Exclude<TokenValidation, { valid: false }>['token'] {
  if (!validation.valid) assert.fail(`expected a valid token, got: ${validation.reason}`);
  return validation.token;
}

function invalidReason(validation: TokenValidation): string {
  if (validation.valid) assert.fail('expected the token to be refused');
  return validation.reason;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A token signed by any key with any header, as a foreign or hostile issuer would make it. */
async function craftToken(
  key: KeyObject | Uint8Array,
  header: Record<string, unknown> & { alg: string },
  claims: Record<string, unknown> = {},
  atSeconds = nowSeconds(),
): Promise<string> {
  return new SignJWT({ access: [], ...claims })
    .setProtectedHeader(header)
    .setIssuer(typeof claims.iss === 'string' ? claims.iss : ISSUER)
    .setAudience(typeof claims.aud === 'string' ? claims.aud : SERVICE)
    .setIssuedAt(atSeconds)
    .setExpirationTime(atSeconds + 300)
    .sign(key);
}

describe('signing keys', () => {
  test('generated on first start with mode 0600, the same key on the next', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'keys', 'token.pem');
      const created = await loadOrCreateSigningKey(path);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.match(await readFile(path, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
      const again = await loadOrCreateSigningKey(path);
      assert.equal(again.keyId, created.keyId);
      assert.equal((await loadSigningKey(path)).keyId, created.keyId);
      assert.match(created.keyId, /^[A-Za-z0-9_-]{43}$/, 'a JWK thumbprint');
    });
  });

  test('servers starting together end up with one key', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'token.pem');
      const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateSigningKey(path)));
      assert.equal(new Set(keys.map((key) => key.keyId)).size, 1);
    });
  });

  test('a SEC1 EC key is accepted; other keys and junk are errors naming the file', async () => {
    await withTempDir(async (dir) => {
      const sec1 = join(dir, 'sec1.pem');
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await writeFile(sec1, privateKey.export({ format: 'pem', type: 'sec1' }));
      assert.ok((await loadSigningKey(sec1)).keyId);

      const rsa = join(dir, 'rsa.pem');
      const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      await writeFile(rsa, rsaKey.export({ format: 'pem', type: 'pkcs8' }));
      await assert.rejects(
        loadSigningKey(rsa),
        new RegExp(`^StrataError: ${rsa}: the token signing key must be an EC P-256`),
      );

      const p384 = join(dir, 'p384.pem');
      const p384Key = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
      await writeFile(p384, p384Key.export({ format: 'pem', type: 'pkcs8' }));
      await assert.rejects(loadSigningKey(p384), /must be an EC P-256/);

      const junk = join(dir, 'junk.pem');
      await writeFile(junk, 'not a key');
      await assert.rejects(
        loadOrCreateSigningKey(junk),
        new RegExp(`^StrataError: ${junk}: not a PEM private key`),
      );
      await assert.rejects(
        loadSigningKey(join(dir, 'missing.pem')),
        /missing\.pem: token signing key not found/,
      );
    });
  });

  test('libtrust key IDs match Docker’s (a key from a schema 1 manifest signature)', () => {
    const key = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: 'daLesX_y73FSCFCaBuCR8offV_m7XEohHZJ9z-6WvOM',
        y: 'pLEDUlQMDiEQqheWYVC55BPIB0m8BIhI-fxQBCH_wA0',
      },
      format: 'jwk',
    });
    assert.equal(libtrustKeyId(key), 'SVNG:A2VR:TQJG:H626:HBKH:6WBU:GFBH:3YNI:425G:MDXK:ULXZ:CENN');
  });
});

describe('issued tokens', () => {
  test('carry iss, sub, aud, exp, nbf, iat, jti, access and the key ID', async () => {
    const key = await newSigningKey();
    const issuer = new TokenIssuer({ name: ISSUER, key });
    const access: Scope[] = [{ type: 'repository', name: 'localhost:5000/app', actions: ['pull', 'push'] }];
    const issued = await issuer.issue({ subject: 'alice', audience: SERVICE, access, expiresInSeconds: 300 });
    const header = decodeProtectedHeader(issued.token);
    assert.deepEqual(header, { alg: 'ES256', typ: 'JWT', kid: key.keyId });
    const claims = decodeJwt(issued.token);
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, SERVICE);
    assert.equal(claims.exp, (claims.iat ?? 0) + 300);
    assert.equal(claims.nbf, claims.iat);
    assert.equal(issued.issuedAt.getTime(), (claims.iat ?? 0) * 1000);
    assert.equal(issued.expiresInSeconds, 300);
    assert.deepEqual(claims.access, access);
    const other = await issuer.issue({ subject: 'alice', audience: SERVICE, access, expiresInSeconds: 300 });
    assert.notEqual(decodeJwt(other.token).jti, claims.jti);
  });

  test('anonymous tokens have an empty subject; lifetimes are never under 60 s', async () => {
    const issuer = new TokenIssuer({ name: ISSUER, key: await newSigningKey() });
    const issued = await issuer.issue({
      subject: undefined,
      audience: SERVICE,
      access: [],
      expiresInSeconds: 5,
    });
    const claims = decodeJwt(issued.token);
    assert.equal(claims.sub, '');
    assert.equal(issued.expiresInSeconds, 60);
    assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 60);
  });
});

describe('token validation', () => {
  const setUp = async (options: { now?: () => number } = {}) => {
    const key = await newSigningKey();
    const issuer = new TokenIssuer({ name: ISSUER, key, ...options });
    const validator = createTokenValidator({ audience: SERVICE, issuers: [issuer.trusted()], ...options });
    return { key, issuer, validator };
  };

  test('accepts the built-in issuer’s tokens and returns subject and access', async () => {
    const { issuer, validator } = await setUp();
    const access: Scope[] = [{ type: 'repository', name: 'a/b', actions: ['pull'] }];
    const issued = await issuer.issue({ subject: 'alice', audience: SERVICE, access, expiresInSeconds: 300 });
    const token = validToken(await validator.validate(issued.token));
    assert.equal(token.subject, 'alice');
    assert.equal(token.issuer, ISSUER);
    assert.deepEqual(token.access, access);
    const anonymous = await issuer.issue({
      subject: undefined,
      audience: SERVICE,
      access,
      expiresInSeconds: 300,
    });
    assert.equal(validToken(await validator.validate(anonymous.token)).subject, undefined);
  });

  test('an expired token is refused after 60 s of leeway, a future one before', async () => {
    let now = Date.now();
    const { issuer, validator } = await setUp({ now: () => now });
    const issued = await issuer.issue({ subject: 'a', audience: SERVICE, access: [], expiresInSeconds: 300 });
    now += 300_000 + 59_000;
    validToken(await validator.validate(issued.token));
    now += 2_000;
    assert.equal(invalidReason(await validator.validate(issued.token)), 'token expired');

    now = Date.now() - 120_000;
    const early = await issuer.issue({ subject: 'a', audience: SERVICE, access: [], expiresInSeconds: 300 });
    now = Date.now() - 240_000;
    assert.equal(invalidReason(await validator.validate(early.token)), 'token not valid yet');
  });

  test('a token for another audience is refused', async () => {
    const { issuer, validator } = await setUp();
    const issued = await issuer.issue({
      subject: 'a',
      audience: 'other.registry',
      access: [],
      expiresInSeconds: 300,
    });
    assert.equal(invalidReason(await validator.validate(issued.token)), 'token issued for another service');
  });

  test('a token signed by another key is refused, with or without the trusted key ID', async () => {
    const { key, validator } = await setUp();
    const stranger = await newSigningKey();
    const forged = await craftToken(stranger.privateKey, { alg: 'ES256', kid: key.keyId });
    assert.equal(invalidReason(await validator.validate(forged)), 'token signature is not valid');
    const ownKid = await craftToken(stranger.privateKey, { alg: 'ES256', kid: stranger.keyId });
    assert.equal(invalidReason(await validator.validate(ownKid)), 'token signed by an unknown key');
    const noKid = await craftToken(key.privateKey, { alg: 'ES256' });
    assert.match(invalidReason(await validator.validate(noKid)), /names no signing key/);
  });

  test('an untrusted issuer is refused even with a trusted key', async () => {
    const { key, validator } = await setUp();
    const token = await craftToken(key.privateKey, { alg: 'ES256', kid: key.keyId }, { iss: 'someone-else' });
    assert.equal(invalidReason(await validator.validate(token)), 'token issuer is not trusted');
  });

  test('alg=none is refused', async () => {
    const { key, validator } = await setUp();
    const unsigned = new UnsecuredJWT({ access: [{ type: 'repository', name: 'a', actions: ['push'] }] })
      .setIssuer(ISSUER)
      .setAudience(SERVICE)
      .setExpirationTime('5m')
      .encode();
    assert.match(invalidReason(await validator.validate(unsigned)), /algorithm "none" is not accepted/);
    // The same with a kid pointing at the trusted key.
    const [, payload] = unsigned.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'none', kid: key.keyId })).toString('base64url');
    assert.match(invalidReason(await validator.validate(`${header}.${payload}.`)), /not accepted/);
  });

  test('HS256 with the public key as the shared secret is refused', async () => {
    const { key, validator } = await setUp();
    const publicPem = key.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    for (const secret of [publicPem, JSON.stringify(key.publicKey.export({ format: 'jwk' }))]) {
      const forged = await craftToken(new TextEncoder().encode(secret), { alg: 'HS256', kid: key.keyId });
      assert.match(invalidReason(await validator.validate(forged)), /algorithm "HS256" is not accepted/);
    }
  });

  test('malformed tokens and access claims are refused; unknown actions and types are ignored', async () => {
    const { key, validator } = await setUp();
    for (const junk of ['', 'abc', 'a.b.c', '....', 'eyJhbGciOiJFUzI1NiJ9.e30']) {
      assert.equal(invalidReason(await validator.validate(junk)), 'malformed token', junk);
    }
    const header = { alg: 'ES256', kid: key.keyId };
    for (const access of [
      'x',
      [1],
      [{ type: 'repository' }],
      [{ type: 'repository', name: 'a', actions: 'pull' }],
    ]) {
      const token = await craftToken(key.privateKey, header, { access });
      assert.equal(invalidReason(await validator.validate(token)), 'token access claim is malformed');
    }
    const lenient = await craftToken(key.privateKey, header, {
      access: [
        { type: 'repository', name: 'a', actions: ['pull', 'admin', 'pull'] },
        { type: 'future-type', name: 'x', actions: ['*'] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
      ],
    });
    assert.deepEqual(validToken(await validator.validate(lenient)).access, [
      { type: 'repository', name: 'a', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    const noExp = await new SignJWT({ access: [] })
      .setProtectedHeader(header)
      .setIssuer(ISSUER)
      .setAudience(SERVICE)
      .sign(key.privateKey);
    assert.match(invalidReason(await validator.validate(noExp)), /"exp"/);
  });

  test('a refresh token is not an access token, and an access token is not a refresh token', async () => {
    const { issuer, validator } = await setUp();
    const refresh = await issuer.issueRefreshToken({
      subject: 'a',
      audience: SERVICE,
      credentialFingerprint: 'f',
    });
    invalidReason(await validator.validate(refresh));
    const expiring = await issuer.issueRefreshToken({
      subject: 'a',
      audience: SERVICE,
      credentialFingerprint: 'f',
      expiresInSeconds: 3600,
    });
    assert.equal(invalidReason(await validator.validate(expiring)), 'token issued for another service');
    const access = await issuer.issue({ subject: 'a', audience: SERVICE, access: [], expiresInSeconds: 300 });
    assert.equal(await issuer.verifyRefreshToken(access.token, SERVICE), undefined);
    assert.deepEqual(await issuer.verifyRefreshToken(refresh, SERVICE), {
      subject: 'a',
      credentialFingerprint: 'f',
    });
    assert.equal(await issuer.verifyRefreshToken(refresh, 'other'), undefined);
  });
});

describe('external issuers: x5c chains', () => {
  const cert = (name: keyof typeof FIXTURES): X509Certificate => new X509Certificate(FIXTURES[name].cert);
  const key = (name: keyof typeof FIXTURES): KeyObject => createPrivateKey(FIXTURES[name].key);
  const x5c = (...names: (keyof typeof FIXTURES)[]): string[] =>
    names.map((name) => cert(name).raw.toString('base64'));
  // The fixtures were made with validity periods of 10 years (leaves) and 100 years (CAs) from
  // one day; tests run at times relative to that day, whatever today's date is.
  const issuedOn = Date.parse(cert('LEAF').validFrom);
  const day = 86_400_000;

  const setUp = async (at: number) => {
    const bundle = await withTempDir(async (dir) => {
      const path = join(dir, 'bundle.pem');
      await writeFile(path, `${FIXTURES.ROOT.cert}\n`);
      return loadTrustedIssuer({ issuer: 'external', rootCertBundle: path });
    });
    const validator = createTokenValidator({ audience: SERVICE, issuers: [bundle], now: () => at });
    const sign = (signer: keyof typeof FIXTURES, chain: unknown): Promise<string> =>
      craftToken(key(signer), { alg: 'ES256', x5c: chain }, { iss: 'external' }, Math.floor(at / 1000));
    return { validator, sign, bundle };
  };

  test('leaf → intermediate → bundle root is accepted', async () => {
    const { validator, sign } = await setUp(issuedOn + day);
    validToken(await validator.validate(await sign('LEAF', x5c('LEAF', 'INTERMEDIATE'))));
  });

  test('a root of the bundle signing for itself is accepted (the usual self-signed set-up)', async () => {
    const { validator, sign } = await setUp(issuedOn + day);
    validToken(await validator.validate(await sign('ROOT', x5c('ROOT'))));
  });

  test('broken chains are refused', async () => {
    const { validator, sign } = await setUp(issuedOn + day);
    const cases: [keyof typeof FIXTURES, unknown, RegExp][] = [
      ['LEAF', x5c('LEAF'), /does not lead to a trusted root/],
      ['LEAF', x5c('INTERMEDIATE', 'LEAF'), /not signed by certificate 1|is not a CA/],
      [
        'LEAF_UNDER_OTHER_ROOT',
        x5c('LEAF_UNDER_OTHER_ROOT', 'OTHER_ROOT'),
        /does not lead to a trusted root/,
      ],
      ['LEAF_UNDER_NOT_CA', x5c('LEAF_UNDER_NOT_CA', 'NOT_CA_INTERMEDIATE'), /certificate 1 is not a CA/],
      ['LEAF', x5c('LEAF', 'OTHER_ROOT'), /not signed by certificate 1/],
      ['LEAF', [], /x5c chain malformed/],
      ['LEAF', 'not-an-array', /x5c chain malformed/],
      ['LEAF', ['@@@'], /x5c chain malformed/],
      ['LEAF', ['AAAA'], /unparseable certificate/],
      ['LEAF', Array.from({ length: 11 }, () => x5c('LEAF')[0]), /x5c chain malformed/],
    ];
    for (const [signer, chain, reason] of cases) {
      assert.match(
        invalidReason(await validator.validate(await sign(signer, chain))),
        reason,
        String(reason),
      );
    }
  });

  test('the signature must be the chain leaf’s', async () => {
    const { validator, sign } = await setUp(issuedOn + day);
    const token = await sign('LEAF_UNDER_OTHER_ROOT', x5c('LEAF', 'INTERMEDIATE'));
    assert.equal(invalidReason(await validator.validate(token)), 'token signature is not valid');
  });

  test('every certificate must be within its validity period', async () => {
    const leafExpiry = Date.parse(cert('LEAF').validTo);
    const late = await setUp(leafExpiry + day);
    assert.match(
      invalidReason(await late.validator.validate(await late.sign('LEAF', x5c('LEAF', 'INTERMEDIATE')))),
      /certificate 0 is outside its validity period/,
    );
    const early = await setUp(issuedOn - day);
    assert.match(
      invalidReason(await early.validator.validate(await early.sign('LEAF', x5c('LEAF', 'INTERMEDIATE')))),
      /outside its validity period/,
    );
    const rootExpiry = Date.parse(cert('ROOT').validTo);
    const afterRoot = await setUp(rootExpiry + day);
    assert.match(
      invalidReason(await afterRoot.validator.validate(await afterRoot.sign('ROOT', x5c('ROOT')))),
      /outside its validity period/,
    );
  });

  test('a bundle key named by its libtrust key ID (as docker_auth signs) is accepted', async () => {
    const at = issuedOn + day;
    const { validator } = await setUp(at);
    const rootKey = cert('ROOT').publicKey;
    const token = await craftToken(
      key('ROOT'),
      { alg: 'ES256', kid: libtrustKeyId(rootKey) },
      { iss: 'external' },
      Math.floor(at / 1000),
    );
    validToken(await validator.validate(token));
  });

  test('an issuer without roots refuses x5c tokens', () => {
    assert.match(
      String(verifyCertificateChain(x5c('ROOT'), [], new Date(issuedOn + day))),
      /not configured with root certificates/,
    );
  });

  test('bundle errors name the file and line', async () => {
    const text = `${FIXTURES.ROOT.cert}\n\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`;
    const line = FIXTURES.ROOT.cert.split('\n').length + 2;
    assert.throws(
      () => parseCertificateBundle(text, 'ca.pem'),
      new RegExp(`^StrataError: ca\\.pem:${line}: not a valid certificate`),
    );
    assert.throws(
      () => parseCertificateBundle('nothing here', 'ca.pem'),
      /ca\.pem: no PEM certificate found/,
    );
    assert.equal(
      parseCertificateBundle(`${FIXTURES.ROOT.cert}\n${FIXTURES.OTHER_ROOT.cert}`, 'ca.pem').length,
      2,
    );
  });
});

describe('external issuers: JWKS and public keys', () => {
  test('a JWKS key is found by its kid', async () => {
    await withTempDir(async (dir) => {
      const signer = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const path = join(dir, 'jwks.json');
      await writeFile(
        path,
        JSON.stringify({ keys: [{ ...signer.publicKey.export({ format: 'jwk' }), kid: 'key-1' }] }),
      );
      const trusted = await loadTrustedIssuer({ issuer: 'idp', jwks: path });
      const validator = createTokenValidator({ audience: SERVICE, issuers: [trusted] });
      const good = await craftToken(
        signer.privateKey,
        { alg: 'ES384', kid: 'key-1' },
        { iss: 'idp', sub: 'svc' },
      );
      assert.equal(validToken(await validator.validate(good)).subject, 'svc');
      const wrongKid = await craftToken(signer.privateKey, { alg: 'ES384', kid: 'key-2' }, { iss: 'idp' });
      assert.equal(invalidReason(await validator.validate(wrongKid)), 'token signed by an unknown key');
      // An alg that does not fit the key (ES256 named, a P-384 key found) is refused by jose.
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const mismatched = await craftToken(
        stranger.privateKey,
        { alg: 'ES256', kid: 'key-1' },
        { iss: 'idp' },
      );
      assert.equal(
        invalidReason(await validator.validate(mismatched)),
        'token algorithm does not fit its signing key',
      );
    });
  });

  test('an RSA public key PEM is found by its thumbprint or libtrust key ID', async () => {
    await withTempDir(async (dir) => {
      const signer = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const path = join(dir, 'issuer.pub.pem');
      await writeFile(path, signer.publicKey.export({ format: 'pem', type: 'spki' }));
      const trusted: TrustedIssuer = await loadTrustedIssuer({ issuer: 'idp', publicKey: path });
      const validator = createTokenValidator({ audience: SERVICE, issuers: [trusted] });
      const thumbprint = await calculateJwkThumbprint(
        signer.publicKey.export({ format: 'jwk' }) as Parameters<typeof calculateJwkThumbprint>[0],
      );
      for (const kid of [thumbprint, libtrustKeyId(signer.publicKey)]) {
        validToken(
          await validator.validate(
            await craftToken(signer.privateKey, { alg: 'RS256', kid }, { iss: 'idp' }),
          ),
        );
      }
    });
  });

  test('configuration errors name the file (and the key)', async () => {
    await withTempDir(async (dir) => {
      const write = async (name: string, text: string): Promise<string> => {
        const path = join(dir, name);
        await writeFile(path, text);
        return path;
      };
      const expectError = async (
        config: Parameters<typeof loadTrustedIssuer>[0],
        message: RegExp,
      ): Promise<void> => {
        await assert.rejects(
          loadTrustedIssuer(config),
          (err: unknown) => isStrataError(err, 'INVALID_CONFIG') && message.test(err.message),
        );
      };
      const oct = await write('oct.json', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
      await expectError({ issuer: 'i', jwks: oct }, /oct\.json: keys\[0\]: symmetric keys are not accepted/);
      const privateJwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
        format: 'jwk',
      });
      const priv = await write('private.json', JSON.stringify({ keys: [privateJwk] }));
      await expectError({ issuer: 'i', jwks: priv }, /private\.json: keys\[0\]: a private key/);
      const notJson = await write('bad.json', '{');
      await expectError({ issuer: 'i', jwks: notJson }, /bad\.json: not JSON/);
      const empty = await write('empty.json', '{"keys": []}');
      await expectError({ issuer: 'i', jwks: empty }, /empty\.json: expected a JWK set/);
      const junkKey = await write(
        'junk.json',
        JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] }),
      );
      await expectError({ issuer: 'i', jwks: junkKey }, /junk\.json: keys\[0\]: not a usable public key/);
      const notPem = await write('key.pem', 'nope');
      await expectError({ issuer: 'i', publicKey: notPem }, /key\.pem: not a PEM public key/);
      await expectError({ issuer: 'i', publicKey: join(dir, 'missing.pem') }, /missing\.pem: cannot be read/);
      await expectError({ issuer: 'i' }, /token issuer "i": give rootCertBundle, jwks or publicKey/);
    });
  });
});

describe('token endpoint', () => {
  const temporaryDirectories: string[] = [];
  after(() => Promise.all(temporaryDirectories.map((dir) => rm(dir, { recursive: true, force: true }))));

  const setUp = async ({
    withUsers = true,
    ...overrides
  }: Partial<TokenEndpointOptions> & { withUsers?: boolean } = {}) => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-token-'));
    temporaryDirectories.push(dir);
    const htpasswdPath = join(dir, 'htpasswd');
    const hash = (password: string): string => `$2y$${bcrypt.hashSync(password, 4).slice(4)}`;
    await writeFile(htpasswdPath, `alice:${hash('alice-pw')}\nbob:${hash('bob-pw')}\n`);
    const users = await Htpasswd.load(htpasswdPath, { checkIntervalMs: 0 });
    const issuer = new TokenIssuer({ name: ISSUER, key: await newSigningKey() });
    const endpoint = createTokenEndpoint({
      path: '/token',
      service: SERVICE,
      issuer,
      users: withUsers ? users : undefined,
      rules: undefined,
      anonymousRead: false,
      ...overrides,
    });
    const validator = createTokenValidator({ audience: SERVICE, issuers: [issuer.trusted()] });
    const changePassword = async (user: string, password: string): Promise<void> => {
      const text = await readFile(htpasswdPath, 'utf8');
      const lines = text
        .split('\n')
        .map((line) => (line.startsWith(`${user}:`) ? `${user}:${hash(password)}` : line));
      await writeFile(htpasswdPath, `${lines.join('\n')}\n# changed\n`);
    };
    return { endpoint, validator, changePassword };
  };

  const get = (query: string, authorization?: string): TokenRequest => ({
    method: 'GET',
    query: new URLSearchParams(query),
    ...(authorization === undefined ? {} : { authorization }),
  });
  const post = (form: Record<string, string>): TokenRequest => ({
    method: 'POST',
    query: new URLSearchParams(),
    form: new URLSearchParams(form),
  });
  const basic = (user: string, password: string): string =>
    `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const body = (response: TokenResponse): Record<string, unknown> => {
    assert.equal(typeof response.body, 'object');
    return response.body as Record<string, unknown>;
  };
  const accessOf = async (
    validator: ReturnType<typeof createTokenValidator>,
    response: TokenResponse,
  ): Promise<readonly Scope[]> => {
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return validToken(await validator.validate(String(body(response).token))).access;
  };

  test('answers with token and access_token (the same), expires_in and issued_at', async () => {
    const { endpoint, validator } = await setUp();
    assert.equal(endpoint.path, '/token');
    const response = await endpoint.handle(
      get(`service=${SERVICE}&scope=repository:a:pull`, basic('alice', 'alice-pw')),
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers?.['content-type'], 'application/json');
    const fields = body(response);
    assert.equal(fields.token, fields.access_token);
    assert.equal(fields.expires_in, 300);
    assert.match(String(fields.issued_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(fields.refresh_token, undefined);
    const token = validToken(await validator.validate(String(fields.token)));
    assert.equal(token.subject, 'alice');
    assert.deepEqual(token.access, [{ type: 'repository', name: 'a', actions: ['pull'] }]);
  });

  test('scopes repeated and space-joined, merged per repository; host:port names', async () => {
    const { endpoint, validator } = await setUp();
    const response = await endpoint.handle(
      get(
        `service=${SERVICE}&scope=repository:localhost:5000/a:pull repository:b:push&scope=repository:localhost:5000/a:push&scope=registry:catalog:*`,
        basic('alice', 'alice-pw'),
      ),
    );
    assert.deepEqual(await accessOf(validator, response), [
      { type: 'repository', name: 'localhost:5000/a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'b', actions: ['push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  test('insufficient rights are not an error: the token carries fewer actions, maybe none', async () => {
    const rules = [
      { account: 'alice', repository: 'alice/**', actions: ['pull' as const, 'push' as const] },
      { account: '*', repository: 'shared/*', actions: ['pull' as const] },
    ];
    const { endpoint, validator } = await setUp({ rules });
    const asBob = await endpoint.handle(
      get('scope=repository:alice/app:pull,push&scope=repository:shared/x:pull,push', basic('bob', 'bob-pw')),
    );
    assert.deepEqual(await accessOf(validator, asBob), [
      { type: 'repository', name: 'shared/x', actions: ['pull'] },
    ]);
    const anonymous = await endpoint.handle(get('scope=repository:alice/app:pull'));
    assert.deepEqual(await accessOf(validator, anonymous), []);
  });

  test('anonymous tokens: pull only with anonymous read, nothing without', async () => {
    const open = await setUp({ anonymousRead: true });
    const response = await open.endpoint.handle(get('scope=repository:x:pull,push'));
    assert.deepEqual(await accessOf(open.validator, response), [
      { type: 'repository', name: 'x', actions: ['pull'] },
    ]);
    assert.equal(validToken(await open.validator.validate(String(body(response).token))).subject, undefined);
    const closed = await setUp();
    assert.deepEqual(
      await accessOf(closed.validator, await closed.endpoint.handle(get('scope=repository:x:pull'))),
      [],
    );
  });

  test('bad credentials are a 401 JSON error; so are credentials when there are no accounts', async () => {
    const { endpoint } = await setUp();
    for (const authorization of [basic('alice', 'wrong'), basic('mallory', 'x'), 'Basic !!!', 'Bearer abc']) {
      const response = await endpoint.handle(get('scope=repository:a:pull', authorization));
      assert.equal(response.status, 401, authorization);
      assert.match(response.headers?.['www-authenticate'] ?? '', /^Basic realm="registry\.test"$/);
      const errors = body(response).errors as { code: string; message: string }[];
      assert.equal(errors[0]?.code, 'UNAUTHORIZED');
    }
    const accountless = await setUp({ withUsers: false });
    assert.equal((await accountless.endpoint.handle(get('', basic('alice', 'alice-pw')))).status, 401);
    assert.equal((await accountless.endpoint.handle(get(''))).status, 200);
  });

  test('a token for another service, or too many scopes, is a 400', async () => {
    const { endpoint } = await setUp();
    const other = await endpoint.handle(get('service=other.registry&scope=repository:a:pull'));
    assert.equal(other.status, 400);
    assert.match(String(body(other).error_description), /serves "registry\.test", not "other\.registry"/);
    const many = Array.from({ length: 101 }, (_, index) => `scope=repository:r${index}:pull`).join('&');
    assert.equal((await endpoint.handle(get(many))).status, 400);
  });

  test('the configured lifetime is used, never under 60 s', async () => {
    const short = await setUp({ expiresInSeconds: 10 });
    assert.equal(body(await short.endpoint.handle(get(''))).expires_in, 60);
    const long = await setUp({ expiresInSeconds: 3600 });
    assert.equal(body(await long.endpoint.handle(get(''))).expires_in, 3600);
  });

  test('OAuth2 password grant', async () => {
    const { endpoint, validator } = await setUp();
    const response = await endpoint.handle(
      post({
        grant_type: 'password',
        username: 'alice',
        password: 'alice-pw',
        service: SERVICE,
        scope: 'repository:a:pull repository:b:push',
        client_id: 'test',
      }),
    );
    assert.deepEqual(await accessOf(validator, response), [
      { type: 'repository', name: 'a', actions: ['pull'] },
      { type: 'repository', name: 'b', actions: ['push'] },
    ]);
    assert.equal(body(response).scope, 'repository:a:pull repository:b:push');
    assert.equal(body(response).token, body(response).access_token);
    const wrong = await endpoint.handle(post({ grant_type: 'password', username: 'alice', password: 'x' }));
    assert.equal(wrong.status, 401);
    assert.equal(body(wrong).error, 'invalid_grant');
    const missing = await endpoint.handle(post({ grant_type: 'password', username: 'alice' }));
    assert.equal(missing.status, 400);
    const unknown = await endpoint.handle(post({ grant_type: 'client_credentials' }));
    assert.equal(unknown.status, 400);
    assert.equal(body(unknown).error, 'unsupported_grant_type');
  });

  test('refresh tokens: offered to logins that ask, revoked by a password change', async () => {
    const { endpoint, validator, changePassword } = await setUp();
    const login = await endpoint.handle(
      get(`service=${SERVICE}&offline_token=true&client_id=docker`, basic('alice', 'alice-pw')),
    );
    const refreshToken = String(body(login).refresh_token);
    assert.ok(refreshToken.split('.').length === 3);
    assert.equal(
      body(await endpoint.handle(get('offline_token=true'))).refresh_token,
      undefined,
      'anonymous clients get none',
    );

    const refreshed = await endpoint.handle(
      post({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        service: SERVICE,
        scope: 'repository:a:push',
      }),
    );
    assert.deepEqual(await accessOf(validator, refreshed), [
      { type: 'repository', name: 'a', actions: ['push'] },
    ]);
    assert.equal(validToken(await validator.validate(String(body(refreshed).token))).subject, 'alice');
    assert.equal(body(refreshed).refresh_token, refreshToken);

    const viaPassword = await endpoint.handle(
      post({ grant_type: 'password', username: 'bob', password: 'bob-pw', access_type: 'offline' }),
    );
    assert.ok(typeof body(viaPassword).refresh_token === 'string');

    const forged = await endpoint.handle(post({ grant_type: 'refresh_token', refresh_token: 'x.y.z' }));
    assert.equal(forged.status, 401);
    const access = String(body(login).token);
    assert.equal(
      (await endpoint.handle(post({ grant_type: 'refresh_token', refresh_token: access }))).status,
      401,
    );

    await changePassword('alice', 'new-pw');
    const revoked = await endpoint.handle(post({ grant_type: 'refresh_token', refresh_token: refreshToken }));
    assert.equal(revoked.status, 401);
    assert.equal(body(revoked).error, 'invalid_grant');
  });

  test('refresh tokens can be turned off', async () => {
    const { endpoint } = await setUp({ refreshTokens: false });
    const login = await endpoint.handle(get('offline_token=true', basic('alice', 'alice-pw')));
    assert.equal(body(login).refresh_token, undefined);
    const grant = await endpoint.handle(post({ grant_type: 'refresh_token', refresh_token: 'x' }));
    assert.equal(grant.status, 400);
    assert.equal(body(grant).error, 'unsupported_grant_type');
  });
});
