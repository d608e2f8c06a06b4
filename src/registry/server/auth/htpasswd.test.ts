import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';

import { isStrataError } from '../../../errors.js';
import { withTempDir } from '../../../store/testing/helpers.js';
import { Htpasswd, parseBasicAuthorization, parseHtpasswd } from './htpasswd.js';

/** A bcrypt hash with the prefix htpasswd -B writes ($2y$); bcryptjs itself writes $2b$. */
function hashOf(password: string, cost = 4, prefix = '$2y$'): string {
  return prefix + bcrypt.hashSync(password, cost).slice(4);
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** bcrypt's comparison, recording the hash of each call. */
function countingCompare(): {
  compare: (password: string, hash: string) => Promise<boolean>;
  hashes: string[];
} {
  const hashes: string[] = [];
  return {
    hashes,
    compare: (password, hash) => {
      hashes.push(hash);
      return bcrypt.compare(password, hash);
    },
  };
}

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let current = start;
  return { now: () => current, advance: (ms) => void (current += ms) };
}

/** Writes the file and gives it a distinct mtime, as a later edit would have. */
async function rewrite(path: string, text: string, mtimeSeconds: number): Promise<void> {
  await writeFile(path, text);
  await utimes(path, mtimeSeconds, mtimeSeconds);
}

