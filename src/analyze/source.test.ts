import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { saveImages, saveLayoutDirectory } from '../image/save.js';
import { digestHex } from '../oci/digest.js';
import { Store } from '../store/index.js';
import { deadPid, withTempDir } from '../store/testing/helpers.js';
import { analyzeImage } from './analyze.js';
import type { ImageAnalysis } from './model.js';
import { openImageSource, type PullFunction } from './source.js';
import { dir, file, opaque, storeTestImage, whiteout, type TestLayer } from './testing.js';

const LAYERS: TestLayer[] = [
  { createdBy: 'base', entries: [dir('app'), file('app/a', 300), file('app/b', 200), file('etc/x', 50)] },
  { createdBy: 'change', entries: [file('etc/x', 60, 0x62), whiteout('app/b')] },
  { createdBy: 'replace', entries: [dir('app'), opaque('app'), file('app/c', 10)] },
];

/** What must not depend on where the image was read from. */
function essence(analysis: ImageAnalysis): unknown {
  return {
    id: analysis.image.id,
    sizeBytes: analysis.sizeBytes,
    dive: analysis.dive,
    strata: analysis.strata,
    layers: analysis.layers.map((layer) => ({
      ...layer,
      digest: undefined,
      mediaType: undefined,
      blobSize: undefined,
    })),
  };
}

async function fixture<T>(work: (store: Store, root: string) => Promise<T>): Promise<T> {
  return withTempDir(async (root) => {
    const store = await Store.open(join(root, 'store'));
    await storeTestImage(store, 'test/app:1', LAYERS);
    return work(store, root);
  });
}

async function analyzeSpec(
  spec: string,
  options: Parameters<typeof openImageSource>[1],
): Promise<ImageAnalysis> {
  const source = await openImageSource(spec, options);
  try {
    return await analyzeImage(source);
  } finally {
    await source.close();
  }
}

describe('image sources', () => {
  it('reads the same image from the store, a docker-archive, an OCI archive and an OCI layout directory', async () => {
    await fixture(async (store, root) => {
      const image = (await import('../image/resolve.js')).findImage(store, 'test/app:1');
      const fromStore = await analyzeSpec('test/app:1', { store });
      assert.equal(fromStore.image.source, 'store');
      for (const format of ['docker', 'oci'] as const) {
        const path = join(root, `${format}.tar`);
        await pipeline(await saveImages(store, [{ image: await image }], format), createWriteStream(path));
        const fromArchive = await analyzeSpec(path, { store });
        assert.equal(fromArchive.image.source, 'archive');
        assert.deepEqual(fromArchive.image.names, ['docker.io/test/app:1']);
        assert.deepEqual(essence(fromArchive), essence(fromStore), format);
        assert.deepEqual(await readdir(join(store.root, 'tmp')), [], 'the temporary store is gone');
      }
      const layout = join(root, 'layout');
      await saveLayoutDirectory(store, [{ image: await image }], layout);
      const fromLayout = await analyzeSpec(layout, { store });
      assert.equal(fromLayout.image.source, 'layout');
      assert.deepEqual(essence(fromLayout), essence(fromStore));
      assert.deepEqual(essence(await analyzeSpec(`oci:${layout}`, { store })), essence(fromStore));
    });
  });

  it('verifies the blobs of a layout directory as they are read', async () => {
    await fixture(async (store, root) => {
      const image = await (await import('../image/resolve.js')).findImage(store, 'test/app:1');
      const layout = join(root, 'layout');
      await saveLayoutDirectory(store, [{ image }], layout);
      const layer = image.manifest.layers[1];
      assert.ok(layer);
      await writeFile(join(layout, 'blobs', 'sha256', digestHex(layer.digest)), Buffer.alloc(layer.size));
      await assert.rejects(
        analyzeSpec(layout, { store }),
        /^StrataError: layer 1 \(sha256:[0-9a-f]+\): .*(mismatch|tar)/,
      );
    });
  });

  it('pulls registry://REF into a temporary store, and a name into the store itself with pullIntoStore', async () => {
    await fixture(async (store) => {
      const pulled: string[] = [];
      const pull: PullFunction = async (target, reference) => {
        pulled.push(reference);
        return storeTestImage(target, reference, LAYERS);
      };
      const fromRegistry = await analyzeSpec('registry://localhost:5000/team/app:2', { store, pull });
      assert.equal(fromRegistry.image.source, 'registry');
      assert.deepEqual(pulled, ['localhost:5000/team/app:2']);
      assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
      await assert.rejects(
        (await import('../image/resolve.js')).findImage(store, 'localhost:5000/team/app:2'),
        /No such image/,
      );

      const intoStore = await analyzeSpec('localhost:5000/team/app:3', { store, pull, pullIntoStore: true });
      assert.equal(intoStore.image.source, 'store');
      assert.ok(await (await import('../image/resolve.js')).findImage(store, 'localhost:5000/team/app:3'));
      await assert.rejects(
        analyzeSpec('docker://x/y:1', { store }),
        /cannot fetch x\/y:1: no registry client/,
      );
    });
  });

  it('gives one clear error for what cannot be read', async () => {
    await fixture(async (store, root) => {
      await assert.rejects(analyzeSpec('nope', { store }), { message: 'No such image: nope' });
      await assert.rejects(analyzeSpec('./missing.tar', { store }), {
        message: './missing.tar: no such file or directory',
      });
      const junk = join(root, 'junk.tar');
      await writeFile(junk, 'this is not a tar archive, not even close'.repeat(20));
      await assert.rejects(
        analyzeSpec(junk, { store }),
        /^StrataError: cannot read image archive .*junk\.tar: .*checksum/,
      );
      const notImage = join(root, 'plain.tar');
      const { writeEntries } = await import('../archive/tar-writer.js');
      await pipeline(writeEntries([file('hello.txt', 5)]), createWriteStream(notImage));
      await assert.rejects(
        analyzeSpec(notImage, { store }),
        /cannot read image archive .*plain\.tar: not an image archive/,
      );
      const emptyDir = join(root, 'empty');
      await mkdir(emptyDir);
      await assert.rejects(
        analyzeSpec(`oci:${emptyDir}`, { store }),
        /is not an OCI image layout \(no index\.json\)/,
      );
      assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
    });
  });

  it('refuses an archive holding several images', async () => {
    await fixture(async (store, root) => {
      const { findImage } = await import('../image/resolve.js');
      await storeTestImage(store, 'test/other:1', LAYERS.slice(0, 1));
      const both = [
        { image: await findImage(store, 'test/app:1') },
        { image: await findImage(store, 'test/other:1') },
      ];
      const path = join(root, 'both.tar');
      await pipeline(await saveImages(store, both, 'docker'), createWriteStream(path));
      await assert.rejects(
        analyzeSpec(path, { store }),
        /holds 2 images: load it \(strata load\) and analyse them by name/,
      );
    });
  });

  it('reclaims temporary stores that dead processes left behind', async () => {
    await fixture(async (store, root) => {
      const abandoned = join(store.root, 'tmp', `analyze-${await deadPid()}-abc`);
      await mkdir(join(abandoned, 'blobs'), { recursive: true });
      const path = join(root, 'image.tar');
      const { findImage } = await import('../image/resolve.js');
      await pipeline(
        await saveImages(store, [{ image: await findImage(store, 'test/app:1') }], 'docker'),
        createWriteStream(path),
      );
      await analyzeSpec(path, { store });
      assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
    });
  });
});
