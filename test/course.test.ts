/**
 * The course exercise (shared/course, module 2, section 7), end to end with strata and a Node.js
 * app: a Debian base made with debootstrap, Debian's nodejs (and npm for building), dependencies
 * from the npm registry. Single-stage vs multi-stage: the multi-stage image is at least 30 %
 * smaller, runs as a non-root user, `.dockerignore` keeps node_modules, .git and .env out of the
 * context, and changing only the app's code reuses the dependency layer (CACHED).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { REPO_ROOT, mustRun, run, strataOk, tempDir } from './helpers/cli.js';

const SERVER = `const http = require('node:http');
const ms = require('ms');
const port = Number(process.env.PORT || 3000);
http.createServer((request, response) => {
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify({ message: 'Hello from strata!', uptime: ms(Math.round(process.uptime() * 1000)) }));
}).listen(port, () => console.log('listening on ' + port));
`;

const SINGLE = `FROM node-build
WORKDIR /app
COPY . .
RUN npm ci
EXPOSE 3000
CMD ["node", "server.js"]
`;

const MULTI = `FROM node-build AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

FROM node-runtime
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY server.js package.json ./
USER app
EXPOSE 3000
HEALTHCHECK --interval=1s --timeout=3s --retries=3 CMD ["node", "-e", "require('http').get('http://127.0.0.1:3000/', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
CMD ["node", "server.js"]
`;

/** The host's locally added CA certificates (Debian: /usr/local/share/ca-certificates). */
async function hostExtraCas(): Promise<string> {
  const dir = '/usr/local/share/ca-certificates';
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.crt'));
  } catch {
    return '';
  }
  const parts = await Promise.all(names.map((name) => readFile(join(dir, name), 'utf8')));
  return parts.join('\n');
}

/** Sum of the image's layer sizes, as `docker images` counts them. */
async function imageBytes(root: string, name: string): Promise<number> {
  const inspect = JSON.parse((await strataOk(root, ['image', 'inspect', name])).stdout) as Array<{
    Size: number;
  }>;
  return inspect[0]?.Size ?? 0;
}

function stepLines(stderr: string): Map<string, 'CACHED' | 'DONE'> {
  const names = new Map<string, string>();
  const result = new Map<string, 'CACHED' | 'DONE'>();
  for (const line of stderr.split('\n')) {
    const header = /^#(\d+) \[[^\]]*\] (.*)$/.exec(line);
    if (header) names.set(header[1] as string, header[2] as string);
    const done = /^#(\d+) (DONE|CACHED)/.exec(line);
    const name = done ? names.get(done[1] as string) : undefined;
    if (done && name) result.set(name, done[2] as 'CACHED' | 'DONE');
  }
  return result;
}

