/**
 * Build-context loading: strata's filtered walk (`walkContext` + `.dockerignore`) over a
 * 100 000-file project tree, against `docker build` sending the same context, side by side.
 * Prints walk time and entries emitted for several ignore files (none, the usual excludes, a
 * literal `!` exception, a wildcard `!` exception that forces entering every excluded directory)
 * and, where a Docker daemon is reachable, docker's time and the ratio (docker / strata; > 1
 * means strata is faster). Run with `npm run bench context-walk` once wired in bench/run.ts, or
 * `node --import tsx bench/context-walk.ts`.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { walkContext } from '../src/dockerfile/context.js';
import { readIgnoreFile } from '../src/dockerfile/dockerignore.js';
import { DOCKER_CLIENT, Dockerd } from '../test/helpers/dockerd.js';
import { run, type RunResult } from '../test/helpers/cli.js';

const TOTAL_FILES = 100_000;
const RUNS = 3;
const IMAGE = 'strata-bench-ctx';

interface IgnoreVariant {
  name: string;
  dockerignore: string;
}

const BASE_IGNORE = 'node_modules\n.git\ndist\n**/*.log\n';
const VARIANTS: IgnoreVariant[] = [
  { name: 'no .dockerignore', dockerignore: '' },
  { name: 'node_modules .git dist **/*.log', dockerignore: BASE_IGNORE },
  { name: '+ !dist/keep.txt (literal)', dockerignore: `${BASE_IGNORE}!dist/keep.txt\n` },
  { name: '+ !*/package.json (wildcard)', dockerignore: `${BASE_IGNORE}!*/package.json\n` },
];

/** Every file of the tree, relative; about `TOTAL_FILES` of them, shaped like a JS project. */
function projectFiles(): string[] {
  const files: string[] = ['Dockerfile', 'keep.txt', 'package.json', 'README.md', 'debug.log'];
  for (let module = 0; module < 50; module++) {
    for (let file = 0; file < 60; file++) {
      const extension = file % 10 === 0 ? 'test.ts' : file % 17 === 0 ? 'log' : 'ts';
      files.push(`src/module${module}/${file % 3 === 0 ? 'lib/' : ''}file${file}.${extension}`);
    }
  }
  for (let object = 0; object < 4000; object++) {
    files.push(
      `.git/objects/${(object % 256).toString(16).padStart(2, '0')}/${object.toString(16).padStart(38, '0')}`,
    );
  }
  for (let chunk = 0; chunk < 3000; chunk++) files.push(`dist/assets/chunk${chunk}.js`);
  files.push('dist/keep.txt', 'dist/index.html');
  // node_modules gets the rest: packages with nested directories and nested node_modules.
  let packageIndex = 0;
  while (files.length < TOTAL_FILES) {
    const name = `pkg${packageIndex++}`;
    const base =
      packageIndex % 7 === 0
        ? `node_modules/parent${packageIndex}/node_modules/${name}`
        : `node_modules/${name}`;
    files.push(`${base}/package.json`, `${base}/README.md`);
    for (let file = 0; file < 90 && files.length < TOTAL_FILES; file++) {
      const depth = file % 5;
      const nested = Array.from({ length: depth }, (_, level) => `d${level}`).join('/');
      files.push(`${base}/lib/${nested === '' ? '' : `${nested}/`}file${file}.js`);
    }
  }
  return files;
}

async function createTree(root: string, files: string[]): Promise<void> {
  const directories = new Set(files.map((file) => dirname(join(root, file))));
  for (const directory of [...directories].sort()) await mkdir(directory, { recursive: true });
  const queue = [...files];
  const writer = async (): Promise<void> => {
    for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
      await writeFile(
        join(root, file),
        file === 'Dockerfile' ? 'FROM scratch\nCOPY keep.txt /\n' : `${file}\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: 64 }, writer));
}

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const start = process.hrtime.bigint();
  const result = await work();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, result };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function strataWalk(context: string): Promise<{ seconds: number; entries: number }> {
  const times: number[] = [];
  let entries = 0;
  for (let attempt = 0; attempt < RUNS; attempt++) {
    const { seconds, result } = await timed(async () => {
      const excludes = await readIgnoreFile(context);
      let count = 0;
      for await (const _entry of walkContext(context, { excludes })) count++;
      return count;
    });
    times.push(seconds);
    entries = result;
  }
  return { seconds: median(times), entries };
}

type DockerCommand = (args: readonly string[]) => Promise<RunResult>;

/** A reachable daemon: the system one when `docker info` works, else a private one if installed. */
async function connectDocker(): Promise<{ docker: DockerCommand; stop: () => Promise<void> } | string> {
  if (!existsSync(DOCKER_CLIENT)) return `${DOCKER_CLIENT} is not installed`;
  const system = await run(DOCKER_CLIENT, ['info']);
  if (system.code === 0) return { docker: (args) => run(DOCKER_CLIENT, args), stop: async () => undefined };
  try {
    const dockerd = await Dockerd.start();
    return { docker: (args) => dockerd.docker(args), stop: () => dockerd.stop() };
  } catch (err) {
    return `no running dockerd and none could be started (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
}

async function dockerBuild(docker: DockerCommand, context: string): Promise<number> {
  const times: number[] = [];
  for (let attempt = 0; attempt < RUNS; attempt++) {
    const { seconds, result } = await timed(() =>
      docker(['build', '-q', '--network', 'host', '-t', IMAGE, '-f', join(context, 'Dockerfile'), context]),
    );
    if (result.code !== 0) throw new Error(`docker build exited ${result.code}:\n${result.stderr}`);
    times.push(seconds);
  }
  return median(times);
}

export async function benchContextWalk(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-ctx-'));
  const context = join(work, 'context');
  const emptyContext = join(work, 'empty');
  let docker: Awaited<ReturnType<typeof connectDocker>> | undefined;
  try {
    const files = projectFiles();
    const created = await timed(() => createTree(context, files));
    await createTree(emptyContext, ['Dockerfile', 'keep.txt']);
    console.log(
      `context walk: ${files.length} files (src, node_modules, .git, dist), created in ${created.seconds.toFixed(1)} s; median of ${RUNS} runs`,
    );
    docker = await connectDocker();
    let dockerOverhead: number | undefined;
    if (typeof docker === 'string') {
      console.log(`docker build not compared: ${docker}`);
    } else {
      dockerOverhead = await dockerBuild(docker.docker, emptyContext);
      console.log(
        `docker build of a 2-file context (fixed overhead): ${(dockerOverhead * 1000).toFixed(0)} ms`,
      );
    }
    for (const variant of VARIANTS) {
      await writeFile(join(context, '.dockerignore'), variant.dockerignore);
      const strata = await strataWalk(context);
      let line =
        `${variant.name.padEnd(34)} strata ${(strata.seconds * 1000).toFixed(0).padStart(6)} ms ` +
        `(${String(strata.entries).padStart(6)} entries)`;
      if (typeof docker !== 'string' && docker !== undefined) {
        const dockerSeconds = await dockerBuild(docker.docker, context);
        line +=
          `   docker build ${(dockerSeconds * 1000).toFixed(0).padStart(6)} ms` +
          `   ratio ${(dockerSeconds / strata.seconds).toFixed(2)}x`;
      }
      console.log(line);
    }
  } finally {
    if (docker !== undefined && typeof docker !== 'string') {
      await docker.docker(['rmi', '-f', IMAGE]).catch(() => undefined);
      await docker.stop();
    }
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchContextWalk();
}
