import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MAX_NAME_LENGTH,
  checkDigest,
  classifyReference,
  isRepositoryName,
  isTag,
  isUploadId,
  parseRoute,
  type Route,
} from './names.js';

const HEX64 = 'a'.repeat(64);
const SHA256 = `sha256:${HEX64}`;
const SHA512 = `sha512:${'b'.repeat(128)}`;

const alnum = fc.stringMatching(/^[a-z0-9]{1,8}$/);
const separator = fc.constantFrom('.', '_', '__', '-', '--', '---');
const component = fc
  .tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 3 }))
  .map(([first, rest]) => first + rest.map(([sep, part]) => sep + part).join(''));
const validName = fc
  .array(component, { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join('/'))
  .filter((name) => name.length <= MAX_NAME_LENGTH);
const validTag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/);

/** Pieces an attacker would try: traversal, escapes, separators, control and look-alike characters. */
const hostilePiece = fc.constantFrom(
  '..',
  '.',
  '/',
  '//',
  '%2e',
  '%2E',
  '%2f',
  '%2F',
  '%5c',
  '%00',
  '\\',
  '\0',
  '\n',
  ' ',
  '_',
  '-',
  '__',
  '___',
  '_layers',
  '_manifests',
  'A',
  'Z',
  'é',
  'ａ',
  '\u202e',
  '\u0130',
  ':',
  '@',
  '?',
  '#',
  '~',
  'a',
  'b0',
  'sha256',
);
const hostileString = fc
  .array(hostilePiece, { minLength: 0, maxLength: 12 })
  .map((pieces) => pieces.join(''));

/** The canonical path a route came from: parsing must be exactly invertible. */
function pathOf(route: Route): string {
  switch (route.kind) {
    case 'base':
      return '/v2/';
    case 'catalog':
      return '/v2/_catalog';
    case 'blob':
      return `/v2/${route.name}/blobs/${route.digest}`;
    case 'uploads':
      return `/v2/${route.name}/blobs/uploads/`;
    case 'upload':
      return `/v2/${route.name}/blobs/uploads/${route.id}`;
    case 'manifest':
      return `/v2/${route.name}/manifests/${route.reference}`;
    case 'tags':
      return `/v2/${route.name}/tags/list`;
    case 'referrers':
      return `/v2/${route.name}/referrers/${route.digest}`;
  }
}

function assertSafeName(name: string): void {
  assert.ok(name.length > 0 && name.length <= MAX_NAME_LENGTH);
  assert.ok(!/[^a-z0-9._\-/]/.test(name), `unexpected character in ${JSON.stringify(name)}`);
  for (const part of name.split('/')) {
    assert.ok(/^[a-z0-9]/.test(part) && /[a-z0-9]$/.test(part), `bad component in ${JSON.stringify(name)}`);
    assert.ok(!part.includes('..') && !part.includes('___') && !/[._]-|-[._]|\._|_\./.test(part));
  }
}

