import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { digestOf } from '../src/oci/digest.js';
import { MediaType } from '../src/oci/mediatypes.js';
import { Dockerd } from './helpers/dockerd.js';
import { busyboxStore, REPO_ROOT, run, STRATA_BIN, strata, tempDir, type RunResult } from './helpers/cli.js';
import { certsDirFor, htpasswdLine, makeTestCa, type TestCa } from './helpers/registry.js';
import { startStrataRegistry, type RunningStrataRegistry } from './helpers/strata-registry.js';

/**
 * `strata registry serve` (the compiled CLI, spawned on 127.0.0.1) against real clients: strata
 * itself, skopeo 1.9, podman 4.3 and dockerd 20.10 push to it and pull from it, with no auth,
 * htpasswd, the built-in token issuer with per-repository rules, and TLS from a test CA; and the
 * serve command's own behaviour (health, access log, config errors, graceful stop).
 * test/registry-interop.test.ts does the same against CNCF distribution 2.8.
 */

/** podman in this sandbox cannot raise rlimits, so they are pinned low enough to be allowed. */
const PODMAN_RUN = [
  'run',
  '--rm',
  '--network',
  'host',
  '--ulimit',
  'nofile=1024:1024',
  '--ulimit',
  'nproc=1024:1024',
];

let dir: { path: string; cleanup: () => Promise<void> };
/** A strata store holding busybox:latest (scripts/test-images.sh). */
let root: string;
/** `strata save busybox` (docker-archive), for skopeo and dockerd. */
let archive: string;
/** busybox's image ID (config digest): what every client must end up with. */
let busyboxId: string;
let dockerd: Dockerd;
/** podman's storage; short, as podman refuses a runroot path over 50 characters. */
let podmanState: string;

