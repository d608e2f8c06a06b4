/**
 * Parsing a realistic 2 000-line Dockerfile: strata's parser (text → nodes) and the whole
 * frontend (nodes → typed, validated stages), against dockerd 20.10 in the same run.
 *
 * dockerd cannot parse without building, so its figure is the difference between two
 * `docker build` runs that fail at their second instruction (`COPY missing /`, after the whole
 * file was parsed): one with the 2 000-line file, one with a 2-line file. Both send the same
 * one-file context. Run with `npm run bench dockerfile-parse`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { parseDockerfile } from '../src/dockerfile/parser.js';
import { loadDockerfile } from '../src/dockerfile/stages.js';
import { Dockerd } from '../test/helpers/dockerd.js';

/**
 * Stages of a typical multi-stage build, repeated until the file has `lines` lines. `legacy`
 * leaves out what dockerd 20.10's builder rejects (RUN --mount, heredocs, COPY --chmod).
 */
export function realisticDockerfile(lines: number, dialect: 'buildkit' | 'legacy' = 'buildkit'): string {
  const buildkit = dialect === 'buildkit';
  const out = buildkit
    ? ['# syntax=docker/dockerfile:1.7', 'ARG BASE=debian:12']
    : ['FROM scratch AS probe', 'COPY missing /', 'ARG BASE=debian:12'];
  out.push('ARG VERSION=1.0.0');
  for (let stage = 0; out.length < lines; stage++) {
    out.push(
      '',
      `# stage ${stage}: build the component`,
      `FROM \${BASE} AS build${stage}`,
      'ARG VERSION',
      `ENV APP_HOME=/opt/app${stage} PATH="/opt/app${stage}/bin:$PATH" LANG=C.UTF-8`,
      `LABEL org.opencontainers.image.version="$VERSION" org.opencontainers.image.title="component ${stage}"`,
      `WORKDIR /src/${stage}`,
      `RUN ${buildkit ? '--mount=type=cache,target=/var/cache/apt ' : ''}\\`,
      '    apt-get update \\',
      '    && apt-get install -y --no-install-recommends \\',
      '       build-essential ca-certificates curl git \\',
      '    && rm -rf /var/lib/apt/lists/*',
      `COPY --chown=1000:1000 ${buildkit ? '--chmod=0644 ' : ''}package.json package-lock.json ./`,
      ...(buildkit
        ? [
            'RUN <<EOF',
            'set -eux',
            'make -j"$(nproc)" VERSION=${VERSION%%-*}',
            'make install DESTDIR=/out',
            'EOF',
          ]
        : [
            'RUN set -eux; \\',
            '    make -j"$(nproc)" VERSION=${VERSION%%-*}; \\',
            '    make install DESTDIR=/out',
          ]),
      `FROM \${BASE} AS runtime${stage}`,
      `COPY --from=build${stage} /out/ /`,
      'EXPOSE 8080/tcp',
      'USER 1000:1000',
      'HEALTHCHECK --interval=30s --timeout=3s CMD ["curl", "-f", "http://localhost:8080/"]',
      'ENTRYPOINT ["/usr/local/bin/app"]',
      'CMD ["--serve"]',
    );
  }
  return `${out.slice(0, lines).join('\n')}\n`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function timeRuns(runs: number, fn: () => unknown): { first: number; median: number } {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  return { first: times[0] as number, median: median(times.slice(1)) };
}

async function dockerParseMs(
  dockerd: Dockerd,
  context: string,
  dockerfile: string,
  small: string,
): Promise<number> {
  const build = async (file: string): Promise<number> => {
    const start = performance.now();
    const result = await dockerd.docker(['build', '--network', 'host', '-f', file, context]);
    if (!/COPY failed/.test(result.stderr + result.stdout)) {
      throw new Error(`docker build did not stop at COPY missing: ${result.stderr}${result.stdout}`);
    }
    return performance.now() - start;
  };
  const bigTimes: number[] = [];
  const smallTimes: number[] = [];
  for (let i = 0; i < 7; i++) {
    bigTimes.push(await build(dockerfile));
    smallTimes.push(await build(small));
  }
  return median(bigTimes) - median(smallTimes);
}

function report(label: string, text: string): number {
  const parse = timeRuns(51, () => parseDockerfile(text));
  const load = timeRuns(51, () => loadDockerfile(text));
  const model = loadDockerfile(text);
  const instructions = model.stages.reduce((sum, stage) => sum + stage.instructions.length + 1, 0);
  console.log(`  ${label}: ${model.stages.length} stages, ${instructions} instructions`);
  console.log(`    strata parse : ${parse.median.toFixed(2)} ms (first run ${parse.first.toFixed(2)} ms)`);
  console.log(`    strata typed : ${load.median.toFixed(2)} ms (first run ${load.first.toFixed(2)} ms)`);
  return load.median;
}

export async function benchDockerfileParse(): Promise<void> {
  const lines = 2000;
  console.log(`dockerfile-parse: ${lines}-line Dockerfiles (median of 50 runs after a first one)`);
  report('BuildKit dialect (heredocs, RUN --mount)', realisticDockerfile(lines));
  const legacy = realisticDockerfile(lines, 'legacy');
  const strataMs = report('dockerd 20.10 dialect', legacy);

  const work = await mkdtemp(join(tmpdir(), 'strata-bench-parse-'));
  let dockerd: Dockerd | undefined;
  try {
    dockerd = await Dockerd.start();
    // Both files start with `FROM scratch` + `COPY missing /`: dockerd parses all, then stops there.
    await writeFile(join(work, 'Dockerfile.big'), legacy);
    await writeFile(join(work, 'Dockerfile.small'), 'FROM scratch\nCOPY missing /\n');
    const docker = await dockerParseMs(
      dockerd,
      work,
      join(work, 'Dockerfile.big'),
      join(work, 'Dockerfile.small'),
    );
    console.log(
      `    dockerd 20.10: ${docker.toFixed(2)} ms (build of the 2 000-line file minus a 2-line one)`,
    );
    console.log(`    ratio        : ${(docker / strataMs).toFixed(1)}x (dockerd / strata typed)`);
  } catch (err) {
    console.log(
      `    dockerd 20.10: not compared (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`,
    );
  } finally {
    await dockerd?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
