import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Store } from '../store/index.js';
import { withTempDir } from '../store/testing/helpers.js';
import { analyzeImage } from './analyze.js';
import type { FileNode, ImageAnalysis } from './model.js';
import { storeImageSource } from './source.js';
import {
  FIXTURE_LAYERS,
  dir,
  file,
  opaque,
  storeTestImage,
  symlink,
  whiteout,
  type TestLayer,
} from './testing.js';
import { aggregateTree, findNode } from './tree.js';

async function analyze(layers: TestLayer[], options: { baseLayers?: number } = {}): Promise<ImageAnalysis> {
  return withTempDir(async (root) => {
    const store = await Store.open(root);
    const image = await storeTestImage(store, 'test/image:1', layers);
    return analyzeImage(storeImageSource(store, image, 'test/image:1'), options);
  });
}

function node(tree: FileNode | undefined, path: string): FileNode {
  assert.ok(tree, 'the layer tree was kept');
  const found = findNode(tree, path);
  assert.ok(found, `${path} is in the tree`);
  return found;
}

/** path → change mark, for every node of a tree but the root, implicit parents marked with `*`. */
function marks(tree: FileNode | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (current: FileNode): void => {
    for (const child of current.children) {
      out[child.path] =
        `${child.change}${child.modified.length ? `:${child.modified.join('+')}` : ''}${child.implicit ? '*' : ''}${child.opaque ? ' opaque' : ''}`;
      visit(child);
    }
  };
  assert.ok(tree);
  visit(tree);
  return out;
}

