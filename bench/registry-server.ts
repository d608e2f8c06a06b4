/**
 * `strata registry serve` against CNCF distribution 2.8 (Debian's docker-registry), side by side
 * in one run, each on 127.0.0.1 with filesystem storage under /var/tmp (a disk, not tmpfs) and
 * the same config.yml (access log off, level error):
 *
 * - blob upload of a 1 GiB blob: POST, then one PUT ?digest= streaming the whole body from a file
 *   (distribution 2.8 has no single-POST upload, so both get POST + PUT); MB/s, median of 3;
 * - blob download of that blob: GET, body discarded; MB/s, median of 5, after one untimed GET per
 *   server (both then serve from the page cache, which the host may have trimmed since the upload);
 * - manifest GET by tag with the OCI Accept header: requests/s and p99 latency over 10 s with 64
 *   connections, after a 2 s warm-up.
 *
 * The clients run in their own processes so that neither server shares a core with the bench's
 * event loop: curl for the blob transfers (a neutral native client), autocannon for the manifest
 * load. Ratios are strata / distribution: ≥ 1.0 means strata is at least as fast.
 *
 * Fairness: the servers take turns (for downloads, which one goes first alternates too). The file
 * system is synced, untimed, before the uploads (the bench's own blob file) and between uploads and
 * downloads: strata fsyncs an upload before acknowledging it and distribution does not, so
 * distribution's gigabytes would otherwise be written back during the downloads, slowing
 * whichever transfer happened to run then.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaType } from '../src/oci/mediatypes.js';
import { REPO_ROOT, STRATA_BIN, run } from '../test/helpers/cli.js';
import { REGISTRY_BIN, freePort } from '../test/helpers/registry.js';

const BLOB_BYTES = 1024 * 1024 * 1024;
const UPLOAD_RUNS = 3;
/** Downloads take ~0.5 s each on a shared 2-core machine, where one run can be off by ±30 %. */
const DOWNLOAD_RUNS = 5;
const LOAD_SECONDS = 10;
const WARMUP_SECONDS = 2;
const CONNECTIONS = 64;
const AUTOCANNON = join(REPO_ROOT, 'node_modules', '.bin', 'autocannon');

interface Server {
  readonly label: string;
  readonly url: string;
  stop(): Promise<void>;
}

/** The config both servers read: distribution's keys, which strata accepts as they are. */
async function writeConfig(dir: string, port: number): Promise<string> {
  const file = join(dir, 'config.yml');
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

async function startServer(label: string, port: number, command: string, args: string[]): Promise<Server> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    stderr += text;
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    process.off('exit', killOnExit);
  };
  const url = `http://127.0.0.1:${port}`;
  // Bounded: 100 × 100 ms.
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`${label} exited ${child.exitCode}: ${stderr}`);
    if ((await get(`${url}/v2/`).catch(() => 0)) === 200) break;
    if (attempt >= 100) {
      await stop();
      throw new Error(`${label} did not start: ${stderr}`);
    }
    await sleep(100);
  }
  return { label, url, stop };
}

/** The status of a GET whose body is discarded. */
function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

/** A small request with a body kept whole (POST, manifest PUT). */
function send(
  url: string,
  method: string,
  headers: Record<string, string | number> = {},
  body?: Buffer,
): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, agent: false, headers: { ...headers, 'content-length': body?.length ?? 0 } },
      (res) => {
        res.resume();
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ...(res.headers.location !== undefined ? { location: res.headers.location } : {}),
          }),
        );
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