before(async () => {
  dir = await tempDir('registry-serve-interop');
  const [store, daemon] = await Promise.all([busyboxStore(dir.path), Dockerd.start()]);
  root = store.root;
  dockerd = daemon;
  archive = join(dir.path, 'busybox-docker.tar');
  await strataOk(root, ['save', '-o', archive, 'busybox']);
  busyboxId = (await strataOk(root, ['inspect', '--format', '{{.Id}}', 'busybox'])).stdout.trim();
  podmanState = await mkdtemp(join(tmpdir(), 'pm-'));
  // skopeo and podman read credentials from REGISTRY_AUTH_FILE, which podman wants to exist.
  await writeFile(join(dir.path, 'no-auth.json'), '{"auths":{}}\n');
  // podman reads its registries from here (CONTAINERS_REGISTRIES_CONF), not from /etc.
  await writeFile(join(dir.path, 'registries.conf'), 'unqualified-search-registries = []\n');
});
after(async () => {
  await dockerd?.stop();
  // podman's vfs storage has no mounts once its containers are gone; be sure before removing.
  if (podmanState !== undefined) {
    await run('sh', ['-c', `grep -o ' ${podmanState}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
    await rm(podmanState, { recursive: true, force: true });
  }
  await dir?.cleanup();
});

// -------------------------------------------------------------------------------------------------
// Clients, each kept away from the host's credentials and settings.

interface ClientOptions {
  /** strata and docker: the DOCKER_CONFIG directory (credentials). */
  dockerConfig?: string;
  /** strata: Docker's certs.d layout (STRATA_CERTS_DIR). */
  certsDir?: string;
  input?: string;
}

function strataEnv(options: ClientOptions): NodeJS.ProcessEnv {
  return {
    DOCKER_CONFIG: options.dockerConfig ?? join(dir.path, 'no-docker-config'),
    // An empty certs.d: /etc/docker/certs.d (which the TLS test writes to) plays no part.
    STRATA_CERTS_DIR: options.certsDir ?? join(dir.path, 'no-certs.d'),
  };
}

function strataAt(store: string, args: readonly string[], options: ClientOptions = {}): Promise<RunResult> {
  return strata(store, args, {
    env: strataEnv(options),
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}

async function strataOk(
  store: string,
  args: readonly string[],
  options: ClientOptions = {},
): Promise<RunResult> {
  return succeeded(`strata ${args.join(' ')}`, await strataAt(store, args, options));
}

/** skopeo and podman read credentials from REGISTRY_AUTH_FILE: a file of this run, not the host's. */
function containersEnv(authFile?: string): NodeJS.ProcessEnv {
  return {
    REGISTRY_AUTH_FILE: authFile ?? join(dir.path, 'no-auth.json'),
    DOCKER_CONFIG: join(dir.path, 'no-docker-config'),
    CONTAINERS_REGISTRIES_CONF: join(dir.path, 'registries.conf'),
  };
}

function skopeo(args: readonly string[]): Promise<RunResult> {
  return run('skopeo', args, { env: containersEnv() });
}

async function skopeoOk(args: readonly string[]): Promise<RunResult> {
  return succeeded(`skopeo ${args.join(' ')}`, await skopeo(args));
}

/** podman with its images and containers in a directory of this run (vfs: no mounts to clean up). */
function podman(
  args: readonly string[],
  options: { authFile?: string; input?: string } = {},
): Promise<RunResult> {
  const state = podmanState;
  return run(
    'podman',
    [
      '--root',
      join(state, 'root'),
      '--runroot',
      join(state, 'run'),
      '--tmpdir',
      join(state, 'tmp'),
      '--storage-driver',
      'vfs',
      '--events-backend',
      'none',
      ...args,
    ],
    {
      env: containersEnv(options.authFile),
      ...(options.input !== undefined ? { input: options.input } : {}),
    },
  );
}

async function podmanOk(
  args: readonly string[],
  options: { authFile?: string; input?: string } = {},
): Promise<RunResult> {
  return succeeded(`podman ${args.join(' ')}`, await podman(args, options));
}

/** The private dockerd's client; `dockerConfig` keeps `docker login` out of ~/.docker. */
function docker(args: readonly string[], options: ClientOptions = {}): Promise<RunResult> {
  const config = options.dockerConfig ?? join(dir.path, 'no-docker-config');
  return dockerd.docker(
    ['--config', config, ...args],
    options.input !== undefined ? { input: options.input } : {},
  );
}

async function dockerOk(args: readonly string[], options: ClientOptions = {}): Promise<RunResult> {
  return succeeded(`docker ${args.join(' ')}`, await docker(args, options));
}

/** busybox:latest in dockerd, as `docker load` of strata's archive gives it. */
async function dockerBusybox(): Promise<void> {
  await dockerOk(['load', '-i', archive]);
}

function succeeded(what: string, result: RunResult): RunResult {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result;
}

function failed(what: string, result: RunResult): RunResult {
  assert.notEqual(result.code, 0, `${what} should have failed:\n${result.stdout}${result.stderr}`);
  return result;
}

function pushedDigest(result: RunResult): string {
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(result.stdout)?.[1];
  assert.ok(digest !== undefined, `no digest in:\n${result.stdout}`);
  return digest;
}

async function skopeoDigest(
  reference: string,
  flags: readonly string[] = ['--tls-verify=false'],
): Promise<string> {
  const inspected = JSON.parse((await skopeoOk(['inspect', ...flags, `docker://${reference}`])).stdout) as {
    Digest: string;
  };
  return inspected.Digest;
}

async function skopeoTags(
  repository: string,
  flags: readonly string[] = ['--tls-verify=false'],
): Promise<string[]> {
  const listed = JSON.parse((await skopeoOk(['list-tags', ...flags, `docker://${repository}`])).stdout) as {
    Tags: string[];
  };
  return listed.Tags.sort();
}

interface ImageManifest {
  config: { digest: string };
  layers: { digest: string; mediaType: string }[];
}

async function rawManifest(
  reference: string,
  flags: readonly string[] = ['--tls-verify=false'],
): Promise<{ text: string; manifest: ImageManifest }> {
  const text = (await skopeoOk(['inspect', '--raw', ...flags, `docker://${reference}`])).stdout;
  return { text, manifest: JSON.parse(text) as ImageManifest };
}

/** Pulls `reference` into a fresh strata store and returns the image ID it got. */
async function strataPullId(reference: string, options: ClientOptions = {}): Promise<string> {
  const fresh = join(dir.path, `pull-${randomBytes(4).toString('hex')}`);
  const pulled = await strataOk(fresh, ['pull', reference], options);
  assert.match(pulled.stderr, /Status: Downloaded newer image for /);
  return (await strataOk(fresh, ['inspect', '--format', '{{.Id}}', reference])).stdout.trim();
}

/** podman pulls and runs busybox from `reference`; its image ID must be busybox's. */
async function podmanPullAndRun(reference: string, flags: readonly string[]): Promise<void> {
  await podmanOk(['pull', ...flags, reference]);
  try {
    const id = (await podmanOk(['image', 'inspect', '--format', '{{.Id}}', reference])).stdout.trim();
    assert.equal(`sha256:${id}`, busyboxId, 'podman has the same config, so the same image ID');
    const ran = await podmanOk([
      ...PODMAN_RUN,
      reference,
      '/bin/busybox',
      'sh',
      '-c',
      'echo ran; /bin/busybox true',
    ]);
    assert.equal(ran.stdout, 'ran\n');
  } finally {
    await podman(['rmi', '-f', reference]);
  }
}

/** dockerd pulls `reference` afresh (nothing of it local) and runs it. */
async function dockerPullAndRun(reference: string, options: ClientOptions = {}): Promise<void> {
  await docker(['rmi', '-f', busyboxId]);
  const pulled = await dockerOk(['pull', reference], options);
  assert.match(pulled.stdout, /Status: Downloaded newer image for /);
  assert.equal(
    (await dockerOk(['image', 'inspect', '--format', '{{.Id}}', reference])).stdout.trim(),
    busyboxId,
  );
  const ran = await dockerOk(['run', '--rm', '--network', 'none', reference, '/bin/busybox', 'echo', 'ran']);
  assert.equal(ran.stdout, 'ran\n');
}

async function http(
  url: string,
  options: {
    method?: Dispatcher.HttpMethod;
    headers?: Record<string, string>;
    body?: string | Buffer | Readable;
    dispatcher?: Dispatcher;
  } = {},
): Promise<{ status: number; headers: Record<string, string>; text: string }> {
  const response = await request(url, {
    method: options.method ?? 'GET',
    ...(options.headers !== undefined ? { headers: options.headers } : {}),
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(options.dispatcher !== undefined ? { dispatcher: options.dispatcher } : {}),
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (typeof value === 'string') headers[name] = value;
  }
  return { status: response.statusCode, headers, text: await response.body.text() };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

// -------------------------------------------------------------------------------------------------

describe('strata registry serve without auth', () => {
  let registry: RunningStrataRegistry;
  before(async () => {
    registry = await startStrataRegistry({ dir: join(dir.path, 'plain') });
  });
  after(() => registry?.stop());

  test('strata push → skopeo inspect (same digest) → podman pull and run', async () => {
    const name = `${registry.host}/interop/busybox:1`;
    await strataOk(root, ['tag', 'busybox', name]);
    const digest = pushedDigest(await strataOk(root, ['push', name]));

    assert.equal(await skopeoDigest(name), digest);
    const { text } = await rawManifest(name);
    assert.equal(digestOf(text), digest, 'the manifest is served byte for byte as pushed');
    assert.deepEqual(await skopeoTags(`${registry.host}/interop/busybox`), ['1']);

    await podmanPullAndRun(name, ['--tls-verify=false']);
  });

  test('skopeo copies across repositories by mounting; skopeo pushes an OCI layout that strata pulls', async () => {
    const source = `${registry.host}/interop/busybox:1`; // pushed by the test above
    const { manifest } = await rawManifest(source);
    const flags = ['--src-tls-verify=false', '--dest-tls-verify=false'];
    await skopeoOk(['copy', ...flags, `docker://${source}`, `docker://${registry.host}/copies/first:1`]);
    // skopeo mounts a blob from where its blob-info cache saw it: after the first copy it knows
    // (whatever the host's cache held before), so the second copy must mount every layer.
    await skopeoOk(['copy', ...flags, `docker://${source}`, `docker://${registry.host}/copies/second:1`]);
    for (const layer of manifest.layers) {
      const mounted = await registry.waitForAccessLog(
        (line) =>
          line.method === 'POST' &&
          line.path.startsWith('/v2/copies/second/blobs/uploads/?') &&
          new URLSearchParams(line.path.split('?')[1]).get('mount') === layer.digest,
      );
      assert.equal(mounted.status, 201, `layer ${layer.digest} mounted: ${JSON.stringify(mounted)}`);
      assert.ok(
        !registry
          .accessLog()
          .some(
            (line) =>
              line.method === 'PUT' &&
              line.path.includes(`/v2/copies/second/blobs/uploads/`) &&
              line.path.includes(encodeURIComponent(layer.digest)),
          ),
        'the mounted layer is not uploaded again',
      );
    }
    assert.equal(
      await skopeoDigest(`${registry.host}/copies/second:1`),
      digestOf((await rawManifest(source)).text),
    );
    assert.equal(await strataPullId(`${registry.host}/copies/second:1`), busyboxId);

    // An OCI layout as strata saves it (uncompressed layers: strata compresses only to push),
    // pushed by skopeo: strata pulls the same image back.
    const layout = join(dir.path, 'busybox-oci');
    await strataOk(root, ['save', '--format', 'oci', '-o', `${layout}/`, 'busybox']);
    const pushed = `${registry.host}/skopeo/oci:1`;
    await skopeoOk(['copy', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${pushed}`]);
    const { manifest: ociManifest } = await rawManifest(pushed);
    assert.equal(ociManifest.config.digest, busyboxId, 'the same config went up');
    // skopeo gzips the uncompressed layer on the way: another blob than strata's push made.
    assert.deepEqual(
      ociManifest.layers.map((layer) => layer.mediaType),
      [MediaType.ociLayerGzip],
    );
    assert.equal(await strataPullId(pushed), busyboxId);
  });

  test('docker push and docker pull through dockerd 20.10', async () => {
    await dockerBusybox();
    const name = `${registry.host}/docker/busybox:1`;
    await dockerOk(['tag', 'busybox:latest', name]);
    const pushed = await dockerOk(['push', name]);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)?.[1];
    assert.ok(digest !== undefined, pushed.stdout);
    assert.equal(await skopeoDigest(name), digest);
    assert.equal(await strataPullId(name), busyboxId, 'what docker pushed, strata pulls');

    await docker(['rmi', 'busybox:latest']);
    await dockerPullAndRun(name);
    // And docker pulls what strata pushed.
    await dockerPullAndRun(`${registry.host}/interop/busybox:1`);
  });

  test('gc after deleting a tag: --dry-run reports the blobs, the real run frees them, the rest still pulls', async () => {
    // An image with blobs of its own (its config and a COPY layer) beside busybox's shared layer.
    const context = join(dir.path, 'gc-context');
    await mkdir(context, { recursive: true });
    await writeFile(join(context, 'doomed.txt'), `${randomBytes(16).toString('hex')}\n`);
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nCOPY doomed.txt /doomed.txt\n');
    const doomed = `${registry.host}/gc/app:doomed`;
    const keep = `${registry.host}/gc/app:keep`;
    await strataOk(root, ['build', '-q', '-t', doomed, context]);
    await strataOk(root, ['tag', 'busybox', keep]);
    const doomedDigest = pushedDigest(await strataOk(root, ['push', doomed]));
    await strataOk(root, ['push', keep]);
    const { manifest } = await rawManifest(doomed);
    const shared = (await rawManifest(keep)).manifest.layers.map((layer) => layer.digest);
    const own = [doomedDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]
      .filter((digest) => !shared.includes(digest))
      .sort();
    assert.equal(own.length, 3, 'manifest, config and the COPY layer are the image’s own');

    const deleted = await http(`${registry.url}/v2/gc/app/manifests/doomed`, { method: 'DELETE' });
    assert.equal(deleted.status, 202);
    assert.deepEqual(await skopeoTags(`${registry.host}/gc/app`), ['keep']);

    const gc = (args: readonly string[]): Promise<RunResult> =>
      strataOk(registry.root, ['registry', 'gc', '--grace', '0s', ...args]);
    const blobsIn = (output: string, verb: string): string[] =>
      [...output.matchAll(new RegExp(`^gc: ${verb} blob (sha256:[0-9a-f]{64}) \\(\\d+ bytes\\)$`, 'gm'))]
        .map((match) => match[1] ?? '')
        .sort();

    // Untagged is not unreferenced: without --delete-untagged the manifest keeps its blobs.
    const untaggedKept = await gc(['--dry-run']);
    assert.deepEqual(blobsIn(untaggedKept.stdout, 'would delete'), [], untaggedKept.stdout);

    const dry = await gc(['--dry-run', '--delete-untagged']);
    assert.deepEqual(blobsIn(dry.stdout, 'would delete'), own, dry.stdout);
    assert.match(dry.stdout, new RegExp(`^gc: gc/app: would delete untagged manifest ${doomedDigest}$`, 'm'));
    assert.match(dry.stdout, /^would free \d/m);
    assert.equal(
      await skopeoDigest(`${registry.host}/gc/app@${doomedDigest}`),
      doomedDigest,
      'a dry run deletes nothing',
    );

    const real = await gc(['--delete-untagged']);
    assert.deepEqual(blobsIn(real.stdout, 'deleted'), own, real.stdout);
    assert.match(real.stdout, new RegExp(`^gc: gc/app: deleting untagged manifest ${doomedDigest}$`, 'm'));
    assert.equal(
      (await http(`${registry.url}/v2/gc/app/manifests/${doomedDigest}`, { method: 'HEAD' })).status,
      404,
    );
    for (const digest of own.filter((d) => d !== doomedDigest)) {
      const head = await http(`${registry.url}/v2/gc/app/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 404, `blob ${digest} is gone`);
    }
    const again = await gc([]);
    assert.deepEqual(blobsIn(again.stdout, 'deleted'), [], 'a second run finds nothing more');

    // Every image left copies whole (skopeo fetches and verifies every blob), and runs.
    const catalog = JSON.parse((await http(`${registry.url}/v2/_catalog`)).text) as {
      repositories: string[];
    };
    assert.ok(catalog.repositories.includes('gc/app'));
    let copied = 0;
    for (const repository of catalog.repositories) {
      for (const tag of await skopeoTags(`${registry.host}/${repository}`)) {
        const target = join(dir.path, 'after-gc', repository, tag);
        await mkdir(target, { recursive: true });
        await skopeoOk([
          'copy',
          '--src-tls-verify=false',
          `docker://${registry.host}/${repository}:${tag}`,
          `dir:${target}`,
        ]);
        copied++;
      }
    }
    assert.ok(copied >= 6, `${copied} images copied after gc`);
    await podmanPullAndRun(keep, ['--tls-verify=false']);
    assert.equal(await strataPullId(`${registry.host}/interop/busybox:1`), busyboxId);
  });
});

describe('strata registry serve --htpasswd', () => {
  let registry: RunningStrataRegistry;
  const config = (user: string): string => join(dir.path, 'basic-clients', user);
  before(async () => {
    const htpasswd = join(dir.path, 'basic.htpasswd');
    await writeFile(htpasswd, htpasswdLine('alice', 'wonderland'));
    registry = await startStrataRegistry({ dir: join(dir.path, 'basic'), flags: ['--htpasswd', htpasswd] });
  });
  after(() => registry?.stop());

  test('without credentials a push is refused with 401, by every client', async () => {
    const name = `${registry.host}/private/busybox:anonymous`;
    const upload = await http(`${registry.url}/v2/private/busybox/blobs/uploads/`, { method: 'POST' });
    assert.equal(upload.status, 401);
    assert.match(upload.headers['www-authenticate'] ?? '', /^Basic realm="/);

    await strataOk(root, ['tag', 'busybox', name]);
    const byStrata = failed('strata push', await strataAt(root, ['push', name]));
    assert.match(byStrata.stderr, /^Error: .*authentication required \(HTTP 401, UNAUTHORIZED\)/m);
    const bySkopeo = failed(
      'skopeo copy',
      await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${name}`]),
    );
    assert.match(bySkopeo.stderr, /unauthorized|authentication required/i);
    await dockerBusybox();
    await dockerOk(['tag', 'busybox:latest', name]);
    const byDocker = failed('docker push', await docker(['push', name]));
    assert.match(byDocker.stderr, /no basic auth credentials/);
    const listed = await http(`${registry.url}/v2/_catalog`, {
      headers: { authorization: basic('alice', 'wonderland') },
    });
    assert.deepEqual(JSON.parse(listed.text), { repositories: [] }, 'nothing was stored');
  });

  test('a wrong password is refused at login by strata, skopeo, podman and docker', async () => {
    const host = registry.host;
    const byStrata = failed(
      'strata login',
      await strataAt(root, ['login', '-u', 'alice', '--password-stdin', host], {
        dockerConfig: config('strata-wrong'),
        input: 'nope\n',
      }),
    );
    assert.match(byStrata.stderr, /\(HTTP 401, UNAUTHORIZED\); check the credentials/);
    failed('skopeo login', await skopeo(['login', '--tls-verify=false', '-u', 'alice', '-p', 'nope', host]));
    const byPodman = failed(
      'podman login',
      await podman(
        [
          'login',
          '--tls-verify=false',
          '--authfile',
          join(dir.path, 'podman-wrong.json'),
          '-u',
          'alice',
          '--password-stdin',
          host,
        ],
        {
          input: 'nope\n',
        },
      ),
    );
    assert.match(byPodman.stderr, /401|unauthorized|invalid username\/password/i);
    const byDocker = failed(
      'docker login',
      await docker(['login', '-u', 'alice', '--password-stdin', host], {
        dockerConfig: config('docker-wrong'),
        input: 'nope\n',
      }),
    );
    assert.match(byDocker.stderr, /401 Unauthorized/);
  });

  test('strata login, skopeo --creds, podman login and docker login push and pull', async () => {
    const host = registry.host;
    const name = `${host}/private/busybox:1`;
    const strataConfig = config('strata');
    const login = await strataOk(root, ['login', '-u', 'alice', '--password-stdin', host], {
      dockerConfig: strataConfig,
      input: 'wonderland\n',
    });
    assert.equal(login.stdout, 'Login Succeeded\n');
    await strataOk(root, ['tag', 'busybox', name]);
    const digest = pushedDigest(await strataOk(root, ['push', name], { dockerConfig: strataConfig }));

    const creds = ['--tls-verify=false', '--creds', 'alice:wonderland'];
    assert.equal(await skopeoDigest(name, creds), digest);
    await skopeoOk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'alice:wonderland',
      `docker-archive:${archive}`,
      `docker://${host}/private/busybox:skopeo`,
    ]);

    const authFile = join(dir.path, 'podman-basic.json');
    await podmanOk(
      ['login', '--tls-verify=false', '--authfile', authFile, '-u', 'alice', '--password-stdin', host],
      {
        input: 'wonderland\n',
      },
    );
    await podmanPullAndRun(`${host}/private/busybox:skopeo`, ['--tls-verify=false', '--authfile', authFile]);

    const dockerConfig = config('docker');
    await dockerOk(['login', '-u', 'alice', '--password-stdin', host], {
      dockerConfig,
      input: 'wonderland\n',
    });
    await dockerBusybox();
    await dockerOk(['tag', 'busybox:latest', `${host}/private/busybox:docker`]);
    await dockerOk(['push', `${host}/private/busybox:docker`], { dockerConfig });
    await dockerPullAndRun(name, { dockerConfig });

    assert.deepEqual(await skopeoTags(`${host}/private/busybox`, creds), ['1', 'docker', 'skopeo']);
    assert.equal(
      await strataPullId(`${host}/private/busybox:docker`, { dockerConfig: strataConfig }),
      busyboxId,
    );
  });
});

/** Where each client keeps one user's credentials. */
interface Logins {
  /** DOCKER_CONFIG for strata. */
  strata: string;
  /** podman's --authfile. */
  podman: string;
  /** DOCKER_CONFIG for the docker client. */
  docker: string;
}

describe('strata registry serve with the built-in token issuer and access rules', () => {
  let registry: RunningStrataRegistry;
  let configText: string;
  const alice = 'alice:wonderland';
  const bob = 'bob:builder';
  const clientConfig = (who: string): string => join(dir.path, 'token-clients', who);
  const tokenFlags = (creds?: string): string[] => [
    '--tls-verify=false',
    ...(creds ? ['--creds', creds] : []),
  ];

  before(async () => {
    const htpasswd = join(dir.path, 'token.htpasswd');
    await writeFile(htpasswd, htpasswdLine('alice', 'wonderland') + htpasswdLine('bob', 'builder'));
    configText = [
      'version: 0.1',
      'auth:',
      '  token:',
      '    service: strata-test-registry',
      '    issuer: strata-test-issuer',
      '    builtin:',
      `      htpasswd: ${htpasswd}`,
      '      expiration: 5m',
      '  access:',
      '    - account: alice',
      '      repository: team-a/**',
      '      actions: [pull, push]',
      '    - account: bob',
      "      repository: '**'",
      '      actions: [pull]',
      '',
    ].join('\n');
    registry = await startStrataRegistry({ dir: join(dir.path, 'token'), config: configText });
  });
  after(() => registry?.stop());

  /** Logs `user` in with strata, podman and docker, each keeping its credentials apart. */
  async function logIn(user: string, password: string): Promise<Logins> {
    const logins: Logins = {
      strata: clientConfig(`${user}-strata`),
      podman: join(dir.path, 'token-clients', `${user}-podman.json`),
      docker: clientConfig(`${user}-docker`),
    };
    const input = `${password}\n`;
    const host = registry.host;
    await strataOk(root, ['login', '-u', user, '--password-stdin', host], {
      dockerConfig: logins.strata,
      input,
    });
    await podmanOk(
      ['login', '--tls-verify=false', '--authfile', logins.podman, '-u', user, '--password-stdin', host],
      { input },
    );
    // dockerd logs in with an offline token request and then lives on refresh tokens.
    await dockerOk(['login', '-u', user, '--password-stdin', host], { dockerConfig: logins.docker, input });
    return logins;
  }

  test('alice pushes team-a/app with strata, skopeo, podman and docker; bob pulls it with each', async () => {
    const repository = `${registry.host}/team-a/app`;
    const asAlice = await logIn('alice', 'wonderland');
    await strataOk(root, ['tag', 'busybox', `${repository}:strata`]);
    const digest = pushedDigest(
      await strataOk(root, ['push', `${repository}:strata`], { dockerConfig: asAlice.strata }),
    );
    await skopeoOk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      alice,
      `docker-archive:${archive}`,
      `docker://${repository}:skopeo`,
    ]);
    const podmanAuth = ['--tls-verify=false', '--authfile', asAlice.podman];
    await podmanOk(['pull', ...podmanAuth, `${repository}:strata`]);
    await podmanOk(['tag', `${repository}:strata`, `${repository}:podman`]);
    await podmanOk(['push', ...podmanAuth, `${repository}:podman`]);
    await podman(['rmi', '-f', `${repository}:strata`, `${repository}:podman`]);
    await dockerBusybox();
    await dockerOk(['tag', 'busybox:latest', `${repository}:docker`]);
    await dockerOk(['push', `${repository}:docker`], { dockerConfig: asAlice.docker });

    const asBob = await logIn('bob', 'builder');
    assert.equal(await skopeoDigest(`${repository}:strata`, tokenFlags(bob)), digest);
    assert.deepEqual(await skopeoTags(repository, tokenFlags(bob)), ['docker', 'podman', 'skopeo', 'strata']);
    await podmanPullAndRun(`${repository}:skopeo`, ['--tls-verify=false', '--authfile', asBob.podman]);
    assert.equal(await strataPullId(`${repository}:podman`, { dockerConfig: asBob.strata }), busyboxId);
    await dockerPullAndRun(`${repository}:docker`, { dockerConfig: asBob.docker });

    // Who did what, as the access log records it.
    const subjects = new Set(
      registry
        .accessLog()
        .filter((l) => l.path.startsWith('/v2/team-a/'))
        .map((l) => l.subject),
    );
    assert.ok(subjects.has('alice') && subjects.has('bob'), [...subjects].join(','));
  });

  test('bob cannot push team-a/app, alice cannot push team-b/app, anonymous cannot pull', async () => {
    const host = registry.host;
    const asBob = await logIn('bob', 'builder');
    const asAlice = await logIn('alice', 'wonderland');
    const tagsBefore = await skopeoTags(`${host}/team-a/app`, tokenFlags(bob));
    assert.ok(tagsBefore.includes('strata'), 'the test above pushed team-a/app');

    await strataOk(root, ['tag', 'busybox', `${host}/team-a/app:by-bob`]);
    const bobStrata = failed(
      'strata push as bob',
      await strataAt(root, ['push', `${host}/team-a/app:by-bob`], { dockerConfig: asBob.strata }),
    );
    assert.match(
      bobStrata.stderr,
      /^Error: .*token does not grant repository:team-a\/app:pull,push \(HTTP 401, UNAUTHORIZED\)/m,
    );
    const bobSkopeo = failed(
      'skopeo copy as bob',
      await skopeo([
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        bob,
        `docker-archive:${archive}`,
        `docker://${host}/team-a/app:by-bob`,
      ]),
    );
    assert.match(bobSkopeo.stderr, /unauthorized|denied/i);
    const bobPodman = ['--tls-verify=false', '--authfile', asBob.podman];
    await podmanOk(['pull', ...bobPodman, `${host}/team-a/app:strata`]);
    try {
      await podmanOk(['tag', `${host}/team-a/app:strata`, `${host}/team-a/app:by-bob`]);
      const pushed = failed(
        'podman push as bob',
        await podman(['push', ...bobPodman, `${host}/team-a/app:by-bob`]),
      );
      assert.match(pushed.stderr, /unauthorized/i);
    } finally {
      await podman(['rmi', '-f', `${host}/team-a/app:strata`, `${host}/team-a/app:by-bob`]);
    }
    await dockerBusybox();
    await dockerOk(['tag', 'busybox:latest', `${host}/team-a/app:by-bob`]);
    const bobDocker = failed(
      'docker push as bob',
      await docker(['push', `${host}/team-a/app:by-bob`], { dockerConfig: asBob.docker }),
    );
    assert.match(bobDocker.stderr, /unauthorized|denied/i);

    await strataOk(root, ['tag', 'busybox', `${host}/team-b/app:1`]);
    const aliceStrata = failed(
      'strata push team-b as alice',
      await strataAt(root, ['push', `${host}/team-b/app:1`], { dockerConfig: asAlice.strata }),
    );
    // alice may not even read team-b (no rule, no anonymous read): the first HEAD is refused.
    assert.match(aliceStrata.stderr, /^Error: .*127\.0\.0\.1:\d+\/team-b\/app: .*\(HTTP 401\b/m);
    const aliceSkopeo = failed(
      'skopeo copy team-b as alice',
      await skopeo([
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        alice,
        `docker-archive:${archive}`,
        `docker://${host}/team-b/app:1`,
      ]),
    );
    assert.match(aliceSkopeo.stderr, /unauthorized|denied/i);
    await dockerOk(['tag', 'busybox:latest', `${host}/team-b/app:1`]);
    const aliceDocker = failed(
      'docker push team-b as alice',
      await docker(['push', `${host}/team-b/app:1`], { dockerConfig: asAlice.docker }),
    );
    assert.match(aliceDocker.stderr, /unauthorized|denied/i);

    const anonymous = failed(
      'anonymous skopeo inspect',
      await skopeo(['inspect', '--tls-verify=false', `docker://${host}/team-a/app:strata`]),
    );
    assert.match(anonymous.stderr, /unauthorized|authentication required/i);
    const anonymousStrata = failed(
      'anonymous strata pull',
      await strataAt(join(dir.path, 'anonymous-pull'), ['pull', `${host}/team-a/app:strata`]),
    );
    assert.match(anonymousStrata.stderr, /\(HTTP 401, UNAUTHORIZED\)/);

    // Nothing of the refused pushes landed.
    assert.deepEqual(await skopeoTags(`${host}/team-a/app`, tokenFlags(bob)), tagsBefore);
    // bob may read every repository: team-b/app is not there at all.
    const teamB = failed(
      'skopeo list-tags team-b/app',
      await skopeo(['list-tags', ...tokenFlags(bob), `docker://${host}/team-b/app`]),
    );
    assert.match(teamB.stderr, /\b404\b|name unknown/i);
  });

  test('a token fetched for team-a (Basic credentials and a scope) does not open team-b', async () => {
    const tokenUrl = (scope: string): string =>
      `${registry.url}/token?service=strata-test-registry&scope=${encodeURIComponent(scope)}`;
    const wrong = await http(tokenUrl('repository:team-a/app:pull,push'), {
      headers: { authorization: basic('alice', 'nope') },
    });
    assert.equal(wrong.status, 401, 'a wrong password gets no token');

    const issued = await http(tokenUrl('repository:team-a/app:pull,push'), {
      headers: { authorization: basic('alice', 'wonderland') },
    });
    assert.equal(issued.status, 200, issued.text);
    const { token } = JSON.parse(issued.text) as { token: string };
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      sub: string;
      aud: string;
      iss: string;
      access: { type: string; name: string; actions: string[] }[];
    };
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, 'strata-test-registry');
    assert.equal(claims.iss, 'strata-test-issuer');
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
    const bearer = { authorization: `Bearer ${token}` };

    const own = await http(`${registry.url}/v2/team-a/app/tags/list`, { headers: bearer });
    assert.equal(own.status, 200);
    const ownUpload = await http(`${registry.url}/v2/team-a/app/blobs/uploads/`, {
      method: 'POST',
      headers: bearer,
    });
    assert.equal(ownUpload.status, 202, 'the token opens the repository it names');
    await http(`${registry.url}${ownUpload.headers.location ?? ''}`, { method: 'DELETE', headers: bearer });

    for (const [method, path] of [
      ['POST', '/v2/team-b/app/blobs/uploads/'],
      ['GET', '/v2/team-b/app/tags/list'],
      ['GET', '/v2/team-a/other/tags/list'],
    ] as const) {
      const refused = await http(`${registry.url}${path}`, { method, headers: bearer });
      assert.ok(refused.status === 401 || refused.status === 403, `${method} ${path}: ${refused.status}`);
      assert.match(
        refused.headers['www-authenticate'] ?? '',
        /error="insufficient_scope"/,
        `${method} ${path}`,
      );
    }

    // bob asking for push gets a token with only what his rule grants.
    const bobs = await http(tokenUrl('repository:team-a/app:pull,push'), {
      headers: { authorization: basic('bob', 'builder') },
    });
    const bobClaims = JSON.parse(
      Buffer.from(
        (JSON.parse(bobs.text) as { token: string }).token.split('.')[1] ?? '',
        'base64url',
      ).toString('utf8'),
    ) as { access: unknown };
    assert.deepEqual(bobClaims.access, [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
  });

  test('the same storage served with --anonymous-read: anyone pulls, nobody anonymous pushes', async () => {
    // A second replica over the same storage (and the same signing key, kept there).
    const open = await startStrataRegistry({
      dir: join(dir.path, 'token-anonymous'),
      root: registry.root,
      config: configText,
      flags: ['--anonymous-read'],
    });
    try {
      assert.match(open.stderr(), /auth: token \(built-in issuer\), anonymous pulls\)/);
      const repository = `${open.host}/team-a/app`;
      assert.equal(
        await skopeoDigest(`${repository}:strata`),
        await skopeoDigest(`${registry.host}/team-a/app:strata`, tokenFlags(bob)),
      );
      await podmanPullAndRun(`${repository}:skopeo`, ['--tls-verify=false']);
      assert.equal(await strataPullId(`${repository}:docker`), busyboxId);

      await strataOk(root, ['tag', 'busybox', `${repository}:anonymous`]);
      const push = failed('anonymous strata push', await strataAt(root, ['push', `${repository}:anonymous`]));
      assert.match(push.stderr, /\(HTTP 401, UNAUTHORIZED\)/);
      const upload = await http(`${open.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST' });
      assert.equal(upload.status, 401);
      assert.match(
        upload.headers['www-authenticate'] ?? '',
        /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="strata-test-registry",scope="repository:team-a\/app:pull,push"/,
      );
    } finally {
      await open.stop();
    }
  });
});

/** Where dockerd looks for registry CAs (not configurable). */
const DOCKER_CERTS_ROOT = '/etc/docker/certs.d';

describe('strata registry serve over TLS from a test CA', () => {
  let registry: RunningStrataRegistry;
  let ca: TestCa;
  let certsDir: string;
  let dockerCertsDir: string | undefined;
  let madeCertsRoot = false;
  /** skopeo's and podman's --cert-dir: a directory with the CA as `*.crt`. */
  let certDir: string;
  let agent: Agent;

  before(async () => {
    ca = await makeTestCa(join(dir.path, 'ca'));
    registry = await startStrataRegistry({ dir: join(dir.path, 'tls'), tls: ca });
    certsDir = await certsDirFor(join(dir.path, 'tls-client'), registry.host, ca);
    certDir = join(dir.path, 'tls-cert-dir');
    await mkdir(certDir, { recursive: true });
    await writeFile(join(certDir, 'ca.crt'), await readFile(ca.caCert));
    agent = new Agent({ connect: { ca: await readFile(ca.caCert, 'utf8') } });
  });
  after(async () => {
    if (dockerCertsDir !== undefined) {
      await rm(dockerCertsDir, { recursive: true, force: true });
      // /etc/docker/certs.d itself goes too if this test made it (and nothing else is in it).
      if (madeCertsRoot) await rmdir(DOCKER_CERTS_ROOT).catch(() => undefined);
    }
    await agent?.close();
    await registry?.stop();
  });

  test('strata, skopeo and podman push and pull over verified HTTPS', async () => {
    assert.match(registry.url, /^https:\/\//);
    const name = `${registry.host}/secure/busybox:1`;
    await strataOk(root, ['tag', 'busybox', name]);
    const digest = pushedDigest(await strataOk(root, ['push', name], { certsDir }));

    // Verification is on: without the CA skopeo refuses the certificate.
    const untrusted = failed('skopeo inspect without the CA', await skopeo(['inspect', `docker://${name}`]));
    assert.match(untrusted.stderr, /x509: certificate signed by unknown authority/);
    assert.equal(await skopeoDigest(name, ['--cert-dir', certDir]), digest);
    await skopeoOk([
      'copy',
      '--dest-cert-dir',
      certDir,
      `docker-archive:${archive}`,
      `docker://${registry.host}/secure/skopeo:1`,
    ]);
    await podmanPullAndRun(`${registry.host}/secure/skopeo:1`, ['--cert-dir', certDir]);
    assert.equal(await strataPullId(`${registry.host}/secure/skopeo:1`, { certsDir }), busyboxId);
    const otherCa = await makeTestCa(join(dir.path, 'other-ca'));
    const wrongCa = failed(
      'strata pull trusting another CA',
      await strataAt(join(dir.path, 'tls-wrong-ca'), ['pull', name], {
        certsDir: await certsDirFor(join(dir.path, 'tls-other-client'), registry.host, otherCa),
      }),
    );
    assert.match(wrongCa.stderr, /certificate/i);
  });

  test('plain HTTP to the TLS port fails', async () => {
    const plain = registry.url.replace(/^https:/, 'http:');
    await assert.rejects(http(`${plain}/v2/`), 'an HTTP request gets no HTTP answer');
    const secure = await http(`${registry.url}/v2/`, { dispatcher: agent });
    assert.equal(secure.status, 200);
  });

  test('docker pushes and pulls over HTTPS with /etc/docker/certs.d', async () => {
    // dockerd reads its CAs from /etc/docker/certs.d only. It treats 127.0.0.0/8 as insecure
    // whatever is there (TLS without verification, then plain HTTP): success here proves HTTPS
    // (the port speaks nothing else), not verification, which skopeo/podman/strata proved above.
    madeCertsRoot = !existsSync(DOCKER_CERTS_ROOT);
    dockerCertsDir = join(DOCKER_CERTS_ROOT, registry.host);
    await mkdir(dockerCertsDir, { recursive: true });
    await writeFile(join(dockerCertsDir, 'ca.crt'), await readFile(ca.caCert));
    await dockerBusybox();
    const name = `${registry.host}/secure/docker:1`;
    await dockerOk(['tag', 'busybox:latest', name]);
    const pushed = await dockerOk(['push', name]);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)?.[1];
    assert.equal(await skopeoDigest(name, ['--cert-dir', certDir]), digest);
    await dockerPullAndRun(name);
    await dockerPullAndRun(`${registry.host}/secure/busybox:1`);
  });
});

describe('strata registry serve: the command', () => {
  test('/healthz is 200, every request is one JSON access-log line, SIGINT stops it cleanly', async () => {
    const registry = await startStrataRegistry({ dir: join(dir.path, 'cli-health') });
    try {
      const health = await http(`${registry.url}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.text), { status: 'ok' });
      assert.equal((await http(`${registry.url}/v2/`)).status, 200);
      assert.equal(
        (await http(`${registry.url}/v2/missing/app/manifests/1`, { method: 'HEAD' })).status,
        404,
      );
      await registry.waitForAccessLog((line) => line.method === 'HEAD');
      const lines = registry.stdout().trim().split('\n');
      assert.equal(lines.length, 3, registry.stdout());
      const entries = registry.accessLog();
      assert.deepEqual(
        entries.map(({ method, path, status }) => ({ method, path, status })),
        [
          { method: 'GET', path: '/healthz', status: 200 },
          { method: 'GET', path: '/v2/', status: 200 },
          { method: 'HEAD', path: '/v2/missing/app/manifests/1', status: 404 },
        ],
      );
      for (const entry of entries) {
        assert.ok(!Number.isNaN(Date.parse(entry.time)), entry.time);
        assert.equal(typeof entry.durationMs, 'number');
        assert.equal(entry.remote, '127.0.0.1');
      }
    } finally {
      await registry.stop('SIGINT');
    }
    assert.match(registry.stderr(), /^SIGINT: finishing in-flight requests, then stopping$/m);
  });

  test('a config mistake exits 1 with one line naming file:line:key, no stack trace', async () => {
    const cases: { text: string; line: number; message: RegExp }[] = [
      {
        text: 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/x\n  delete:\n    enabled: maybe\n',
        line: 6,
        message: /storage\.delete\.enabled: .*boolean/,
      },
      {
        text: 'version: 0.1\n\ngc:\n  interval: soon\n',
        line: 4,
        message: /gc\.interval: expected a duration like 30s, 10m or 1h/,
      },
      { text: 'http:\n  addr: [oops\n', line: 3, message: /invalid YAML/ },
    ];
    for (const [index, { text, line, message }] of cases.entries()) {
      const file = join(dir.path, `bad-config-${index}.yml`);
      await writeFile(file, text);
      const result = await strataAt(join(dir.path, 'bad-config-root'), [
        'registry',
        'serve',
        '--config',
        file,
      ]);
      assert.equal(result.code, 1, result.stderr);
      const errorLines = result.stderr.trimEnd().split('\n');
      assert.equal(errorLines.length, 1, result.stderr);
      assert.ok(errorLines[0]?.startsWith(`Error: ${file}:${line}: `), result.stderr);
      assert.match(errorLines[0] ?? '', message);
      assert.doesNotMatch(result.stderr, /^\s+at /m);
    }
  });

  test('config mistakes found past the schema (http.addr, auth) name their line too', async () => {
    const cases: { text: string; line: number; key: string }[] = [
      { text: 'version: 0.1\nhttp:\n  addr: nonsense\n', line: 3, key: 'http.addr' },
      {
        text: 'version: 0.1\nauth:\n  htpasswd:\n    path: /x\n  token:\n    service: s\n    issuer: i\n    builtin: {}\n',
        line: 2,
        key: 'auth',
      },
    ];
    for (const [index, { text, line, key }] of cases.entries()) {
      const file = join(dir.path, `bad-config-late-${index}.yml`);
      await writeFile(file, text);
      const result = await strataAt(join(dir.path, 'bad-config-root'), [
        'registry',
        'serve',
        '--config',
        file,
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
      assert.ok(result.stderr.startsWith(`Error: ${file}:${line}: ${key}: `), result.stderr);
    }
  });

  test('REGISTRY_* variables configure it as they configure distribution', async () => {
    const htpasswd = join(dir.path, 'env.htpasswd');
    await writeFile(htpasswd, htpasswdLine('carol', 'secret'));
    const registry = await startStrataRegistry({
      dir: join(dir.path, 'cli-env'),
      env: { REGISTRY_AUTH_HTPASSWD_PATH: htpasswd, REGISTRY_AUTH_HTPASSWD_REALM: 'from-the-environment' },
    });
    try {
      const refused = await http(`${registry.url}/v2/`);
      assert.equal(refused.status, 401);
      assert.equal(refused.headers['www-authenticate'], 'Basic realm="from-the-environment"');
      const allowed = await http(`${registry.url}/v2/`, {
        headers: { authorization: basic('carol', 'secret') },
      });
      assert.equal(allowed.status, 200);
      await registry.waitForAccessLog((line) => line.status === 200);
      assert.equal(registry.accessLog().at(-1)?.subject, 'carol');
    } finally {
      await registry.stop();
    }
  });

  test('an unreadable htpasswd file or token certificate bundle exits 1 with one line', async () => {
    const bundle = join(dir.path, 'token-issuer-config.yml');
    await writeFile(
      bundle,
      'auth:\n  token:\n    realm: http://127.0.0.1:1/token\n    service: s\n    issuer: i\n    rootcertbundle: /nonexistent/bundle.pem\n',
    );
    for (const flags of [
      ['--htpasswd', '/nonexistent/htpasswd'],
      ['--config', bundle],
    ]) {
      const result = await serveWithin(10_000, join(dir.path, 'bad-auth-root'), [
        ...flags,
        '--addr',
        '127.0.0.1:0',
      ]);
      assert.equal(
        result.timedOut,
        false,
        `serve ${flags.join(' ')} printed ${JSON.stringify(result.stderr)} but kept running`,
      );
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^Error: .*\/nonexistent\/.*\n$/);
    }
  });

  test('--addr already in use: one line, exit 1', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const address = holder.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const result = await strataAt(join(dir.path, 'in-use-root'), [
        'registry',
        'serve',
        '--addr',
        `127.0.0.1:${port}`,
      ]);
      assert.equal(result.code, 1);
      assert.equal(result.stderr, `Error: cannot listen on 127.0.0.1:${port}: address already in use\n`);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  test('SIGTERM during a slow upload: the upload completes, new connections are refused, exit 0', async () => {
    const registry = await startStrataRegistry({ dir: join(dir.path, 'cli-slow') });
    const blob = randomBytes(3 * 1024 * 1024 + 4096);
    const digest = sha256(blob);
    const first = blob.subarray(0, 4096);
    // More than the server's 1 MiB write batch, so the bytes show in the session's size at once.
    const burst = blob.subarray(4096, 4096 + 2 * 1024 * 1024);
    const tail = blob.subarray(4096 + burst.length);

    const started = await http(`${registry.url}/v2/slow/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(started.status, 202);
    const location = new URL(started.headers.location ?? '', registry.url).toString();
    const patched = await http(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: first,
    });
    assert.equal(patched.status, 202);

    // The final PUT streams its body: the burst now, the tail slowly after SIGTERM.
    let releaseTail: () => void = () => undefined;
    const tailReleased = new Promise<void>((resolve) => (releaseTail = resolve));
    async function* body(): AsyncGenerator<Buffer> {
      yield burst;
      await tailReleased;
      for (let offset = 0; offset < tail.length; offset += 128 * 1024) {
        await sleep(100);
        yield tail.subarray(offset, offset + 128 * 1024);
      }
    }
    const closing = http(
      `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: Readable.from(body()),
      },
    );
    try {
      // The server is inside the PUT once the session holds more than the first chunk.
      for (let tries = 0; ; tries++) {
        const status = await http(location);
        const end = Number(/^0-(\d+)$/.exec(status.headers.range ?? '')?.[1] ?? 0);
        if (end + 1 > first.length) break;
        assert.ok(tries < 200, 'the PUT body never reached the server');
        await sleep(25);
      }
      registry.child.kill('SIGTERM');
      // Draining: the listener closes at once, so a new client cannot get in.
      for (let tries = 0; !(await refused(registry.host)); tries++) {
        assert.ok(tries < 100, 'the server still accepts connections after SIGTERM');
        await sleep(20);
      }
      assert.equal(registry.child.exitCode, null, 'still running while the upload goes on');
    } finally {
      releaseTail();
    }
    const closed = await closing;
    assert.equal(closed.status, 201, closed.text);
    assert.equal(closed.headers['docker-content-digest'], digest);
    const exit = await registry.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, registry.stderr());
    assert.match(registry.stderr(), /^SIGTERM: finishing in-flight requests, then stopping$/m);
    assert.ok(
      registry.accessLog().some((line) => line.method === 'PUT' && line.status === 201),
      'the access log has the PUT, written before the exit',
    );

    // The blob is whole in the storage: a new server over it serves every byte.
    const again = await startStrataRegistry({ dir: join(dir.path, 'cli-slow-again'), root: registry.root });
    try {
      const response = await request(`${again.url}/v2/slow/app/blobs/${digest}`);
      assert.equal(response.statusCode, 200);
      assert.equal(sha256(Buffer.from(await response.body.arrayBuffer())), digest);
    } finally {
      await again.stop();
    }
  });
});

/** Whether a new TCP connection to `host` (`127.0.0.1:port`) is refused. */
function refused(host: string): Promise<boolean> {
  const [address = '', port = ''] = host.split(':');
  return new Promise((resolve) => {
    const socket = connect(Number(port), address);
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** `strata --root <root> registry serve <args>`, killed (and reported) if it runs past `ms`. */
function serveWithin(
  ms: number,
  storeRoot: string,
  args: readonly string[],
): Promise<{ code: number | null; stderr: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(STRATA_BIN, ['--root', storeRoot, 'registry', 'serve', ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let timedOut = false;
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, ms);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, timedOut });
    });
  });
}