describe('analyzeImage', () => {
  it("computes dive's metrics for adds, overwrites, a chmod, deletions and an opaque directory", async () => {
    const analysis = await analyze(FIXTURE_LAYERS);
    // Layer sizes (sum of tar header sizes): 100+1000+2000+400+600+5000 = 9100; 300+5000+700+50 =
    // 6050; whiteouts are 0; 250. Image: 15400. dive's user size: 6050+0+250 = 6300.
    assert.deepEqual(
      analysis.layers.map((layer) => layer.sizeBytes),
      [9100, 6050, 0, 250],
    );
    assert.equal(analysis.sizeBytes, 15400);
    // dive's leaves per layer and their occurrence sizes:
    //   L0: /app/a 1000, /app/b 2000, /bin/tool 5000, /cache/x 400, /cache/y 600, /data 0 (an
    //       empty directory entry is a leaf), /etc/conf 100
    //   L1: /bin/tool 5000, /data/blob 700, /etc/conf 300, /new/file 50
    //   L2: .wh.cache → /cache was a directory entry below: its subtree, 0+400+600 = 1000;
    //       .wh.blob → /data/blob, a file: 0; .wh.conf → /etc/conf, a file: 0
    //   L3: /app/c 250 (the opaque marker is dropped, so /app/a and /app/b never count again)
    // per path (cumulative / minimum):
    //   /app/a 1000/1000, /app/b 2000/2000, /bin/tool 10000/5000 (×2), /cache/x 400/400,
    //   /cache/y 600/600, /data 0/0, /etc/conf 400/0 (×3), /data/blob 700/0 (×2), /new/file 50/50,
    //   /cache 1000/1000 (seen once: deleting the directory is not penalised), /app/c 250/250
    // Σ cumulative = 1000+2000+10000+400+600+0+400+700+50+1000+250 = 16400
    // Σ minimum    = 1000+2000+5000+400+600+0+0+0+50+1000+250 = 10300
    // efficiency = 10300/16400; wasted = 10000+700+400 = 11100; user wasted = 11100/6300
    assert.equal(analysis.dive.efficiency, 10300 / 16400);
    assert.equal(analysis.dive.wastedBytes, 11100);
    assert.equal(analysis.dive.userSizeBytes, 6300);
    assert.equal(analysis.dive.userWastedPercent, 11100 / 6300);
    assert.deepEqual(analysis.dive.inefficientFiles, [
      { path: '/bin/tool', count: 2, sizeBytes: 10000 },
      { path: '/data/blob', count: 2, sizeBytes: 700 },
      { path: '/etc/conf', count: 3, sizeBytes: 400 },
    ]);
    assert.deepEqual(analysis.dive.scanStoppedLayers, []);
  });

  it("computes strata's metrics: every stored byte is visible or wasted, once", async () => {
    const analysis = await analyze(FIXTURE_LAYERS);
    // Visible at the end: /bin/tool (L1's copy) 5000, /new/file 50, /app/c 250 = 5300.
    // Wasted: /etc/conf 100 (L0, overwritten by L1) + 300 (L1, deleted by L2); /bin/tool 5000 (L0,
    // re-stored by the chmod in L1); /cache/x 400 + /cache/y 600 (L0, directory deleted by L2);
    // /data/blob 700 (L1, deleted by L2); /app/a 1000 + /app/b 2000 (L0, hidden by L3's opaque
    // /app) = 10100 = 15400 − 5300.
    const { strata } = analysis;
    assert.equal(strata.finalSizeBytes, 5300);
    assert.equal(strata.wastedBytes, 10100);
    assert.equal(strata.wastedBytes, analysis.sizeBytes - strata.finalSizeBytes);
    assert.equal(strata.efficiency, 5300 / 15400);
    // Base = layer 0; every waste was caused by layers 1–3; their size is 6300.
    assert.equal(strata.baseLayers, 1);
    assert.equal(strata.userSizeBytes, 6300);
    assert.equal(strata.userWastedBytes, 10100);
    assert.equal(strata.userWastedPercent, 10100 / 6300);
    assert.deepEqual(strata.inefficientFiles, [
      { path: '/bin/tool', count: 2, sizeBytes: 10000, wastedBytes: 5000, layers: [0, 1], removed: false },
      { path: '/app/b', count: 1, sizeBytes: 2000, wastedBytes: 2000, layers: [0], removed: true },
      { path: '/app/a', count: 1, sizeBytes: 1000, wastedBytes: 1000, layers: [0], removed: true },
      { path: '/data/blob', count: 1, sizeBytes: 700, wastedBytes: 700, layers: [1], removed: true },
      { path: '/cache/y', count: 1, sizeBytes: 600, wastedBytes: 600, layers: [0], removed: true },
      { path: '/cache/x', count: 1, sizeBytes: 400, wastedBytes: 400, layers: [0], removed: true },
      { path: '/etc/conf', count: 2, sizeBytes: 400, wastedBytes: 400, layers: [0, 1], removed: true },
    ]);
    // Per layer: L0's bytes hidden later: 100+5000+400+600+1000+2000 = 9100 (all of it); L1's: 300+700.
    // What each layer hides: L1 100+5000, L2 300+400+600+700, L3 1000+2000.
    assert.deepEqual(
      analysis.layers.map((layer) => [layer.shadowedBytes, layer.hidesBytes]),
      [
        [9100, 0],
        [1000, 5100],
        [0, 2000],
        [0, 3000],
      ],
    );
    // With the first two layers as the base, only L2 and L3 are the user's: 2000+3000 of 0+250.
    const based = await analyze(FIXTURE_LAYERS, { baseLayers: 2 });
    assert.equal(based.strata.userSizeBytes, 250);
    assert.equal(based.strata.userWastedBytes, 5000);
    assert.equal(based.strata.userWastedPercent, 5000 / 250);
    assert.equal(based.dive.userSizeBytes, 6300, "dive's numbers keep its own assumption");
  });

  it('labels layers with their history entries, skipping empty layers like dive', async () => {
    const analysis = await analyze(FIXTURE_LAYERS);
    assert.deepEqual(
      analysis.layers.map((layer) => layer.command),
      ['ADD rootfs.tar /', 'RUN edit', 'RUN rm', 'COPY app /app'],
    );
    assert.deepEqual(
      analysis.layers.map((layer) => layer.entries),
      [10, 5, 3, 3],
    );
  });

  it('marks each path of a layer added, modified, removed or unmodified', async () => {
    const { layers } = await analyze(FIXTURE_LAYERS);
    const [l0, l1, l2, l3] = layers.map((layer) => layer.tree);
    assert.deepEqual(marks(l0), {
      '/app': 'added',
      '/app/a': 'added',
      '/app/b': 'added',
      '/bin': 'added*',
      '/bin/tool': 'added',
      '/cache': 'added',
      '/cache/x': 'added',
      '/cache/y': 'added',
      '/data': 'added',
      '/etc': 'added',
      '/etc/conf': 'added',
    });
    assert.deepEqual(marks(l1), {
      '/bin': 'unmodified*',
      '/bin/tool': 'modified:mode',
      '/data': 'unmodified*',
      '/data/blob': 'added',
      '/etc': 'unmodified',
      '/etc/conf': 'modified:content',
      '/new': 'added*',
      '/new/file': 'added',
    });
    assert.deepEqual(marks(l2), {
      '/cache': 'removed',
      '/data': 'unmodified*',
      '/data/blob': 'removed',
      '/etc': 'unmodified*',
      '/etc/conf': 'removed',
    });
    assert.deepEqual(marks(l3), {
      '/app': 'unmodified opaque',
      '/app/a': 'removed',
      '/app/b': 'removed',
      '/app/c': 'added',
    });
    assert.deepEqual(
      layers.map((layer) => layer.changes),
      [
        { added: 10, modified: 0, removed: 0, unmodified: 0 },
        { added: 2, modified: 2, removed: 0, unmodified: 1 },
        { added: 0, modified: 0, removed: 3, unmodified: 0 },
        { added: 1, modified: 0, removed: 2, unmodified: 1 },
      ],
    );
    // Sizes: a file its bytes, a directory what is below it, a removed node what it hid.
    assert.equal(node(l0, '/').size, 9100);
    assert.equal(node(l0, '/cache').size, 1000);
    assert.equal(node(l2, '/cache').size, 1000);
    assert.equal(node(l2, '/cache').type, 'directory');
    assert.equal(node(l2, '/').size, 0, 'removed nodes do not add to their parent');
    assert.equal(node(l1, '/bin/tool').mode, 0o755);
    assert.match(node(l1, '/bin/tool').digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(node(l1, '/bin/tool').digest, node(l0, '/bin/tool').digest);
    assert.deepEqual(
      node(l3, '/app').children.map((child) => child.name),
      ['a', 'b', 'c'],
    );
  });

  it('stacks the layer trees into the tree of the image up to a layer', async () => {
    const { layers } = await analyze(FIXTURE_LAYERS);
    const upTo1 = aggregateTree(layers, 1);
    assert.deepEqual(marks(upTo1), {
      '/app': 'unmodified',
      '/app/a': 'unmodified',
      '/app/b': 'unmodified',
      '/bin': 'unmodified*',
      '/bin/tool': 'modified:mode',
      '/cache': 'unmodified',
      '/cache/x': 'unmodified',
      '/cache/y': 'unmodified',
      '/data': 'unmodified',
      '/data/blob': 'added',
      '/etc': 'unmodified',
      '/etc/conf': 'modified:content',
      '/new': 'added*',
      '/new/file': 'added',
    });
    assert.equal(node(upTo1, '/').size, 300 + 5000 + 1000 + 3000 + 700 + 50);
    const upTo2 = aggregateTree(layers, 2);
    // Removed paths stay in view, with everything that was below them, marked removed.
    assert.equal(marks(upTo2)['/cache/x'], 'removed');
    assert.equal(marks(upTo2)['/cache'], 'removed');
    assert.equal(node(upTo2, '/cache').size, 1000);
    assert.equal(node(upTo2, '/').size, 3000 + 5000 + 50, 'removed subtrees do not count');
    const final = aggregateTree(layers, 3);
    assert.deepEqual(marks(final), {
      '/app': 'unmodified opaque',
      '/app/a': 'removed',
      '/app/b': 'removed',
      '/app/c': 'added',
      '/bin': 'unmodified*',
      '/bin/tool': 'unmodified',
      '/data': 'unmodified',
      '/new': 'unmodified*',
      '/new/file': 'unmodified',
      '/etc': 'unmodified',
    });
    assert.equal(node(final, '/').size, 5300);
    assert.throws(() => aggregateTree(layers, 4), /layer 4 does not exist/);
  });

  it("reproduces dive's own worked example (efficiency 0.75, 7000 bytes wasted)", async () => {
    // dive's efficiency test: /etc/nginx/nginx.conf 2000 and /etc/nginx/public 3000; then nginx.conf
    // 5000 and /etc/athing 10000; then /etc/nginx deleted. /etc/nginx has no entry of its own, so
    // its whiteout counts 0. Σmin = 2000+3000+10000+0 = 15000; Σcum = 7000+3000+10000+0 = 20000.
    const analysis = await analyze([
      { createdBy: 'a', entries: [file('etc/nginx/nginx.conf', 2000), file('etc/nginx/public', 3000)] },
      { createdBy: 'b', entries: [file('etc/nginx/nginx.conf', 5000, 0x62), file('etc/athing', 10000)] },
      { createdBy: 'c', entries: [whiteout('etc/nginx')] },
    ]);
    assert.equal(analysis.dive.efficiency, 0.75);
    assert.equal(analysis.dive.wastedBytes, 7000);
    assert.deepEqual(analysis.dive.inefficientFiles, [
      { path: '/etc/nginx/nginx.conf', count: 2, sizeBytes: 7000 },
    ]);
    // strata: 2000 (overwritten) + 5000 + 3000 (deleted with the directory) = 10000 of 20000.
    assert.equal(analysis.strata.wastedBytes, 10000);
    assert.equal(analysis.strata.efficiency, 0.5);
  });

  it("counts a deleted directory only when dive's stacked view still calls it a directory", async () => {
    // /d is an empty directory entry in layer 0 (a leaf: /d occurs with 0 bytes).
    // (a) Layer 1 lists d/ itself with d/f 100: below layer 2, /d is a directory holding 100 bytes,
    //     so its whiteout is an occurrence of 100. /d: 0+100 (min 0, ×2); /d/f: 100.
    //     Σcum = 200, Σmin = 100: efficiency 0.5, wasted 100.
    const explicit = await analyze([
      { createdBy: 'mkdir', entries: [dir('d')] },
      { createdBy: 'fill', entries: [dir('d'), file('d/f', 100)] },
      { createdBy: 'rm', entries: [whiteout('d')] },
    ]);
    assert.equal(explicit.dive.efficiency, 0.5);
    assert.equal(explicit.dive.wastedBytes, 100);
    assert.deepEqual(explicit.dive.inefficientFiles, [{ path: '/d', count: 2, sizeBytes: 100 }]);
    // (b) Layer 1 lists only d/f: stacking it gives /d an implicit node's data (not a directory),
    //     so the whiteout counts 0. /d: 0+0 (×2, 0 bytes); /d/f: 100. Efficiency 100/100 = 1.
    const implicit = await analyze([
      { createdBy: 'mkdir', entries: [dir('d')] },
      { createdBy: 'fill', entries: [file('d/f', 100)] },
      { createdBy: 'rm', entries: [whiteout('d')] },
    ]);
    assert.equal(implicit.dive.efficiency, 1);
    assert.equal(implicit.dive.wastedBytes, 0);
    assert.deepEqual(implicit.dive.inefficientFiles, [{ path: '/d', count: 2, sizeBytes: 0 }]);
    // strata: the 100 bytes are stored and not visible, in both cases.
    for (const analysis of [explicit, implicit]) {
      assert.equal(analysis.strata.wastedBytes, 100);
      assert.equal(analysis.strata.efficiency, 0);
      assert.deepEqual(
        analysis.strata.inefficientFiles.map((f) => f.path),
        ['/d/f'],
      );
    }
  });

  it("stops dive's scan of a layer at a whiteout of a missing path (dive's quirk), not strata's", async () => {
    // Layer 1's leaves in dive's (sorted) order: .wh.ghost, /a, /zz/file. Nothing is at /ghost
    // below, so dive stops there: /a's second copy and /zz/file are never counted.
    // dive: /a [10] only → efficiency 10/10 = 1, wasted 0.
    const analysis = await analyze([
      { createdBy: 'one', entries: [file('a', 10)] },
      { createdBy: 'two', entries: [whiteout('ghost'), file('a', 10, 0x62), file('zz/file', 30)] },
    ]);
    assert.deepEqual(analysis.dive.scanStoppedLayers, [1]);
    assert.equal(analysis.dive.efficiency, 1);
    assert.equal(analysis.dive.wastedBytes, 0);
    // strata: /a's first version (10) is overwritten; nothing else is lost.
    assert.equal(analysis.strata.wastedBytes, 10);
    assert.equal(analysis.strata.finalSizeBytes, 40);
    assert.deepEqual(marks(analysis.layers[1]?.tree), {
      '/a': 'modified:content',
      '/zz': 'added*',
      '/zz/file': 'added',
    });
  });

  it('tells content, mode, owner, link and type changes apart, and counts bytes stored twice', async () => {
    const analysis = await analyze([
      {
        createdBy: 'base',
        entries: [file('f', 10), symlink('s', 'a'), file('o', 10), file('t', 10), dir('d'), file('d/x', 5)],
      },
      {
        createdBy: 'change',
        entries: [
          file('f', 10, 0x61, { mtime: new Date('2024-05-01T00:00:00Z') }), // `touch`: same content
          symlink('s', 'b'),
          file('o', 10, 0x61, { uid: 1000, gid: 1000 }),
          dir('t'),
          file('t/y', 1),
          file('d', 3),
          file('dup', 7),
          file('dup', 2, 0x62), // the same path twice in one layer: the first copy is never seen
        ],
      },
    ]);
    assert.deepEqual(marks(analysis.layers[1]?.tree), {
      '/d': 'modified:type+mode',
      '/dup': 'added',
      '/f': 'unmodified',
      '/o': 'modified:owner',
      '/s': 'modified:link',
      '/t': 'modified:type+mode',
      '/t/y': 'added',
    });
    // Wasted: f 10 (stored again), o 10, t 10 (replaced by a directory), d/x 5 (its directory
    // replaced by a file), dup 7 (overwritten in its own layer) = 42.
    assert.equal(analysis.strata.wastedBytes, 42);
    assert.equal(analysis.strata.wastedBytes, analysis.sizeBytes - analysis.strata.finalSizeBytes);
    assert.deepEqual(
      analysis.strata.inefficientFiles.map((f) => [f.path, f.count, f.wastedBytes, f.removed]),
      [
        ['/f', 2, 10, false],
        ['/o', 2, 10, false],
        ['/t', 1, 10, true],
        ['/dup', 2, 7, false],
        ['/d/x', 1, 5, true],
      ],
    );
    // dive: f 10+10, o 10+10, t 10 (leaf in L0) — /t is not a leaf in L1; s 0+0; d is a leaf in L1
    // (a file): /d 3 once, /d/x 5 once; dup counted once (2: the last entry's data). Inefficient:
    // /f 20, /o 20, /s 0.
    assert.deepEqual(analysis.dive.inefficientFiles, [
      { path: '/f', count: 2, sizeBytes: 20 },
      { path: '/o', count: 2, sizeBytes: 20 },
      { path: '/s', count: 2, sizeBytes: 0 },
    ]);
  });

  it('hides below an opaque directory into re-created directories; a whiteout of a re-created directory empties it', async () => {
    const analysis = await analyze([
      {
        createdBy: 'base',
        entries: [
          dir('a'),
          file('a/keep', 10),
          dir('a/sub'),
          file('a/sub/x', 20),
          file('a/sub/y', 30),
          dir('w'),
          file('w/old', 40),
        ],
      },
      {
        createdBy: 'replace',
        entries: [
          dir('a'),
          opaque('a'),
          dir('a/sub'),
          file('a/sub/x', 5, 0x62),
          whiteout('w'),
          dir('w'),
          file('w/new', 1),
        ],
      },
    ]);
    assert.deepEqual(marks(analysis.layers[1]?.tree), {
      '/a': 'unmodified opaque',
      '/a/keep': 'removed',
      '/a/sub': 'unmodified',
      '/a/sub/x': 'modified:content',
      '/a/sub/y': 'removed',
      '/w': 'unmodified opaque',
      '/w/new': 'added',
      '/w/old': 'removed',
    });
    // strata: everything of layer 0 is hidden: 10+20+30+40 = 100 of 106.
    assert.equal(analysis.strata.wastedBytes, 100);
    assert.equal(analysis.strata.finalSizeBytes, 6);
    // dive: leaves of layer 1 in order: .wh.w (/w, a directory entry below holding 40 bytes), then
    // /a/sub/x 5, /w/new 1; the opaque marker is dropped. Paths: /a/keep 10, /a/sub/x 20+5 (min 5),
    // /a/sub/y 30, /w/old 40, /w 40, /w/new 1. Σcum = 146, Σmin = 126; only /a/sub/x repeats.
    assert.equal(analysis.dive.efficiency, 126 / 146);
    assert.equal(analysis.dive.wastedBytes, 25);
  });

  it('refuses a layer that stores a path below a file it also stores', async () => {
    await assert.rejects(
      analyze([{ createdBy: 'odd', entries: [file('a', 1), file('a/b', 1)] }]),
      /^StrataError: layer 0 \(sha256:[0-9a-f]+\): "\/a\/b" is stored below "\/a", which the same layer stores as a file$/,
    );
  });

  it('reads gzip-compressed layers the same as uncompressed ones', async () => {
    const plain = await analyze(FIXTURE_LAYERS);
    const gzipped = await withTempDir(async (root) => {
      const store = await Store.open(root);
      const image = await storeTestImage(store, 'test/gz:1', FIXTURE_LAYERS, { compression: 'gzip' });
      return analyzeImage(storeImageSource(store, image, 'test/gz:1'));
    });
    assert.deepEqual(gzipped.dive, plain.dive);
    assert.deepEqual(gzipped.strata, plain.strata);
    assert.deepEqual(
      gzipped.layers.map((layer) => layer.tree),
      plain.layers.map((layer) => layer.tree),
    );
    assert.deepEqual(
      gzipped.layers.map((layer) => layer.diffId),
      plain.layers.map((layer) => layer.digest),
    );
  });

  it('keeps no trees when asked not to', async () => {
    const { layers } = await withTempDir(async (root) => {
      const store = await Store.open(root);
      const image = await storeTestImage(store, 'test/image:1', FIXTURE_LAYERS);
      return analyzeImage(storeImageSource(store, image, 'x'), { keepTrees: false });
    });
    assert.ok(layers.every((layer) => layer.tree === undefined));
    assert.throws(() => aggregateTree(layers, 0), /without its layer trees/);
  });

  it('names the layer when a layer is not a tar', async () => {
    await withTempDir(async (root) => {
      const store = await Store.open(root);
      const image = await storeTestImage(store, 'test/image:1', FIXTURE_LAYERS.slice(0, 1));
      const source = storeImageSource(store, image, 'x');
      const broken = { ...source, openLayer: () => store.content.openRead(image.manifest.config.digest) };
      await assert.rejects(analyzeImage(broken), /^StrataError: layer 0 \(sha256:[0-9a-f]{64}\): .*tar/);
    });
  });
});
