import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { Store } from '../src/store/index.js';
import { importImage } from '../src/image/import.js';
import { pullImage, pushImage, type PullOptions } from '../src/registry/client/index.js';
import { MediaType } from '../src/oci/mediatypes.js';
import { digestOf } from '../src/oci/digest.js';
import { busyboxStore, mustRun, run, strataOk, tempDir } from './helpers/cli.js';
import { createReadStream } from 'node:fs';
import {
  certsDirFor,
  makeTestCa,
  startRegistry,
  startTokenServer,
  strataRegistry,
  strataRegistryOk,
  type RunningRegistry,
  type TokenServer,
} from './helpers/registry.js';

/**
 * strata against CNCF distribution 2.8 (Debian's docker-registry) on 127.0.0.1, with skopeo and
 * podman as independent peers: what strata pushes they pull (and podman runs), what they push
 * strata pulls; with no auth, htpasswd, bearer tokens and TLS from a test CA.
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
let root: string;
let rootfsTar: string;
const noDockerConfig = (): PullOptions => ({ dockerConfigDir: join(dir.path, 'no-docker-config') });

before(async () => {
  dir = await tempDir('registry-interop');
  ({ root, rootfsTar } = await busyboxStore(dir.path));
});
after(() => dir?.cleanup());

describe('registry without auth', () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry(join(dir.path, 'plain'));
  });
  after(() => registry?.stop());

  test('strata push → skopeo inspect and podman pull + run', async () => {
    const name = `${registry.host}/interop/busybox:1`;
    await strataOk(root, ['tag', 'busybox', name]);
    const pushed = await strataRegistryOk(root, ['push', name]);
    assert.match(pushed.stdout, /^1: digest: sha256:[0-9a-f]{64} size: \d+$/m);
    assert.match(pushed.stderr, /The push refers to repository \[127\.0\.0\.1:\d+\/interop\/busybox\]/);
    assert.match(pushed.stderr, /: Pushed$/m);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)?.[1];

    const raw = JSON.parse(
      (await mustRun('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${name}`])).stdout,
    ) as {
      layers: { mediaType: string }[];
    };
    assert.equal(
      raw.layers[0]?.mediaType,
      MediaType.ociLayerGzip,
      'uncompressed layers are pushed gzip-compressed',
    );
    const inspected = JSON.parse(
      (await mustRun('skopeo', ['inspect', '--tls-verify=false', `docker://${name}`])).stdout,
    ) as { Digest: string };
    assert.equal(inspected.Digest, digest);

    // The second push finds every blob on the registry.
    const again = await strataRegistryOk(root, ['push', name]);
    assert.match(again.stderr, /Layer already exists/);
    assert.doesNotMatch(again.stderr, /Pushed|Compressing/);

    await mustRun('podman', ['pull', '--tls-verify=false', name]);
    try {
      const ran = await mustRun('podman', [...PODMAN_RUN, name, 'echo', 'hi']);
      assert.equal(ran.stdout, 'hi\n');
    } finally {
      await run('podman', ['rmi', '-f', name]);
    }
  });

  test('strata build pulls a missing FROM image, and --pull fetches it again', async () => {
    const name = `${registry.host}/base/busybox:pulled`;
    await strataOk(root, ['tag', 'busybox', name]);
    await strataRegistryOk(root, ['push', name]);
    const fresh = join(dir.path, 'fresh-store');
    const context = join(dir.path, 'ctx-pull');
    await mkdir(context, { recursive: true });
    await writeFile(join(context, 'Dockerfile'), `FROM ${name}\nRUN echo built > /built.txt\n`);
    const built = await strataRegistryOk(fresh, [
      'build',
      '--progress',
      'plain',
      '-t',
      'pulled/app',
      context,
    ]);
    assert.match(built.stderr, /\[internal\] pull 127\.0\.0\.1:\d+\/base\/busybox:pulled/);
    const listing = await strataOk(fresh, ['images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.match(listing.stdout, /base\/busybox:pulled/, 'the base is named in the store, like docker pull');
    const again = await strataRegistryOk(fresh, ['build', '--progress', 'plain', context]);
    assert.doesNotMatch(again.stderr, /\[internal\] pull/, 'a base in the store is not pulled again');
    const refreshed = await strataRegistryOk(fresh, ['build', '--pull', '--progress', 'plain', context]);
    assert.match(refreshed.stderr, /\[internal\] pull/);
    assert.match(refreshed.stderr, /CACHED/, 'the same base keeps the cache');
  });

  test('skopeo copy pushes, strata pulls the same image', async () => {
    const archive = join(dir.path, 'busybox-docker.tar');
    await strataOk(root, ['save', '-o', archive, 'busybox']);
    const name = `${registry.host}/skopeo/busybox:s`;
    await mustRun('skopeo', [
      'copy',
      '--dest-tls-verify=false',
      `docker-archive:${archive}`,
      `docker://${name}`,
    ]);
    const fresh = join(dir.path, 'from-skopeo');
    const pulled = await strataRegistryOk(fresh, ['pull', name]);
    assert.equal(pulled.stdout.trim(), name);
    assert.match(pulled.stderr, /Pull complete/);
    assert.match(pulled.stderr, /Status: Downloaded newer image for 127\.0\.0\.1:\d+\/skopeo\/busybox:s/);
    const id = (await strataOk(root, ['inspect', '--format', '{{.Id}}', 'busybox'])).stdout.trim();
    assert.equal(
      (await strataOk(fresh, ['inspect', '--format', '{{.Id}}', name])).stdout.trim(),
      id,
      'same config, same image ID',
    );
    const raw = (await mustRun('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${name}`]))
      .stdout;
    const repoDigest = (
      await strataOk(fresh, ['inspect', '--format', '{{index .RepoDigests 0}}', name])
    ).stdout.trim();
    assert.equal(repoDigest.split('@')[1], digestOf(raw), 'the manifest is stored byte for byte');
    const again = await strataRegistryOk(fresh, ['pull', name]);
    assert.match(again.stderr, /Image is up to date/);
  });

  test('a multi-platform index: the requested platform is chosen, and the index pushes back whole', async () => {
    const store = await Store.open(join(dir.path, 'multi'));
    const names: Record<string, { digest: string; size: number }> = {};
    for (const architecture of ['amd64', 'arm64']) {
      const name = `${registry.host}/multi/app:${architecture}`;
      await importImage(store, createReadStream(rootfsTar), {
        reference: name,
        platform: { os: 'linux', architecture },
        changes: [`LABEL arch=${architecture}`],
      });
      const result = await pushImage(store, name, noDockerConfig());
      names[architecture] = { digest: result.digest, size: result.size };
    }
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: ['amd64', 'arm64'].map((architecture) => ({
          mediaType: MediaType.ociManifest,
          ...names[architecture],
          platform: { os: 'linux', architecture },
        })),
      }),
    );
    const put = await request(`${registry.url}/v2/multi/app/manifests/latest`, {
      method: 'PUT',
      headers: { 'content-type': MediaType.ociIndex },
      body: index,
    });
    await put.body.dump();
    assert.equal(put.statusCode, 201);

    const puller = await Store.open(join(dir.path, 'multi-pull'));
    const arm = await pullImage(puller, `${registry.host}/multi/app`, {
      ...noDockerConfig(),
      platform: { os: 'linux', architecture: 'arm64' },
    });
    assert.equal(arm.config.config?.Labels?.arch, 'arm64');
    assert.equal(arm.target.digest, digestOf(index));
    const amd = await pullImage(puller, `${registry.host}/multi/app`, {
      ...noDockerConfig(),
      platform: { os: 'linux', architecture: 'amd64' },
    });
    assert.equal(amd.config.config?.Labels?.arch, 'amd64');
    const cli = await strataRegistry(join(dir.path, 'multi-cli'), [
      'pull',
      '--platform',
      'linux/s390x',
      `${registry.host}/multi/app`,
    ]);
    assert.equal(cli.code, 1);
    assert.match(
      cli.stderr,
      /^Error: no matching manifest for linux\/s390x in 127\.0\.0\.1:\d+\/multi\/app:latest \(it has: linux\/amd64, linux\/arm64\)$/m,
    );

    // Both platforms are now in the store: the index pushes as a whole, blobs mounted.
    await puller.images.set(`${registry.host}/multi/copy:1`, amd.target);
    await pushImage(puller, `${registry.host}/multi/copy:1`, noDockerConfig());
    const copied = JSON.parse(
      (
        await mustRun('skopeo', [
          'inspect',
          '--raw',
          '--tls-verify=false',
          `docker://${registry.host}/multi/copy:1`,
        ])
      ).stdout,
    ) as {
      manifests: unknown[];
    };
    assert.equal(copied.manifests.length, 2);
    await mustRun('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--override-arch',
      'arm64',
      `docker://${registry.host}/multi/copy:1`,
    ]);
  });

  test('chunked upload, --all-tags and cross-repository mount against distribution', async () => {
    const store = await Store.open(root);
    const source = `${registry.host}/tags/app`;
    for (const tag of ['a', 'b']) await strataOk(root, ['tag', 'busybox', `${source}:${tag}`]);
    const pushed = await strataRegistryOk(root, ['push', '--all-tags', source]);
    assert.match(pushed.stdout, /^a: digest: .*\nb: digest: /m);
    const tags = JSON.parse(
      (await mustRun('skopeo', ['list-tags', '--tls-verify=false', `docker://${source}`])).stdout,
    ) as { Tags: string[] };
    assert.deepEqual(tags.Tags.sort(), ['a', 'b']);
    const pulled = await strataRegistryOk(join(dir.path, 'all-tags'), ['pull', '-a', '-q', source]);
    assert.deepEqual(pulled.stdout.trim().split('\n').sort(), [`${source}:a`, `${source}:b`]);

    // A name on the same registry lets the push mount instead of upload.
    await strataOk(root, ['tag', `${source}:a`, `${registry.host}/tags/mounted:1`]);
    const events: string[] = [];
    await pushImage(store, `${registry.host}/tags/mounted:1`, {
      ...noDockerConfig(),
      progress: (e) => e.type === 'blob' && events.push(e.status),
    });
    assert.ok(events.includes('mounted') || events.includes('exists'), events.join(','));

    const chunkedStore = await Store.open(join(dir.path, 'chunked'));
    await importImage(chunkedStore, createReadStream(rootfsTar), {
      reference: `${registry.host}/chunked/app:1`,
    });
    await pushImage(chunkedStore, `${registry.host}/chunked/app:1`, {
      ...noDockerConfig(),
      chunkSize: 256 * 1024,
    });
    await mustRun('skopeo', [
      'copy',
      '--src-tls-verify=false',
      `docker://${registry.host}/chunked/app:1`,
      `oci:${join(dir.path, 'chunked-oci')}:x`,
    ]);
  });
});

describe('registry with htpasswd (bcrypt) Basic auth', () => {
  let registry: RunningRegistry;
  const env = (): NodeJS.ProcessEnv => ({ DOCKER_CONFIG: join(dir.path, 'docker-basic') });
  before(async () => {
    registry = await startRegistry(join(dir.path, 'basic'), {
      auth: { kind: 'htpasswd', users: { alice: 'wonderland' } },
    });
  });
  after(() => registry?.stop());

  test('push needs login; login checks the password, stores it, and logout forgets it', async () => {
    const name = `${registry.host}/private/busybox:1`;
    await strataOk(root, ['tag', 'busybox', name]);
    const denied = await strataRegistry(root, ['push', name], { env: env() });
    assert.equal(denied.code, 1);
    assert.match(
      denied.stderr,
      new RegExp(
        `^Error: registry ${registry.host}: authentication required \\(HTTP 401, UNAUTHORIZED\\); log in with strata login ${registry.host}$`,
        'm',
      ),
    );

    const wrong = await strataRegistry(root, ['login', '-u', 'alice', '--password-stdin', registry.host], {
      env: env(),
      input: 'nope\n',
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /authentication required \(HTTP 401, UNAUTHORIZED\); check the credentials/);

    const ok = await strataRegistryOk(root, ['login', '-u', 'alice', '--password-stdin', registry.host], {
      env: env(),
      input: 'wonderland\n',
    });
    assert.equal(ok.stdout, 'Login Succeeded\n');
    const config = JSON.parse(await readFile(join(env().DOCKER_CONFIG ?? '', 'config.json'), 'utf8')) as {
      auths: Record<string, { auth: string }>;
    };
    assert.equal(
      Buffer.from(config.auths[registry.host]?.auth ?? '', 'base64').toString(),
      'alice:wonderland',
    );

    await strataRegistryOk(root, ['push', '-q', name], { env: env() });
    await mustRun('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--creds',
      'alice:wonderland',
      `docker://${name}`,
    ]);
    await strataRegistryOk(join(dir.path, 'basic-pull'), ['pull', name], { env: env() });

    assert.equal(
      (await strataRegistryOk(root, ['logout', registry.host], { env: env() })).stdout,
      `Removing login credentials for ${registry.host}\n`,
    );
    const after = await strataRegistry(join(dir.path, 'basic-pull-2'), ['pull', name], { env: env() });
    assert.equal(after.code, 1);
  });
});

describe('registry with bearer token auth', () => {
  let registry: RunningRegistry;
  let tokens: TokenServer;
  before(async () => {
    tokens = await startTokenServer(join(dir.path, 'token'), {
      users: { bob: 'builder' },
      anonymousPull: true,
    });
    registry = await startRegistry(join(dir.path, 'token-registry'), {
      auth: { kind: 'token', server: tokens },
    });
  });
  after(async () => {
    await registry?.stop();
    await tokens?.close();
  });

  test('login, push and anonymous pull through the token flow, with cached tokens', async () => {
    const dockerConfig = join(dir.path, 'docker-token');
    const name = `${registry.host}/team/busybox:1`;
    await strataOk(root, ['tag', 'busybox', name]);

    const anonymousPush = await strataRegistry(root, ['push', name], {
      env: { DOCKER_CONFIG: dockerConfig },
    });
    assert.equal(anonymousPush.code, 1);
    assert.match(anonymousPush.stderr, /^Error: .*\(HTTP 401, UNAUTHORIZED\); log in with strata login/m);
    assert.equal(
      anonymousPush.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('Error')).length,
      1,
    );

    await assert.rejects(
      (async () => {
        const { login } = await import('../src/registry/client/index.js');
        await login(registry.host, { username: 'bob', password: 'wrong', dockerConfigDir: dockerConfig });
      })(),
      /incorrect username or password \(HTTP 401\)/,
    );
    await strataRegistryOk(root, ['login', '-u', 'bob', '-p', 'builder', registry.host], {
      env: { DOCKER_CONFIG: dockerConfig },
    });

    const before = tokens.requests.length;
    await pushImage(await Store.open(root), name, { dockerConfigDir: dockerConfig });
    const pushTokens = tokens.requests.slice(before);
    assert.ok(pushTokens.length <= 3, `tokens are cached per scope: ${JSON.stringify(pushTokens)}`);
    assert.ok(pushTokens.every((r) => r.user === 'bob'));

    const start = tokens.requests.length;
    const pulled = await pullImage(await Store.open(join(dir.path, 'token-pull')), name, noDockerConfig());
    assert.equal(pulled.names[0], name);
    const pullTokens = tokens.requests.slice(start);
    assert.equal(pullTokens.length, 1, 'one anonymous token serves the whole pull');
    assert.deepEqual(pullTokens[0]?.scopes, ['repository:team/busybox:pull']);
    await mustRun('skopeo', ['inspect', '--tls-verify=false', `docker://${name}`]);
  });
});

describe('registry with TLS from a test CA', () => {
  let registry: RunningRegistry;
  let certsDir: string;
  let caCert: string;
  before(async () => {
    const ca = await makeTestCa(join(dir.path, 'ca'));
    caCert = ca.caCert;
    registry = await startRegistry(join(dir.path, 'tls'), { tls: ca });
    certsDir = await certsDirFor(join(dir.path, 'tls-client'), registry.host, ca);
  });
  after(() => registry?.stop());

  test('certs.d CA makes HTTPS verify; skopeo pulls with the same CA', async () => {
    const name = `${registry.host}/secure/busybox:1`;
    await strataOk(root, ['tag', 'busybox', name]);
    await strataRegistryOk(root, ['push', name], { env: { STRATA_CERTS_DIR: certsDir } });
    const skopeoCerts = join(dir.path, 'skopeo-certs');
    await mustRun('mkdir', ['-p', skopeoCerts]);
    await writeFile(join(skopeoCerts, 'ca.crt'), await readFile(caCert));
    await mustRun('skopeo', ['inspect', '--cert-dir', skopeoCerts, `docker://${name}`]);
    await strataRegistryOk(join(dir.path, 'tls-pull'), ['pull', name], {
      env: { STRATA_CERTS_DIR: certsDir },
    });
  });

  test('NODE_EXTRA_CA_CERTS is trusted, though bin/strata keeps it from node until a TLS connection', async () => {
    const name = `${registry.host}/secure/busybox:1`; // pushed by the test above
    // certs.d naming another CA turns verification on for this loopback host; the test CA is
    // then trusted only if NODE_EXTRA_CA_CERTS is.
    const other = await makeTestCa(join(dir.path, 'other-ca'));
    const otherCerts = await certsDirFor(join(dir.path, 'other-client'), registry.host, other);
    const untrusted = await strataRegistry(join(dir.path, 'tls-untrusted'), ['pull', name], {
      env: { STRATA_CERTS_DIR: otherCerts },
    });
    assert.notEqual(untrusted.code, 0, 'the test CA is trusted by nothing else');
    assert.match(untrusted.stderr, /certificate/i);
    await strataRegistryOk(join(dir.path, 'tls-extra'), ['pull', name], {
      env: { STRATA_CERTS_DIR: otherCerts, NODE_EXTRA_CA_CERTS: caCert },
    });
  });
});
