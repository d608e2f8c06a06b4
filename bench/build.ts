/**
 * `strata build` against `docker build` (dockerd 20.10 with BuildKit) and `buildah bud`, side by
 * side in one run, on the same context and the same busybox base (made from Debian's
 * busybox-static, loaded into all three):
 *   (a) cold build that COPYs a 20 000-file, 200 MB context
 *   (b) no-op rebuild of it
 *   (c) rebuild after one file changed
 *   (d) cold build of four independent stages (each COPYs a quarter) joined by a final stage
 *   (e) cold build of 20 consecutive RUN steps (the RUN issue's benchmark)
 * Each figure is the wall time of the CLI command, the median of RUNS runs. Ratios are
 * strata / reference (< 1 means strata is faster). Run with `npm run bench build`.
 */
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { Dockerd } from '../test/helpers/dockerd.js';
import { REPO_ROOT, busyboxStore, run, strataOk, type RunResult } from '../test/helpers/cli.js';

const FILES = 20_000;
const TOTAL_BYTES = 200 * 1024 * 1024;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** `BENCH_SCENARIOS=a,e` runs only those scenarios. */
const ONLY = (process.env.BENCH_SCENARIOS ?? '').split(',').filter((s) => s !== '');

/** Source-like files: words from a small vocabulary with random identifiers (gzip ~3-4x). */
async function writeContext(dir: string): Promise<void> {
  const words = [
    'const',
    'function',
    'return',
    'import',
    'export',
    'await',
    'if',
    'else',
    'for',
    'of',
    '=>',
    '{',
    '}',
    ';',
  ];
  const fileBytes = Math.floor(TOTAL_BYTES / FILES);
  for (let d = 0; d < FILES / 100; d++) {
    // Four top-level parts, so that (d) can give each stage one of them.
    const sub = join(dir, `part${d % 4}`, `pkg${String(d).padStart(3, '0')}`);
    await mkdir(sub, { recursive: true });
    await Promise.all(
      Array.from({ length: 100 }, async (_, f) => {
        let text = '';
        while (text.length < fileBytes) {
          text += `${words[(text.length * 7 + f) % words.length]} id_${randomBytes(4).toString('hex')} `;
          if (text.length % 80 < 12) text += '\n';
        }
        await writeFile(join(sub, `file${f}.ts`), text.slice(0, fileBytes));
      }),
    );
  }
}

const SINGLE = 'FROM busybox\nCOPY . /app/\n';
const STAGES = [
  ...[0, 1, 2, 3].map((q) => `FROM busybox AS part${q}\nCOPY part${q} /app/part${q}/\n`),
  'FROM busybox\n',
  ...[0, 1, 2, 3].map((q) => `COPY --from=part${q} /app/part${q} /app/part${q}\n`),
].join('');