describe('course exercise: a Node.js web app, single-stage vs multi-stage', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let app: string;

  before(async () => {
    dir = await tempDir('course');
    root = join(dir.path, 'store');
    await mustRun(join(REPO_ROOT, 'scripts', 'test-images.sh'), [
      '--root',
      root,
      '--rootfs-out',
      join(dir.path, 'rootfs'),
      '--debian',
    ]);
    const bases = join(dir.path, 'bases');
    await mkdir(bases, { recursive: true });
    const install = (packages: string, extra = '') =>
      `FROM debian:bookworm\nRUN apt-get update && apt-get install -y --no-install-recommends ${packages} && rm -rf /var/lib/apt/lists/*${extra}\n`;
    // This sandbox reaches the npm registry through a TLS-intercepting egress proxy: the build
    // base trusts the host's extra CAs, as a company base image trusts its proxy's CA.
    await writeFile(join(bases, 'host-cas.crt'), await hostExtraCas());
    await writeFile(
      join(bases, 'Dockerfile.build'),
      `${install('nodejs npm ca-certificates')}COPY host-cas.crt /usr/local/share/ca-certificates/host-cas.crt\nRUN update-ca-certificates\n`,
    );
    await writeFile(
      join(bases, 'Dockerfile.runtime'),
      install('nodejs', ' && useradd --system --uid 10001 --no-create-home app'),
    );
    await strataOk(root, ['build', '-q', '-f', join(bases, 'Dockerfile.build'), '-t', 'node-build', bases]);
    await strataOk(root, [
      'build',
      '-q',
      '-f',
      join(bases, 'Dockerfile.runtime'),
      '-t',
      'node-runtime',
      bases,
    ]);

    app = join(dir.path, 'app');
    await mkdir(join(app, 'node_modules', 'junk'), { recursive: true });
    await mkdir(join(app, '.git'), { recursive: true });
    await writeFile(
      join(app, 'package.json'),
      JSON.stringify(
        { name: 'course-app', version: '1.0.0', private: true, dependencies: { ms: '2.1.3' } },
        null,
        2,
      ),
    );
    await mustRun('npm', ['install', '--package-lock-only', '--no-audit', '--no-fund', '--prefix', app]);
    await writeFile(join(app, 'server.js'), SERVER);
    await writeFile(join(app, '.env'), 'SECRET=do-not-ship\n');
    await writeFile(join(app, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    await writeFile(join(app, 'node_modules', 'junk', 'index.js'), 'host junk');
    await writeFile(join(app, '.dockerignore'), 'node_modules\n.git\n.env\nDockerfile*\n');
    await writeFile(join(app, 'Dockerfile.single'), SINGLE);
    await writeFile(join(app, 'Dockerfile.multi'), MULTI);
  });
  after(async () => dir.cleanup());

  test('multi-stage is at least 30 % smaller, runs as non-root, ships no node_modules/.git/.env from the host', async () => {
    await strataOk(root, [
      'build',
      '-q',
      '-f',
      join(app, 'Dockerfile.single'),
      '-t',
      'course/app:single',
      app,
    ]);
    await strataOk(root, ['build', '-q', '-f', join(app, 'Dockerfile.multi'), '-t', 'course/app:multi', app]);
    const single = await imageBytes(root, 'course/app:single');
    const multi = await imageBytes(root, 'course/app:multi');
    console.log(
      `course: single-stage ${(single / 1e6).toFixed(1)} MB, multi-stage ${(multi / 1e6).toFixed(1)} MB (${((1 - multi / single) * 100).toFixed(0)} % smaller)`,
    );
    assert.ok(multi <= single * 0.7, `multi-stage ${multi} is not 30 % smaller than ${single}`);

    const user = (
      await strataOk(root, ['image', 'inspect', '--format', '{{.Config.User}}', 'course/app:multi'])
    ).stdout.trim();
    assert.equal(user, 'app');
    const passwd = await run('sh', [
      '-c',
      `bin/strata --root ${root} export course/app:multi | tar -xOf - etc/passwd | grep '^app:'`,
    ]);
    assert.match(passwd.stdout, /^app:x:10001:/, 'the app user is not root');

    for (const image of ['course/app:single', 'course/app:multi']) {
      const listing = await run('sh', [
        '-c',
        `bin/strata --root ${root} export ${image} | tar -tf - | grep '^app/'`,
      ]);
      const paths = listing.stdout.split('\n');
      assert.ok(
        !paths.some((path) => path.startsWith('app/.git') || path === 'app/.env'),
        `${image} ships .git or .env`,
      );
      assert.ok(!paths.includes('app/node_modules/junk/index.js'), `${image} ships the host's node_modules`);
      assert.ok(paths.includes('app/node_modules/ms/index.js'), `${image} has its own dependencies`);
    }
  });

  test('the app works in the image: node runs server.js with its dependency', async () => {
    // The image's command through the runtime in a one-off build step (strata run: next test).
    const probe = join(dir.path, 'probe');
    await mkdir(probe, { recursive: true });
    await writeFile(
      join(probe, 'Dockerfile'),
      "FROM course/app:multi\nRUN (PORT=3999 node server.js &) && sleep 1 && node -e \"require('http').get('http://127.0.0.1:3999/', r => { let b = ''; r.on('data', d => b += d); r.on('end', () => { console.log(b); require('fs').writeFileSync('/tmp/answer', b); process.exit(0); }); })\"\n",
    );
    await strataOk(root, ['build', '-q', '-t', 'course/probe', probe]);
    const answer = await run('sh', [
      '-c',
      `bin/strata --root ${root} export course/probe | tar -xOf - tmp/answer`,
    ]);
    assert.match(answer.stdout, /"message":"Hello from strata!"/);
  });

  test('strata run: the app answers on localhost:5000, runs as app, its healthcheck turns healthy', async () => {
    await strataOk(root, ['run', '-d', '--name', 'course-app', '-p', '5000:3000', 'course/app:multi']);
    try {
      let answer = '';
      for (let attempt = 0; attempt < 100 && answer === ''; attempt++) {
        answer = (await run('curl', ['-fsS', '--noproxy', '*', '-m', '2', 'http://localhost:5000/'])).stdout;
        if (answer === '') await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.match(answer, /"message":"Hello from strata!"/);
      assert.equal((await strataOk(root, ['exec', 'course-app', 'whoami'])).stdout, 'app\n');
      let health = '';
      for (let attempt = 0; attempt < 100 && health !== 'healthy'; attempt++) {
        health = (
          await strataOk(root, ['inspect', '--format', '{{.State.Health.Status}}', 'course-app'])
        ).stdout.trim();
        if (health !== 'healthy') await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(health, 'healthy');
      assert.match((await strataOk(root, ['ps', '--format', '{{.Status}}'])).stdout, /\(healthy\)/);
    } finally {
      await run('bin/strata', ['--root', root, 'rm', '-f', 'course-app']);
    }
  });

  test('changing only the app code reuses the dependency layer', async () => {
    await writeFile(join(app, 'server.js'), `${SERVER}// a change in the code only\n`);
    const rebuilt = await strataOk(root, [
      'build',
      '--progress',
      'plain',
      '-f',
      join(app, 'Dockerfile.multi'),
      '-t',
      'course/app:multi',
      app,
    ]);
    const steps = stepLines(rebuilt.stderr);
    assert.equal(steps.get('RUN npm ci --omit=dev'), 'CACHED', rebuilt.stderr);
    assert.equal(steps.get('COPY --from=deps /app/node_modules ./node_modules'), 'CACHED', rebuilt.stderr);
    assert.equal(steps.get('COPY server.js package.json ./'), 'DONE', rebuilt.stderr);
  });
});
