import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Store } from '../store/index.js';
import { withTempDir } from '../store/testing/helpers.js';
import type { ContainerConfig } from '../oci/types.js';
import { diffImages, formatImageDiff, type ImageDiff } from './diff.js';
import { storeImageSource } from './source.js';
import { dir, file, opaque, storeTestImage, symlink, whiteout, type TestLayer } from './testing.js';

async function diff(
  from: { layers: TestLayer[]; config?: ContainerConfig },
  to: { layers: TestLayer[]; config?: ContainerConfig },
): Promise<ImageDiff> {
  return withTempDir(async (root) => {
    const store = await Store.open(root);
    const a = await storeTestImage(
      store,
      'test/a:1',
      from.layers,
      from.config ? { config: from.config } : {},
    );
    const b = await storeTestImage(store, 'test/b:1', to.layers, to.config ? { config: to.config } : {});
    return diffImages(storeImageSource(store, a, 'test/a:1'), storeImageSource(store, b, 'test/b:1'));
  });
}

const base: TestLayer = {
  createdBy: 'base',
  entries: [
    dir('etc'),
    file('etc/os-release', 20),
    file('etc/passwd', 30, 0x70, { mode: 0o644 }),
    dir('app'),
    file('app/main.js', 100),
    dir('app/lib'),
    file('app/lib/util.js', 10),
    symlink('app/current', 'main.js'),
  ],
};

describe('diffImages', () => {
  it('finds nothing between an image and itself, layered differently', async () => {
    // The same final filesystem, reached through an overwrite and a deletion.
    const result = await diff(
      { layers: [base] },
      {
        layers: [
          { createdBy: 'partial', entries: [dir('etc'), file('etc/os-release', 20), file('etc/tmp', 5)] },
          {
            createdBy: 'rest',
            entries: [
              dir('etc'),
              whiteout('etc/tmp'),
              file('etc/passwd', 30, 0x70),
              dir('app'),
              file('app/main.js', 100),
              dir('app/lib'),
              file('app/lib/util.js', 10),
              symlink('app/current', 'main.js'),
            ],
          },
        ],
      },
    );
    assert.deepEqual(result.files, []);
    assert.deepEqual(result.config, []);
    assert.deepEqual(result.summary, { added: 0, removed: 0, changed: 0 });
  });

  it('lists added and removed subtrees path by path, and what changed in a path', async () => {
    const result = await diff(
      { layers: [base] },
      {
        layers: [
          base,
          {
            createdBy: 'changes',
            entries: [
              dir('app'),
              file('app/main.js', 120, 0x62), // content
              whiteout('app/lib'), // a whole directory
              symlink('app/current', 'other.js'), // link target
              dir('etc'),
              file('etc/passwd', 30, 0x70, { mode: 0o600 }), // mode only
              file('etc/os-release', 20, 0x61, { uid: 7, gid: 8 }), // owner only
              dir('srv'),
              file('srv/new.txt', 3),
            ],
          },
        ],
      },
    );
    assert.deepEqual(
      result.files.map((f) => [f.change, f.path, f.aspects.join('+')]),
      [
        ['changed', '/app/current', 'link'],
        ['removed', '/app/lib', ''],
        ['removed', '/app/lib/util.js', ''],
        ['changed', '/app/main.js', 'content'],
        ['changed', '/etc/os-release', 'owner'],
        ['changed', '/etc/passwd', 'mode'],
        ['added', '/srv', ''],
        ['added', '/srv/new.txt', ''],
      ],
    );
    const main = result.files.find((f) => f.path === '/app/main.js');
    assert.equal(main?.sizeBefore, 100);
    assert.equal(main?.sizeAfter, 120);
    assert.equal(result.files.find((f) => f.path === '/app/lib/util.js')?.sizeBefore, 10);
    assert.deepEqual(result.summary, { added: 2, removed: 2, changed: 4 });
    const text = formatImageDiff(result);
    assert.match(text, /^C \/app\/main\.js \(content: 100 B → 120 B\)$/m);
    assert.match(text, /^D \/app\/lib\/util\.js$/m);
    assert.match(text, /^A \/srv\/new\.txt$/m);
    assert.match(text, /^2 added, 2 removed, 4 changed; 0 config fields differ$/m);
  });

  it('sees through an opaque directory, and a path that became another type', async () => {
    const result = await diff(
      { layers: [base] },
      {
        layers: [
          base,
          {
            createdBy: 'replace',
            entries: [
              dir('app'),
              opaque('app'),
              file('app/main.js', 100), // the same bytes again: unchanged
              dir('etc'),
              whiteout('etc/passwd'),
              dir('etc/passwd'), // a file became a directory
              file('etc/passwd/entry', 1),
            ],
          },
        ],
      },
    );
    assert.deepEqual(
      result.files.map((f) => [f.change, f.path, f.aspects.join('+')]),
      [
        ['removed', '/app/current', ''],
        ['removed', '/app/lib', ''],
        ['removed', '/app/lib/util.js', ''],
        ['changed', '/etc/passwd', 'type+mode'],
        ['added', '/etc/passwd/entry', ''],
      ],
    );
  });

  it('compares the config fields, an empty collection being the same as none', async () => {
    const result = await diff(
      { layers: [base], config: { Env: ['A=1'], Cmd: ['sh'], Labels: {}, ExposedPorts: { '80/tcp': {} } } },
      { layers: [base], config: { Env: ['A=2'], Cmd: ['sh'], User: 'app', ExposedPorts: { '80/tcp': {} } } },
    );
    assert.deepEqual(result.config, [
      { field: 'User', before: null, after: 'app' },
      { field: 'Env', before: ['A=1'], after: ['A=2'] },
    ]);
    assert.match(formatImageDiff(result), /^~ config Env: \["A=1"\] → \["A=2"\]$/m);
  });
});
