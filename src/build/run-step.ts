/**
 * RUN: the command line BuildKit would run (SHELL, exec form, heredocs), its mounts turned into
 * runtime mounts (cache directories in the store, secrets in private temp files, binds of the
 * context or of other stages, tmpfs, the ssh agent), the user resolved in the image, and the
 * runtime (runc or chroot) started on the step's root filesystem.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { StrataError, errnoCode } from '../errors.js';
import { withFileLock } from '../store/index.js';
import { chompHeredocContent, type Heredoc } from '../dockerfile/parser.js';
import { runProcess, type RuncSession, type RuntimeMount } from '../runtime/index.js';
import type { MountSpec } from './mounts.js';
import { resolveInRoot, resolveOwner, supplementaryGroups } from './users.js';

const execFileAsync = promisify(execFile);

/** Where a secret comes from: `--secret id=x,src=FILE` or `--secret id=x,env=VAR`. */
export interface SecretSource {
  file?: string;
  env?: string;
}

/** The shell script or argv BuildKit runs for a RUN with heredocs. */
export function runArguments(
  command: { form: 'exec' | 'shell'; args: readonly string[]; heredocs: readonly Heredoc[] },
  shell: readonly string[],
): { args: string[]; script?: { name: string; data: string } } {
  if (command.form === 'exec') return { args: [...command.args] };
  const line = command.args.join(' ');
  const [only] = command.heredocs;
  if (
    command.heredocs.length === 1 &&
    only &&
    new RegExp(`^\\s*\\d*<<-?\\s*(['"]?)${escapeRegExp(only.name)}\\1\\s*$`).test(line)
  ) {
    // `RUN <<EOF` alone: the body is the script (run by its #! interpreter when it has one).
    const body = only.chomp ? chompHeredocContent(only.content) : only.content;
    if (body.startsWith('#!')) return { args: [], script: { name: only.name, data: body } };
    return { args: [...shell, body] };
  }
  if (command.heredocs.length === 0) return { args: [...shell, line] };
  // Otherwise the shell reads the heredocs itself, from the full text.
  const script = [line, ...command.heredocs.map((heredoc) => `${heredoc.content}${heredoc.name}`)].join('\n');
  return { args: [...shell, script] };
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

export interface RunMountContext {
  storeRoot: string;
  contextDir: string;
  secrets: ReadonlyMap<string, SecretSource>;
  sshAgent?: string;
  /** A read-only view of a stage or image (`from=`); released by the caller's cleanup list. */
  viewOf(from: string): Promise<{ path: string; release: () => Promise<void> }>;
}

export interface PreparedMounts {
  mounts: RuntimeMount[];
  /** Extra environment (secret `env=`, SSH_AUTH_SOCK); never part of the cache key. */
  env: string[];
  /** Held locks and temp files, released after the run. */
  release(): Promise<void>;
  /** Runs `work` while `sharing=locked` caches are held. */
  locked<T>(work: () => Promise<T>): Promise<T>;
}

/** Turns parsed `--mount` specs into runtime mounts. */
export async function prepareMounts(
  specs: readonly MountSpec[],
  context: RunMountContext,
): Promise<PreparedMounts> {
  const mounts: RuntimeMount[] = [];
  const env: string[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  const lockedCaches: string[] = [];
  let secretDir: string | undefined;
  const release = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    for (const spec of specs) {
      switch (spec.type) {
        case 'bind': {
          let root = context.contextDir;
          if (spec.from !== undefined) {
            const view = await context.viewOf(spec.from);
            cleanups.push(view.release);
            root = view.path;
          }
          const source = await resolveInRoot(root, spec.source);
          if (!existsSync(source))
            throw new StrataError('NOT_FOUND', `mount source ${spec.source} not found`);
          mounts.push({ type: 'bind', source, destination: spec.target, readonly: !spec.readwrite });
          break;
        }
        case 'cache': {
          const dir = join(
            context.storeRoot,
            'cache',
            'mounts',
            createHash('sha256').update(spec.id).digest('hex'),
          );
          if (!existsSync(dir)) {
            await mkdir(join(dir, '..'), { recursive: true, mode: 0o700 });
            const staging = `${dir}.tmp-${process.pid}`;
            await rm(staging, { recursive: true, force: true });
            await mkdir(staging, { mode: spec.mode });
            if (spec.from !== undefined) {
              const view = await context.viewOf(spec.from);
              try {
                const seed = await resolveInRoot(view.path, spec.source);
                await execFileAsync('cp', ['-a', `${seed}/.`, staging]);
              } finally {
                await view.release();
              }
            }
            await chown(staging, spec.uid, spec.gid);
            await chmod(staging, spec.mode);
            try {
              await rename(staging, dir);
            } catch (err) {
              // Another build created it first: use theirs.
              await rm(staging, { recursive: true, force: true });
              if (errnoCode(err) !== 'ENOTEMPTY' && errnoCode(err) !== 'EEXIST') throw err;
            }
          }
          if (spec.sharing !== 'shared') lockedCaches.push(`${dir}.lock`);
          mounts.push({ type: 'bind', source: dir, destination: spec.target, readonly: spec.readonly });
          break;
        }
        case 'tmpfs':
          mounts.push({
            type: 'tmpfs',
            destination: spec.target,
            ...(spec.size !== undefined ? { options: [`size=${spec.size}`] } : {}),
          });
          break;
        case 'secret': {
          const source = context.secrets.get(spec.id);
          let value: Buffer | undefined;
          if (source?.file !== undefined) value = await readFile(source.file);
          else if (source?.env !== undefined && process.env[source.env] !== undefined)
            value = Buffer.from(process.env[source.env] as string);
          if (value === undefined) {
            if (spec.required)
              throw new StrataError(
                'INVALID_ARGUMENT',
                `secret ${spec.id} not found: pass it with --secret id=${spec.id},src=FILE`,
              );
            break;
          }
          if (spec.env !== undefined) env.push(`${spec.env}=${value.toString('utf8')}`);
          if (spec.target !== undefined) {
            if (secretDir === undefined) {
              // Outside the store: a secret's bytes must never land anywhere the store keeps.
              secretDir = await mkdtemp(join(tmpdir(), 'strata-secrets-'));
              const dir = secretDir;
              cleanups.push(() => rm(dir, { recursive: true, force: true }));
            }
            const file = join(secretDir, createHash('sha256').update(spec.id).digest('hex'));
            await writeFile(file, value, { mode: 0o600 });
            await chown(file, spec.uid, spec.gid);
            await chmod(file, spec.mode);
            mounts.push({ type: 'bind', source: file, destination: spec.target, readonly: true });
          }
          break;
        }
        case 'ssh': {
          if (context.sshAgent === undefined) {
            if (spec.required)
              throw new StrataError(
                'INVALID_ARGUMENT',
                `no SSH agent for ${spec.id}: pass --ssh ${spec.id}=SOCKET`,
              );
            break;
          }
          mounts.push({ type: 'bind', source: context.sshAgent, destination: spec.target, readonly: false });
          env.push(`SSH_AUTH_SOCK=${spec.target}`);
          break;
        }
      }
    }
  } catch (err) {
    await release();
    throw err;
  }
  return {
    mounts,
    env,
    release,
    locked: async <T>(work: () => Promise<T>): Promise<T> => {
      const run = lockedCaches.reduceRight<() => Promise<T>>(
        (inner, lock) => () => withFileLock(lock, inner),
        work,
      );
      return run();
    },
  };
}

export interface RunStepRequest {
  rootfs: string;
  args: string[];
  script?: { name: string; data: string };
  env: string[];
  user: string;
  workdir: string;
  network: 'host' | 'none';
  insecure: boolean;
  isolation: 'auto' | 'runc' | 'chroot';
  mounts: RuntimeMount[];
  onOutput: (stream: 1 | 2, data: Uint8Array) => void;
  /** The build's long-lived runc containers, when the step's rootfs is where they see it. */
  session?: RuncSession;
  /** Kills the step (the build was cancelled). */
  signal?: AbortSignal;
}

/** Runs the step; a non-zero exit is a StrataError with BuildKit's wording. */
export async function runStep(request: RunStepRequest): Promise<void> {
  const user = request.user === '' ? '0' : request.user;
  const owner = await resolveOwner(user, request.rootfs, { numericUserGroup: 'run' });
  const groups = /^\d+(:\d+)?$/.test(user)
    ? []
    : await supplementaryGroups(user.split(':')[0] as string, request.rootfs);
  const mounts = [...request.mounts];
  let args = request.args;
  let scriptDir: string | undefined;
  if (request.script) {
    // A `#!` heredoc runs as a file, like BuildKit's /dev/pipes; mounted read-only, never in the layer.
    scriptDir = await mkdtemp(join(tmpdir(), 'strata-heredoc-'));
    const file = join(scriptDir, request.script.name.replace(/[^A-Za-z0-9_.-]/g, '_') || 'script');
    await writeFile(file, request.script.data, { mode: 0o755 });
    mounts.push({ type: 'bind', source: scriptDir, destination: '/dev/pipes', readonly: true });
    args = [`/dev/pipes/${file.slice(scriptDir.length + 1)}`];
  }
  // The last lines of output go into the error: with -q or a log scrolled away, they are
  // what explains the failure (BuildKit prints them the same way).
  const tail = new OutputTail(10);
  try {
    const cancelled = () => new StrataError('CANCELLED', 'build cancelled');
    const result = await runProcess({
      rootfs: request.rootfs,
      args,
      env: request.env,
      cwd: request.workdir,
      uid: owner.uid,
      gid: owner.gid,
      additionalGids: groups,
      network: request.network,
      mounts,
      insecure: request.insecure,
      isolation: request.isolation,
      ...(request.session ? { session: request.session } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
      onOutput: (stream, data) => {
        tail.add(data);
        request.onOutput(stream, data);
      },
    }).catch((err: unknown) => {
      throw request.signal?.aborted ? cancelled() : err;
    });
    if (request.signal?.aborted) throw cancelled();
    if (result.exitCode !== 0) {
      const shown = request.script ? request.args.concat(`<<${request.script.name}`) : request.args;
      const lines = tail.lines();
      const output = lines.length === 0 ? '' : `\n${lines.map((line) => `  > ${line}`).join('\n')}`;
      throw new StrataError(
        'INVALID_ARGUMENT',
        `process "${shown.join(' ')}" did not complete successfully: exit code: ${result.exitCode}${output}`,
      );
    }
  } finally {
    if (scriptDir) await rm(scriptDir, { recursive: true, force: true });
  }
}

/** The last `limit` lines of a stream of output chunks. */
class OutputTail {
  private readonly kept: string[] = [];
  private partial = '';
  private readonly decoder = new TextDecoder();

  constructor(private readonly limit: number) {}

  add(data: Uint8Array): void {
    const text = this.partial + this.decoder.decode(data, { stream: true });
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.push(line);
  }

  lines(): string[] {
    if (this.partial !== '') {
      this.push(this.partial);
      this.partial = '';
    }
    return [...this.kept];
  }

  private push(line: string): void {
    this.kept.push(line.replace(/\r$/, ''));
    if (this.kept.length > this.limit) this.kept.shift();
  }
}