describe('repository names', () => {
  it('accepts what the spec allows', () => {
    for (const name of [
      'a',
      'library/ubuntu',
      'conformance/myrepo',
      'a.b_c__d-e--f',
      'a0/b1/c2/d3',
      'x'.repeat(MAX_NAME_LENGTH),
      `${'a'.repeat(127)}/${'b'.repeat(127)}`,
    ]) {
      assert.ok(isRepositoryName(name), name);
    }
  });

  it('refuses traversal, escapes, case, control characters, empty components and huge names', () => {
    for (const name of [
      '',
      '..',
      '.',
      'a/..',
      '../a',
      'a/../b',
      'a/./b',
      '%2e%2e',
      'a%2Fb',
      'a%2fb',
      '%2e%2e/a',
      'a//b',
      '/a',
      'a/',
      'A',
      'Library/ubuntu',
      'a\0b',
      'a\nb',
      'a b',
      'é',
      'ａ',
      'a\\b',
      '_layers',
      'a/_manifests',
      'a/_uploads/x',
      'a..b',
      'a._b',
      'a___b',
      '-a',
      'a-',
      '.a',
      'a.',
      'a:5000/b',
      'a@b',
      'x'.repeat(MAX_NAME_LENGTH + 1),
      `${'a/'.repeat(200)}a`,
      'a'.repeat(100_000),
    ]) {
      assert.ok(!isRepositoryName(name), JSON.stringify(name.slice(0, 40)));
    }
  });

  it('always accepts generated valid names', () => {
    fc.assert(
      fc.property(validName, (name) => isRepositoryName(name)),
      { numRuns: 3000 },
    );
  });

  it('never accepts a crafted or random string that is unsafe as a storage path', () => {
    fc.assert(
      fc.property(fc.oneof(hostileString, fc.string({ unit: 'binary', maxLength: 300 })), (name) => {
        if (isRepositoryName(name)) assertSafeName(name);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('tags', () => {
  it('accepts the spec grammar up to 128 characters', () => {
    for (const tag of ['latest', 'v1.2.3', '_private', 'A-b_c.d', '0', 'x'.repeat(128)])
      assert.ok(isTag(tag), tag);
    for (const tag of [
      '',
      '.hidden',
      '-dash',
      'a/b',
      'a:b',
      'a%2e',
      'é',
      'a b',
      'x'.repeat(129),
      '..',
      'a\0',
    ]) {
      assert.ok(!isTag(tag), JSON.stringify(tag));
    }
  });

  it('accepts every generated tag and nothing unsafe', () => {
    fc.assert(
      fc.property(validTag, (tag) => isTag(tag)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.oneof(hostileString, fc.string({ unit: 'binary', maxLength: 200 })), (tag) => {
        if (!isTag(tag)) return;
        assert.ok(tag.length <= 128 && !/[^A-Za-z0-9._-]/.test(tag) && !/^[.-]/.test(tag));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('digests', () => {
  it('accepts sha256 and sha512 in canonical lowercase hex', () => {
    assert.deepEqual(checkDigest(SHA256), { ok: true, digest: SHA256 });
    assert.deepEqual(checkDigest(SHA512), { ok: true, digest: SHA512 });
  });

  it('tells malformed digests from unsupported algorithms', () => {
    for (const value of [
      'sha256:totallywrong',
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'a'.repeat(63)}`,
      `sha256:${'a'.repeat(65)}`,
      `sha512:${HEX64}`,
      'sha256:',
      ':abc',
      'sha256',
      `SHA256:${HEX64}`,
      `sha256:${HEX64}/../x`,
      `sha256:${HEX64}%2F`,
      `sha256:${HEX64}\0`,
      `sha256::${HEX64}`,
      `../sha256:${HEX64}`,
      `sha256:${'a'.repeat(100_000)}`,
    ]) {
      assert.deepEqual(checkDigest(value), { ok: false, reason: 'malformed' }, value.slice(0, 80));
    }
    for (const value of [
      `sha384:${'a'.repeat(96)}`,
      'blake3:abcdef',
      `md5:${'a'.repeat(32)}`,
      'sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564',
    ]) {
      assert.deepEqual(checkDigest(value), { ok: false, reason: 'unsupported' }, value);
    }
  });

  it('accepts exactly the canonical forms, whatever is thrown at it', () => {
    const canonical = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
    const nearDigest = fc
      .tuple(
        fc.constantFrom('sha256', 'sha512', 'sha384', 'SHA256', 'sha256+x', '', 'sha256/..'),
        fc.constantFrom(':', '::', '%3A', ''),
        fc.stringMatching(/^[a-fA-F0-9]{0,130}$/),
        fc.oneof(fc.constant(''), hostilePiece),
      )
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(
        fc.oneof(nearDigest, hostileString, fc.string({ unit: 'binary', maxLength: 200 })),
        (value) => {
          const check = checkDigest(value);
          assert.equal(check.ok, canonical.test(value));
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('references and upload ids', () => {
  it('classifies a reference as tag or digest', () => {
    assert.deepEqual(classifyReference('latest'), { kind: 'tag', tag: 'latest' });
    assert.deepEqual(classifyReference(SHA256), { kind: 'digest', digest: SHA256 });
    assert.deepEqual(classifyReference('sha256:totallywrong'), { kind: 'invalid', problem: 'digest' });
    assert.deepEqual(classifyReference(`sha384:${'a'.repeat(96)}`), {
      kind: 'invalid',
      problem: 'unsupported-digest',
    });
    assert.deepEqual(classifyReference('.INVALID_MANIFEST_NAME'), { kind: 'invalid', problem: 'tag' });
    assert.deepEqual(classifyReference(''), { kind: 'invalid', problem: 'tag' });
  });

  it('accepts only our own upload ids', () => {
    assert.ok(isUploadId('0f8fad5b-d9cb-469f-a165-70867728950e'));
    for (const id of [
      '',
      '..',
      '0F8FAD5B-D9CB-469F-A165-70867728950E',
      '0f8fad5b-d9cb-469f-a165-70867728950e/..',
      'x'.repeat(36),
    ]) {
      assert.ok(!isUploadId(id), id);
    }
    fc.assert(
      fc.property(fc.oneof(hostileString, fc.string({ unit: 'binary', maxLength: 60 })), (id) => {
        if (isUploadId(id)) assert.match(id, /^[0-9a-f-]{36}$/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('routes', () => {
  it('recognises every endpoint, names with slashes parsed from the right', () => {
    const cases: [string, Route | undefined][] = [
      ['/v2/', { kind: 'base' }],
      ['/v2', { kind: 'base' }],
      ['/v2/_catalog', { kind: 'catalog' }],
      ['/v2/a/b/c/blobs/sha256:x', { kind: 'blob', name: 'a/b/c', digest: 'sha256:x' }],
      ['/v2/a/blobs/uploads/', { kind: 'uploads', name: 'a' }],
      ['/v2/a/blobs/uploads', { kind: 'uploads', name: 'a' }],
      ['/v2/a/blobs/uploads/abc', { kind: 'upload', name: 'a', id: 'abc' }],
      ['/v2/a/manifests/latest', { kind: 'manifest', name: 'a', reference: 'latest' }],
      ['/v2/a/tags/list', { kind: 'tags', name: 'a' }],
      ['/v2/a/referrers/sha256:x', { kind: 'referrers', name: 'a', digest: 'sha256:x' }],
      // Endpoint words are fine inside names.
      [
        '/v2/blobs/manifests/tags/manifests/x',
        { kind: 'manifest', name: 'blobs/manifests/tags', reference: 'x' },
      ],
      ['/v2/x/blobs/blobs/uploads/', { kind: 'uploads', name: 'x/blobs' }],
      ['/v2/x/manifests/blobs/uploads/id', { kind: 'upload', name: 'x/manifests', id: 'id' }],
      ['/v2/tags/tags/list', { kind: 'tags', name: 'tags' }],
      ['/v2/a/manifests/', { kind: 'manifest', name: 'a', reference: '' }],
      ['/v1/a/manifests/x', undefined],
      ['/v2/a', undefined],
      ['/v2/a/b', undefined],
      ['/v2/a/unknown/x', undefined],
      ['/v2/a/tags/lists', undefined],
      ['/v2/_catalog/x', undefined],
      ['/healthz', undefined],
      ['', undefined],
    ];
    for (const [path, expected] of cases) assert.deepEqual(parseRoute(path), expected, path);
  });

  it('is exactly invertible, and its names are safe once validated, for thousands of crafted paths', () => {
    const segment = fc.oneof(
      component,
      hostilePiece,
      fc.constantFrom('blobs', 'uploads', 'manifests', 'tags', 'list', 'referrers', '_catalog', ''),
    );
    const path = fc.oneof(
      fc.array(segment, { maxLength: 10 }).map((segments) => `/v2/${segments.join('/')}`),
      fc.string({ unit: 'binary', maxLength: 200 }).map((rest) => `/v2/${rest}`),
      fc.string({ unit: 'binary', maxLength: 100 }),
    );
    fc.assert(
      fc.property(path, (input) => {
        const route = parseRoute(input);
        if (route === undefined) return;
        // The two spellings the router accepts without being canonical: `/v2` and `…/uploads`.
        if (route.kind === 'base') assert.ok(input === '/v2' || input === '/v2/');
        else if (route.kind === 'uploads')
          assert.ok([pathOf(route), pathOf(route).slice(0, -1)].includes(input));
        else assert.equal(pathOf(route), input);
        if ('name' in route && isRepositoryName(route.name)) assertSafeName(route.name);
      }),
      { numRuns: 5000 },
    );
  });
});
