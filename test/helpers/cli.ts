import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const STRATA_BIN = join(REPO_ROOT, 'bin', 'strata');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs a program to completion, collecting output; never throws on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    // A child that exits without reading stdin closes the pipe: that is not a test failure.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        stdoutBytes,
      });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Runs `bin/strata --root <root> …` (the compiled CLI, as users run it). */
export function strata(
  root: string,
  args: readonly string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return run(STRATA_BIN, ['--root', root, ...args], options);
}

/** Like `strata` but fails the test with the command's stderr when it does not exit 0. */
export async function strataOk(
  root: string,
  args: readonly string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const result = await strata(root, args, options);
  if (result.code !== 0) {
    throw new Error(`strata ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  }
  return result;
}

export async function mustRun(
  command: string,
  args: readonly string[],
  options: { input?: string | Buffer; cwd?: string } = {},
): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0)
    throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result;
}

export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `strata-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/**
 * A store with `busybox:latest` made by scripts/test-images.sh (Debian's busybox-static), and
 * the rootfs tarball it was made from.
 */
export async function busyboxStore(dir: string): Promise<{ root: string; rootfsTar: string }> {
  const root = join(dir, 'store');
  const rootfs = join(dir, 'rootfs');
  await mustRun(join(REPO_ROOT, 'scripts', 'test-images.sh'), ['--root', root, '--rootfs-out', rootfs]);
  return { root, rootfsTar: join(rootfs, 'busybox.tar') };
}

/** Writes `files` (relative path → content) under `root`, creating directories. */
export async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
}
