/**
 * Linting throughput: 1 000 realistic Dockerfiles (multi-stage, heredocs, RUN --mount, package
 * installs) through every rule, reported as files per second, with heap use sampled along the
 * way to show memory stays flat (nothing is kept between files).
 */
import { performance } from 'node:perf_hooks';

import { lintDockerfile } from '../src/lint/engine.js';

function realisticDockerfile(seed: number): string {
  const stages = 1 + (seed % 3);
  const out = ['# syntax=docker/dockerfile:1.7', `ARG BASE=debian:12.${seed % 9}`];
  for (let stage = 0; stage < stages; stage++) {
    out.push(
      `FROM \${BASE} AS build${stage}`,
      'ARG VERSION=1.0.0',
      `ENV APP_HOME=/opt/app${stage} PATH="/opt/app${stage}/bin:$PATH"`,
      `LABEL org.opencontainers.image.version="$VERSION" org.opencontainers.image.title="app ${seed}"`,
      `WORKDIR /src/${stage}`,
      'RUN --mount=type=cache,target=/var/cache/apt \\',
      '    apt-get update \\',
      '    && apt-get install -y --no-install-recommends ca-certificates curl=7.88.1-10 git \\',
      '    && rm -rf /var/lib/apt/lists/*',
      'COPY package.json package-lock.json ./',
      'RUN npm ci && npm cache clean --force',
      'COPY . .',
      'RUN <<EOF',
      'set -eux',
      'pip install --no-cache-dir -r requirements.txt',
      'curl -fsSL https://example.com/install.sh | sh',
      'EOF',
    );
  }
  out.push(
    'FROM gcr.io/distroless/base:nonroot',
    'COPY --from=build0 /opt/app0 /app',
    'USER 65532',
    'EXPOSE 8080/tcp',
    'ENTRYPOINT ["/app/bin/server"]',
  );
  return `${out.join('\n')}\n`;
}

export async function benchLint(): Promise<void> {
  const files = Array.from({ length: 1000 }, (_, index) => realisticDockerfile(index));
  const lines = files.reduce((total, file) => total + file.split('\n').length, 0);
  for (const file of files.slice(0, 50)) lintDockerfile(file);
  globalThis.gc?.();
  const heapSamples: number[] = [];
  const start = performance.now();
  let findings = 0;
  for (const [index, file] of files.entries()) {
    findings += lintDockerfile(file, { file: `Dockerfile.${index}` }).findings.length;
    if (index % 250 === 0) heapSamples.push(process.memoryUsage().heapUsed);
  }
  const seconds = (performance.now() - start) / 1000;
  const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  console.log(`lint: ${files.length} Dockerfiles (${lines} lines, ${findings} findings)`);
  console.log(`  ${(files.length / seconds).toFixed(0)} files/s, ${(lines / seconds).toFixed(0)} lines/s`);
  console.log(`  heap during run: ${heapSamples.map(mb).join(' → ')}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await benchLint();