describe('htpasswd files', () => {
  test('user:hash lines, comments, blank lines, CRLF, all three bcrypt prefixes', () => {
    const text = [
      '# accounts',
      '',
      `alice:${hashOf('a', 4, '$2y$')}`,
      `  bob:${hashOf('b', 4, '$2a$')}  `,
      `carol:${hashOf('c', 4, '$2b$')}\r`,
      '',
    ].join('\n');
    assert.deepEqual([...parseHtpasswd(text, 'users').keys()], ['alice', 'bob', 'carol']);
  });

  test('hashes other than bcrypt are a load error naming file, line and user, not the hash', () => {
    const cases: [string, RegExp][] = [
      [
        'bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/',
        /^users:2: user "bob" has a MD5 \(apr1\) hash; only bcrypt/,
      ],
      ['bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /^users:2: user "bob" has a SHA-1 hash/],
      ['bob:$6$salt$abcdefgh', /^users:2: user "bob" has a SHA-crypt hash/],
      ['bob:plaintext', /^users:2: user "bob" has a hash of an unsupported kind/],
      ['bob:$2y$10$tooShort', /^users:2: user "bob" has a malformed bcrypt hash/],
      ['no-colon-here', /^users:2: expected "user:bcrypt-hash"$/],
      [':$2y$04$' + 'a'.repeat(53), /^users:2: expected "user:bcrypt-hash"$/],
      [`alice:${hashOf('x')}`, /^users:2: user "alice" is already defined on line 1$/],
    ];
    for (const [line, message] of cases) {
      const text = `alice:${hashOf('a')}\n${line}\n`;
      assert.throws(
        () => parseHtpasswd(text, 'users'),
        (err: unknown) =>
          isStrataError(err, 'INVALID_CONFIG') &&
          message.test(err.message) &&
          !err.message.includes('$apr1$r31'),
        line,
      );
    }
  });

  test('a missing file is an error naming it', async () => {
    await assert.rejects(
      Htpasswd.load('/nonexistent/htpasswd'),
      /\/nonexistent\/htpasswd: htpasswd file not found/,
    );
  });
});

describe('Basic credentials', () => {
  test('parses user and password; the password may contain colons', () => {
    assert.deepEqual(parseBasicAuthorization(basic('alice', 'pa:ss:')), {
      user: 'alice',
      password: 'pa:ss:',
    });
    assert.deepEqual(parseBasicAuthorization(`basic   ${Buffer.from('u:').toString('base64')}`), {
      user: 'u',
      password: '',
    });
  });

  test('malformed headers parse to nothing', () => {
    for (const header of [
      '',
      'Basic',
      'Basic ',
      'Bearer abc',
      'Basic !!!!',
      `Basic ${Buffer.from('no-colon').toString('base64')}`,
      `Basic ${Buffer.from(':password-only').toString('base64')}`,
      'Basic a',
      'Basic YWxpY2U6eA== extra',
    ]) {
      assert.equal(parseBasicAuthorization(header), undefined, header);
    }
  });
});

describe('verification', () => {
  test('right password, wrong password, unknown user, Authorization headers', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'htpasswd');
      await writeFile(path, `alice:${hashOf('secret')}\n`);
      const users = await Htpasswd.load(path);
      assert.deepEqual(users.users(), ['alice']);
      assert.equal(await users.verify('alice', 'secret'), true);
      assert.equal(await users.verify('alice', 'Secret'), false);
      assert.equal(await users.verify('alice', ''), false);
      assert.equal(await users.verify('mallory', 'secret'), false);
      assert.equal(await users.verifyAuthorization(basic('alice', 'secret')), 'alice');
      assert.equal(await users.verifyAuthorization(basic('alice', 'nope')), undefined);
      assert.equal(await users.verifyAuthorization('Basic ???'), undefined);
      assert.equal(await users.verifyAuthorization(undefined), undefined);
    });
  });

  test('an unknown user costs a bcrypt comparison too (no user enumeration by timing)', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'htpasswd');
      await writeFile(
        path,
        `alice:${hashOf('secret', 4)}\ncarol:${hashOf('x', 4)}\nbob:${hashOf('other', 6)}\n`,
      );
      const compared = countingCompare();
      const users = await Htpasswd.load(path, { compare: compared.compare });
      assert.equal(await users.verify('nobody', 'wrong'), false);
      assert.equal(await users.verify('nobody', 'secret'), false);
      // Each unknown user paid one real bcrypt comparison, against a dummy hash of the file's most
      // common cost (4: alice's and carol's), not the slowest user's.
      assert.equal(compared.hashes.length, 2);
      for (const hash of compared.hashes) assert.match(hash, /^\$2[aby]\$04\$/);
    });
  });

  test('successful verifications are remembered; failures are not; entries expire', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'htpasswd');
      await writeFile(path, `alice:${hashOf('secret', 8)}\n`);
      const clock = manualClock();
      const compared = countingCompare();
      const users = await Htpasswd.load(path, {
        now: clock.now,
        cacheTtlMs: 60_000,
        compare: compared.compare,
      });
      assert.equal(await users.verify('alice', 'secret'), true);
      assert.equal(await users.verify('alice', 'secret'), true);
      assert.equal(compared.hashes.length, 1, 'the second verification is remembered');
      assert.equal(await users.verify('alice', 'wrong'), false);
      assert.equal(await users.verify('alice', 'wrong'), false);
      assert.equal(compared.hashes.length, 3, 'a wrong password pays bcrypt every time');
      clock.advance(60_001);
      assert.equal(await users.verify('alice', 'secret'), true);
      assert.equal(compared.hashes.length, 4, 'an expired entry is verified again');
    });
  });

  test('the cache holds at most cacheEntries verifications (least recently used goes)', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'htpasswd');
      const names = ['u1', 'u2', 'u3'];
      await writeFile(path, names.map((name) => `${name}:${hashOf(name, 4)}\n`).join(''));
      const compared = countingCompare();
      const users = await Htpasswd.load(path, { cacheEntries: 2, compare: compared.compare });
      for (const name of names) await users.verify(name, name); // u3 evicts u1
      assert.equal(compared.hashes.length, 3);
      assert.equal(await users.verify('u3', 'u3'), true);
      assert.equal(compared.hashes.length, 3, 'u3 is still remembered');
      assert.equal(await users.verify('u1', 'u1'), true);
      assert.equal(compared.hashes.length, 4, 'u1 was evicted and pays bcrypt again');
    });
  });

  test('the file is reloaded when it changes, checked at most once per interval', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'htpasswd');
      await rewrite(path, `alice:${hashOf('one')}\n`, 1_000_000);
      const clock = manualClock();
      const users = await Htpasswd.load(path, { now: clock.now });
      assert.equal(await users.verify('alice', 'one'), true);
      const fingerprint = await users.credentialFingerprint('alice');
      assert.ok(fingerprint !== undefined && fingerprint.length > 10);

      await rewrite(path, `alice:${hashOf('two')}\nbob:${hashOf('b')}\n`, 1_000_100);
      clock.advance(500);
      assert.equal(await users.verify('alice', 'one'), true, 'not checked again within a second');
      assert.equal(await users.verify('bob', 'b'), false);

      clock.advance(500);
      assert.equal(await users.verify('alice', 'one'), false, 'the remembered old password no longer counts');
      assert.equal(await users.verify('alice', 'two'), true);
      assert.equal(await users.verify('bob', 'b'), true);
      assert.notEqual(
        await users.credentialFingerprint('alice'),
        fingerprint,
        'a new password, a new fingerprint',
      );
      assert.equal(await users.credentialFingerprint('nobody'), undefined);

      await rewrite(path, `bob:${hashOf('b')}\n`, 1_000_200);
      clock.advance(1000);
      assert.equal(await users.verify('alice', 'two'), false, 'a removed user is refused');
      assert.deepEqual(users.users(), ['bob']);
    });
  });

  test('a file broken by an edit fails closed, naming file and line, until it is fixed', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'htpasswd');
      await rewrite(path, `alice:${hashOf('one')}\n`, 1_000_000);
      const clock = manualClock();
      const users = await Htpasswd.load(path, { now: clock.now });
      assert.equal(await users.verify('alice', 'one'), true);

      await rewrite(path, `alice:${hashOf('one')}\nbob:$apr1$xyz$abc\n`, 1_000_100);
      clock.advance(1000);
      await assert.rejects(users.verify('alice', 'one'), new RegExp(`^StrataError: ${path}:2: user "bob"`));
      clock.advance(10);
      await assert.rejects(users.verify('alice', 'one'), /:2: user "bob"/, 'still broken between checks');

      await rm(path);
      clock.advance(1000);
      await assert.rejects(
        users.verify('alice', 'one'),
        new RegExp(`^StrataError: ${path}: htpasswd file not found$`),
      );

      await rewrite(path, `alice:${hashOf('one')}\n`, 1_000_300);
      clock.advance(1000);
      assert.equal(await users.verify('alice', 'one'), true);
    });
  });
});