/** Random content written to `path` in 16 MiB pieces; returns its sha256 digest. */
async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'w');
  try {
    const piece = 16 * 1024 * 1024;
    for (let written = 0; written < size; written += piece) {
      const data = randomBytes(Math.min(piece, size - written));
      hash.update(data);
      await handle.write(data);
    }
  } finally {
    await handle.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

/**
 * curl's own timing, so that its start-up is not counted. Fails unless the status is `expected`
 * and the whole blob went through (uploaded, or downloaded, as `direction` says).
 */
async function curlSeconds(
  args: readonly string[],
  expected: number,
  direction: 'up' | 'down',
): Promise<number> {
  const result = await run('curl', [
    '-sS',
    '-o',
    '/dev/null',
    // No `Expect: 100-continue` round trip before the body.
    '-H',
    'Expect:',
    '-w',
    '%{http_code} %{time_total} %{size_upload} %{size_download}',
    ...args,
  ]);
  const [status, seconds, uploaded, downloaded] = result.stdout.trim().split(' ').map(Number);
  const bytes = direction === 'up' ? uploaded : downloaded;
  if (result.code !== 0 || status !== expected || bytes !== BLOB_BYTES) {
    throw new Error(
      `curl ${args.join(' ')}: exit ${result.code}, status ${status}, ${bytes} bytes: ${result.stderr}`,
    );
  }
  return seconds!;
}

/** POST, then a PUT streaming the file (curl -T): the whole upload, timed from the POST. */
async function uploadSeconds(server: Server, repo: string, file: string, digest: string): Promise<number> {
  const start = process.hrtime.bigint();
  const opened = await send(`${server.url}/v2/${repo}/blobs/uploads/`, 'POST');
  if (opened.status !== 202 || opened.location === undefined) {
    throw new Error(`${server.label}: POST answered ${opened.status}`);
  }
  const postSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const target = new URL(opened.location, server.url);
  target.searchParams.set('digest', digest);
  const putSeconds = await curlSeconds(
    ['-T', file, '-H', 'Content-Type: application/octet-stream', target.toString()],
    201,
    'up',
  );
  return postSeconds + putSeconds;
}

/** Writes back every dirty page of the file system holding `path` (sync -f: syncfs(2)). */
async function syncFileSystem(path: string): Promise<void> {
  const result = await run('sync', ['-f', path]);
  if (result.code !== 0) throw new Error(`sync -f ${path} exited ${result.code}: ${result.stderr}`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface LoadResult {
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  readonly failures: number;
}

/** autocannon in its own process (`-j`: one JSON document on stdout). */
async function manifestLoad(url: string, seconds: number): Promise<LoadResult> {
  const result = await run(AUTOCANNON, [
    '-j',
    '-c',
    String(CONNECTIONS),
    '-d',
    String(seconds),
    '-H',
    `Accept=${MediaType.ociManifest}`,
    url,
  ]);
  if (result.code !== 0) throw new Error(`autocannon exited ${result.code}: ${result.stderr}`);
  const report = JSON.parse(result.stdout) as {
    requests: { average: number };
    latency: { p99: number };
    errors: number;
    timeouts: number;
    non2xx: number;
  };
  return {
    requestsPerSecond: report.requests.average,
    p99Ms: report.latency.p99,
    failures: report.errors + report.timeouts + report.non2xx,
  };
}

/** A one-layer image by tag `v1`: the manifest the load test GETs. */
async function pushSmallImage(server: Server, repo: string): Promise<void> {
  const layer = randomBytes(4096);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }),
  );
  const digestOf = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
  for (const blob of [layer, config]) {
    const opened = await send(`${server.url}/v2/${repo}/blobs/uploads/`, 'POST');
    const target = new URL(opened.location ?? '', server.url);
    target.searchParams.set('digest', digestOf(blob));
    const put = await send(target.toString(), 'PUT', { 'content-type': 'application/octet-stream' }, blob);
    if (put.status !== 201) throw new Error(`${server.label}: blob PUT answered ${put.status}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: digestOf(layer), size: layer.length }],
    }),
  );
  const put = await send(
    `${server.url}/v2/${repo}/manifests/v1`,
    'PUT',
    { 'content-type': MediaType.ociManifest },
    manifest,
  );
  if (put.status !== 201) throw new Error(`${server.label}: manifest PUT answered ${put.status}`);
}

interface Measured {
  uploadMBps: number;
  downloadMBps: number;
  load: LoadResult;
}

export async function benchRegistryServer(): Promise<void> {
  const work = await mkdtemp('/var/tmp/strata-bench-registry-server-');
  const servers: Server[] = [];
  try {
    const blobFile = join(work, 'blob.bin');
    const digest = await writeRandomFile(blobFile, BLOB_BYTES);

    const strataDir = join(work, 'strata');
    const distributionDir = join(work, 'distribution');
    await mkdir(strataDir);
    await mkdir(distributionDir);
    const strataPort = await freePort();
    const distributionPort = await freePort();
    const strataConfig = await writeConfig(strataDir, strataPort);
    const distributionConfig = await writeConfig(distributionDir, distributionPort);
    const strata = await startServer('strata', strataPort, STRATA_BIN, [
      '--root',
      join(strataDir, 'data'),
      'registry',
      'serve',
      '--config',
      strataConfig,
    ]);
    servers.push(strata);
    const distribution = await startServer('distribution', distributionPort, REGISTRY_BIN, [
      'serve',
      distributionConfig,
    ]);
    servers.push(distribution);
    const both = [strata, distribution];
    for (const server of both) await pushSmallImage(server, 'bench/small');

    // Runs alternate between the servers, so that neither gets a quieter disk or machine.
    const uploads = new Map<string, number[]>(both.map((server) => [server.label, []]));
    const downloads = new Map<string, number[]>(both.map((server) => [server.label, []]));
    // The bench's own gigabyte (the blob file) is not written back during the first upload.
    await syncFileSystem(work);
    for (let runIndex = 0; runIndex < UPLOAD_RUNS; runIndex++) {
      for (const server of both) {
        // A fresh repository each run: the blob is uploaded in full every time.
        const seconds = await uploadSeconds(server, `bench/big${runIndex}`, blobFile, digest);
        uploads.get(server.label)!.push(BLOB_BYTES / 1e6 / seconds);
      }
    }
    await syncFileSystem(work);
    const blobUrl = (server: Server): string => `${server.url}/v2/bench/big0/blobs/${digest}`;
    for (const server of both) await curlSeconds([blobUrl(server)], 200, 'down');
    // Who goes first alternates as well: a download is short enough for the order to matter.
    const inTurn = (runIndex: number): Server[] => (runIndex % 2 === 0 ? both : [...both].reverse());
    for (let runIndex = 0; runIndex < DOWNLOAD_RUNS; runIndex++) {
      for (const server of inTurn(runIndex)) {
        const seconds = await curlSeconds([blobUrl(server)], 200, 'down');
        downloads.get(server.label)!.push(BLOB_BYTES / 1e6 / seconds);
      }
    }
    const results = new Map<string, Measured>();
    for (const server of both) {
      const url = `${server.url}/v2/bench/small/manifests/v1`;
      // Not counted: lets V8 optimise the hot path and both servers fill their caches.
      await manifestLoad(url, WARMUP_SECONDS);
      const load = await manifestLoad(url, LOAD_SECONDS);
      if (load.failures > 0) throw new Error(`${server.label}: ${load.failures} failed manifest GETs`);
      results.set(server.label, {
        uploadMBps: median(uploads.get(server.label)!),
        downloadMBps: median(downloads.get(server.label)!),
        load,
      });
    }
    printTable(results.get('strata')!, results.get('distribution')!, uploads, downloads);
  } finally {
    for (const server of servers) await server.stop();
    await rm(work, { recursive: true, force: true });
  }
}

function printTable(
  strata: Measured,
  distribution: Measured,
  uploads: ReadonlyMap<string, readonly number[]>,
  downloads: ReadonlyMap<string, readonly number[]>,
): void {
  const rows: [string, string, string, string][] = [
    ['metric', 'strata', 'distribution', 'ratio'],
    [
      `blob upload 1 GiB (MB/s, median of ${UPLOAD_RUNS})`,
      strata.uploadMBps.toFixed(0),
      distribution.uploadMBps.toFixed(0),
      (strata.uploadMBps / distribution.uploadMBps).toFixed(2),
    ],
    [
      `blob download 1 GiB (MB/s, median of ${DOWNLOAD_RUNS})`,
      strata.downloadMBps.toFixed(0),
      distribution.downloadMBps.toFixed(0),
      (strata.downloadMBps / distribution.downloadMBps).toFixed(2),
    ],
    [
      `manifest GET (req/s, ${CONNECTIONS} conns, ${LOAD_SECONDS} s)`,
      strata.load.requestsPerSecond.toFixed(0),
      distribution.load.requestsPerSecond.toFixed(0),
      (strata.load.requestsPerSecond / distribution.load.requestsPerSecond).toFixed(2),
    ],
    ['manifest GET p99 latency (ms)', String(strata.load.p99Ms), String(distribution.load.p99Ms), ''],
  ];
  const widths = [0, 1, 2, 3].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
  console.log(
    'registry-server: strata registry serve vs distribution 2.8 (127.0.0.1, filesystem on /var/tmp)',
  );
  for (const row of rows)
    console.log(`  ${row.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ')}`);
  const runs = (values: readonly number[] | undefined): string =>
    (values ?? []).map((value) => value.toFixed(0)).join(', ');
  console.log(
    `  upload runs MB/s: strata ${runs(uploads.get('strata'))}; distribution ${runs(uploads.get('distribution'))}`,
  );
  console.log(
    `  download runs MB/s: strata ${runs(downloads.get('strata'))}; distribution ${runs(downloads.get('distribution'))}`,
  );
  console.log('  targets: ratio ≥ 1.0 on throughput and req/s');
}
