/**
 * Start-to-exit latency of `run --rm busybox true`: strata vs dockerd 20.10 (a private daemon,
 * test/helpers/dockerd.ts) vs podman 4.3, side by side, interleaved, median of N runs each. All
 * with `--network none` (the private dockerd has no bridge); strata's default private network
 * (a namespace + pasta) is measured too. Same busybox rootfs (Debian's busybox-static) for all.
 * Run with `npm run bench container-run` (root, runc, docker.io, podman).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Dockerd } from '../test/helpers/dockerd.js';
import { busyboxStore, mustRun, run, strataOk } from '../test/helpers/cli.js';
import { timed } from './save-load.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);

/** podman in this sandbox cannot raise rlimits: pinned low enough to be allowed. */
const PODMAN_LIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export async function benchContainerRun(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'sb-'));
  const { root, rootfsTar } = await busyboxStore(work);
  const podmanState = join(work, 'pm');
  const podman = [
    '--root',
    join(podmanState, 'root'),
    '--runroot',
    join(podmanState, 'run'),
    '--storage-driver',
    'overlay',
  ];
  const dockerd = await Dockerd.start();
  try {
    await dockerd.dockerOk(['import', rootfsTar, 'busybox:latest']);
    await mustRun('podman', [...podman, 'import', rootfsTar, 'busybox:latest']);
    const contenders: Array<{ name: string; once: () => Promise<unknown> }> = [
      {
        name: 'strata (--network none)',
        once: () => strataOk(root, ['run', '--rm', '--network', 'none', 'busybox', 'true']),
      },
      { name: 'strata (private net, pasta)', once: () => strataOk(root, ['run', '--rm', 'busybox', 'true']) },
      {
        name: 'docker 20.10 (--network none)',
        once: () => dockerd.dockerOk(['run', '--rm', '--network', 'none', 'busybox', 'true']),
      },
      {
        name: 'podman 4.3 (--network none)',
        once: () =>
          mustRun('podman', [
            ...podman,
            'run',
            '--rm',
            '--network',
            'none',
            ...PODMAN_LIMITS,
            'busybox',
            'true',
          ]),
      },
    ];
    // One warm-up each: first-use costs (unpacking, podman's storage set-up) are not the latency.
    for (const contender of contenders) await contender.once();
    const times = new Map<string, number[]>(contenders.map((contender) => [contender.name, []]));
    for (let round = 0; round < RUNS; round++) {
      for (const contender of contenders) times.get(contender.name)?.push(await timed(contender.once));
    }
    const strataMedian = median(times.get(contenders[0]?.name ?? '') ?? []);
    console.log(`\ncontainer-run: \`run --rm busybox true\`, start to exit, median of ${RUNS} (interleaved)`);
    for (const contender of contenders) {
      const value = median(times.get(contender.name) ?? []);
      console.log(
        `  ${contender.name.padEnd(32)} ${(value * 1000).toFixed(0).padStart(6)} ms   ${(value / strataMedian).toFixed(2)}× strata`,
      );
    }
  } finally {
    await dockerd.stop();
    await run('sh', ['-c', `grep -o ' ${podmanState}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
    await rm(work, { recursive: true, force: true });
  }
}