const RUNS20 = `FROM busybox\n${Array.from({ length: 20 }, (_, i) => `RUN echo step${i} > /step${i}.txt\n`).join('')}`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function timed(work: () => Promise<RunResult>): Promise<number> {
  const start = process.hrtime.bigint();
  const result = await work();
  if (result.code !== 0) throw new Error(`command failed (${result.code}): ${result.stderr.slice(-2000)}`);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

interface Tool {
  name: string;
  /** Forget every cached step (not the base image). */
  reset(): Promise<void>;
  build(context: string, dockerfile: string, tag: string): Promise<number>;
  stop(): Promise<void>;
}

async function strataTool(work: string): Promise<Tool> {
  const { root } = await busyboxStore(join(work, 'strata-base'));
  // docker keeps its loaded busybox unpacked in its layer store across `builder prune`; strata's
  // template gets the same: the base image's snapshot, made by running the image once.
  await strataOk(root, ['run', '--rm', '--network', 'none', 'busybox', 'true']);
  const template = root;
  const live = join(work, 'strata-store');
  return {
    name: 'strata',
    async reset() {
      await rm(live, { recursive: true, force: true });
      await cp(template, live, { recursive: true });
    },
    build: (context, dockerfile, tag) =>
      timed(() =>
        run(join(REPO_ROOT, 'bin', 'strata'), [
          '--root',
          live,
          'build',
          '-q',
          '-f',
          dockerfile,
          '-t',
          tag,
          context,
        ]),
      ),
    stop: async () => undefined,
  };
}

async function dockerTool(busyboxArchive: string): Promise<Tool> {
  process.env.DOCKER_BUILDKIT = '1';
  const dockerd = await Dockerd.start();
  await dockerd.dockerOk(['load', '-i', busyboxArchive]);
  return {
    name: 'docker',
    async reset() {
      await dockerd.docker(['builder', 'prune', '-af']);
      await dockerd.docker(['image', 'rm', '-f', 'bench/a', 'bench/d', 'bench/e']);
    },
    build: (context, dockerfile, tag) =>
      timed(() => dockerd.docker(['build', '-q', '--network', 'host', '-f', dockerfile, '-t', tag, context])),
    stop: () => dockerd.stop(),
  };
}

async function buildahTool(work: string, busyboxArchive: string): Promise<Tool | string> {
  if (!existsSync('/usr/bin/buildah')) return 'buildah is not installed (scripts/setup.sh installs it)';
  const storage = [
    '--root',
    join(work, 'buildah', 'root'),
    '--runroot',
    join(work, 'buildah', 'run'),
    '--storage-driver',
    'overlay',
  ];
  const buildah = (args: string[]) => run('buildah', [...storage, ...args]);
  const pulled = await buildah(['pull', '-q', `docker-archive:${busyboxArchive}`]);
  if (pulled.code !== 0) return `buildah cannot load the base image: ${pulled.stderr.trim()}`;
  await buildah(['tag', pulled.stdout.trim(), 'docker.io/library/busybox:latest']);
  return {
    name: 'buildah',
    async reset() {
      await buildah(['rmi', '--prune']);
      await buildah(['rmi', '-f', 'bench/a', 'bench/d', 'bench/e']);
    },
    build: (context, dockerfile, tag) =>
      timed(() =>
        buildah([
          'bud',
          '-q',
          '--layers',
          '--isolation',
          'chroot',
          '--network',
          'host',
          '-f',
          dockerfile,
          '-t',
          tag,
          context,
        ]),
      ),
    stop: async () => {
      await run('sh', [
        '-c',
        `grep -o ' ${join(work, 'buildah')}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`,
      ]);
    },
  };
}

interface Scenario {
  name: string;
  measure(tool: Tool): Promise<number>;
}

export async function benchBuild(): Promise<void> {
  const work = join(REPO_ROOT, 'bench', '.work', 'build');
  await rm(work, { recursive: true, force: true });
  const context = join(work, 'context');
  await writeContext(context);
  // The context's 200 MB must not still be on their way to disk while the first tool runs.
  await run('sync', []);
  const single = join(work, 'Dockerfile.single');
  const stages = join(work, 'Dockerfile.stages');
  await writeFile(single, SINGLE);
  await writeFile(stages, STAGES);
  const runSteps = join(work, 'Dockerfile.runs');
  await writeFile(runSteps, RUNS20);

  const tools: Tool[] = [];
  tools.push(await strataTool(work));
  const busyboxArchive = join(work, 'busybox.tar');
  await strataOk(join(work, 'strata-base', 'store'), ['save', '-o', busyboxArchive, 'busybox']);
  const notes: string[] = [];
  try {
    tools.push(await dockerTool(busyboxArchive));
  } catch (err) {
    notes.push(`docker: not compared (${(err as Error).message.split('\n')[0]})`);
  }
  const buildah = await buildahTool(work, busyboxArchive);
  if (typeof buildah === 'string') notes.push(`buildah: not compared (${buildah})`);
  else tools.push(buildah);

  const emptyContext = join(work, 'empty-context');
  await mkdir(emptyContext, { recursive: true });
  const changed = join(context, 'part0', 'pkg100', 'file7.ts');
  const scenarios: Scenario[] = [
    {
      name: '(a) cold build, 20 000 files / 200 MB COPY',
      async measure(tool) {
        await tool.reset();
        return tool.build(context, single, 'bench/a');
      },
    },
    { name: '(b) no-op rebuild', measure: (tool) => tool.build(context, single, 'bench/a') },
    {
      name: '(c) rebuild after one file changed',
      async measure(tool) {
        await writeFile(changed, `changed ${randomBytes(8).toString('hex')}\n`);
        return tool.build(context, single, 'bench/a');
      },
    },
    {
      name: '(d) four independent stages, cold',
      async measure(tool) {
        await tool.reset();
        return tool.build(context, stages, 'bench/d');
      },
    },
    {
      name: '(e) 20 consecutive RUN steps, cold',
      async measure(tool) {
        await tool.reset();
        return tool.build(emptyContext, runSteps, 'bench/e');
      },
    },
  ];

  console.log(
    `build: ${FILES} files, ${TOTAL_BYTES / 1024 / 1024} MB context; median of ${RUNS} runs; ratio = strata / reference`,
  );
  const results = new Map<string, Map<string, number>>();
  try {
    for (const scenario of scenarios.filter((s) => ONLY.length === 0 || ONLY.includes(s.name.slice(1, 2)))) {
      const row = new Map<string, number>();
      for (const tool of tools) {
        const times: number[] = [];
        try {
          for (let attempt = 0; attempt < RUNS; attempt++) {
            // Scenarios run in order, so (b) and (c) find the image (a) built.
            times.push(await scenario.measure(tool));
          }
        } catch (err) {
          // strata must not fail; a reference tool that does (buildah's memfd errors under load)
          // costs its column, not the other results.
          if (tool.name === 'strata') throw err;
          notes.push(`${tool.name}: ${scenario.name} failed (${(err as Error).message.split('\n')[0]})`);
          continue;
        }
        row.set(tool.name, median(times));
      }
      results.set(scenario.name, row);
      const strata = row.get('strata') as number;
      const cells = [...row].map(([name, seconds]) => `${name} ${seconds.toFixed(2)} s`);
      const ratios = [...row]
        .filter(([name]) => name !== 'strata')
        .map(([name, seconds]) => `vs ${name} ${(strata / seconds).toFixed(2)}x`);
      console.log(`${scenario.name.padEnd(44)} ${cells.join('   ')}   ${ratios.join('   ')}`);
    }
  } finally {
    for (const tool of tools) await tool.stop();
    for (const note of notes) console.log(note);
    await rm(work, { recursive: true, force: true });
  }
}
