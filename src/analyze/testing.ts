/**
 * Test helpers: images made entry by entry with strata's own tar writer, stored in a store the
 * way a build stores them (uncompressed OCI layers, blob digest = diff ID), or gzip-compressed
 * the way a pull keeps them.
 */
import { buffer } from 'node:stream/consumers';
import { compressStream } from '../archive/compression.js';
import { writeEntries, type TarHeaderInput, type TarWriterEntry } from '../archive/tar-writer.js';
import { opaqueWhiteoutName, whiteoutName } from '../archive/whiteout.js';
import { setImageNames } from '../image/names.js';
import { findImage, type ResolvedImage } from '../image/resolve.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { ContainerConfig, Descriptor, HistoryEntry } from '../oci/types.js';
import type { Store } from '../store/index.js';

type Options = Partial<Omit<TarHeaderInput, 'name' | 'type'>>;

/** A regular file of `size` bytes, all `fill` (so equal size and fill = equal content). */
export function file(name: string, size: number, fill = 0x61, options: Options = {}): TarWriterEntry {
  return { header: { name, type: 'file', size, ...options }, body: Buffer.alloc(size, fill) };
}

export function dir(name: string, options: Options = {}): TarWriterEntry {
  return { header: { name, type: 'directory', ...options } };
}

export function symlink(name: string, target: string): TarWriterEntry {
  return { header: { name, type: 'symlink', linkname: target, mode: 0o777 } };
}

/** `dir/.wh.name`: deletes `path` from the layers below. */
export function whiteout(path: string): TarWriterEntry {
  return { header: { name: whiteoutName(path), type: 'file', mode: 0 } };
}

/** `dir/.wh..wh..opq`: hides what the layers below have in `dir`. */
export function opaque(path: string): TarWriterEntry {
  return { header: { name: opaqueWhiteoutName(path), type: 'file', mode: 0 } };
}

export interface TestLayer {
  entries: TarWriterEntry[];
  /** The history entry's created_by. */
  createdBy: string;
  /** History entries marked empty_layer written before this layer's entry (ENV, LABEL, …). */
  emptyBefore?: string[];
}

/** Stores an image and names it; returns it as the store resolves it. */
export async function storeTestImage(
  store: Store,
  name: string,
  layers: readonly TestLayer[],
  options: { compression?: 'none' | 'gzip'; config?: ContainerConfig } = {},
): Promise<ResolvedImage> {
  const descriptors: Descriptor[] = [];
  const diffIds: Digest[] = [];
  const history: HistoryEntry[] = [];
  const created = '2024-01-01T00:00:00Z';
  for (const layer of layers) {
    const tar = await buffer(writeEntries(layer.entries));
    diffIds.push(digestOf(tar));
    const blob =
      options.compression === 'gzip'
        ? await buffer(writeEntries(layer.entries).pipe(compressStream('gzip')))
        : tar;
    const stored = await store.content.putBytes(blob);
    descriptors.push({
      mediaType: options.compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayer,
      digest: stored.digest,
      size: stored.size,
    });
    for (const command of layer.emptyBefore ?? [])
      history.push({ created, created_by: command, empty_layer: true });
    history.push({ created, created_by: layer.createdBy });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created,
      config: options.config ?? {},
      rootfs: { type: 'layers', diff_ids: diffIds },
      history,
    }),
  );
  const configBlob = await store.content.putBytes(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configBlob.digest, size: configBlob.size },
      layers: descriptors,
    }),
  );
  const manifestBlob = await store.content.putBytes(manifest);
  const canonical = formatReference(parseReference(name));
  await setImageNames(store, [
    {
      target: { mediaType: MediaType.ociManifest, digest: manifestBlob.digest, size: manifestBlob.size },
      names: [canonical],
    },
  ]);
  return findImage(store, canonical);
}

/**
 * The image most analysis tests read (unit and CLI; their expected numbers are worked out from it): a base layer, a layer that overwrites, chmods and adds, one that
 * deletes a file, a whole directory and a file in a directory made empty earlier, and one that
 * replaces /app with an opaque directory.
 */
export const FIXTURE_LAYERS: TestLayer[] = [
  {
    createdBy: 'ADD rootfs.tar /',
    entries: [
      dir('etc'),
      file('etc/conf', 100, 0x61),
      dir('app'),
      file('app/a', 1000),
      file('app/b', 2000),
      dir('cache'),
      file('cache/x', 400),
      file('cache/y', 600),
      file('bin/tool', 5000, 0x61, { mode: 0o644 }), // no entry for bin: an implicit parent
      dir('data'),
    ],
  },
  {
    createdBy: 'RUN edit',
    emptyBefore: ['ENV A=1'],
    entries: [
      dir('etc'),
      file('etc/conf', 300, 0x62),
      file('bin/tool', 5000, 0x61, { mode: 0o755 }),
      file('data/blob', 700),
      file('new/file', 50),
    ],
  },
  {
    createdBy: 'RUN rm',
    entries: [whiteout('etc/conf'), whiteout('cache'), whiteout('data/blob')],
  },
  {
    createdBy: 'COPY app /app',
    emptyBefore: ['LABEL x=y', 'WORKDIR /app'],
    entries: [dir('app'), opaque('app'), file('app/c', 250)],
  },
];
