/**
 * The system calls a build step needs and Node lacks — mount, umount, utimensat with nanosecond
 * times, lgetxattr — made by one long-lived `strata-exec --host` (native/strata-exec.c) when it
 * is built, else by the host's commands through the shell runner (mount(8), umount(8), touch(1),
 * getfattr(1)): the same effect, a process each. A RUN step made five such calls, each an exec
 * of mount(8) or touch(1) costing a few milliseconds; here each is a message.
 *
 * Protocol: see native/strata-exec.c (host mode). Calls are answered in order, one at a time.
 * While idle the helper never keeps the process alive.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';

import { keepProcessAlive, runHostCommand, runHostCommandOk } from './shell-runner.js';

/** mount(2) flags (linux/mount.h). */
export const MountFlag = {
  readonly: 1,
  nosuid: 2,
  nodev: 4,
  noexec: 8,
  remount: 32,
  bind: 4096,
  recursive: 16384,
  private: 1 << 18,
  slave: 1 << 19,
  shared: 1 << 20,
} as const;

/** umount2(2)'s lazy detach. */
const MNT_DETACH = 2;

const HEADER_BYTES = 5;

let executorFound: Promise<string | undefined> | undefined;

/**
 * The compiled strata-exec (`npm run build` makes it when a C compiler is present): beside the
 * compiled modules (dist/native), or in dist/ when running from the sources.
 */
export function findExecutor(): Promise<string | undefined> {
  executorFound ??= (async () => {
    for (const candidate of ['../native/strata-exec', '../../dist/native/strata-exec']) {
      const path = new URL(candidate, import.meta.url).pathname;
      try {
        await access(path, constants.X_OK);
        return path;
      } catch {
        // Not built there.
      }
    }
    return undefined;
  })();
  return executorFound;
}

/** Tests run both ways: with strata-exec, and with the host's commands (`undefined`). */
export function useExecutorForTests(path: string | undefined): void {
  executorFound = Promise.resolve(path);
}

/** One message of strata-exec's protocols: a type letter and its payload. */
export interface Frame {
  type: string;
  payload: Buffer;
}

/** A type byte, the payload's length (little-endian u32), the payload. */
export function encodeFrame(type: string, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(type, 0, 'latin1');
  header.writeUInt32LE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

/** strata-exec's fields: each NUL-terminated (none may hold a NUL). */
export function nulSeparated(fields: readonly string[]): Buffer {
  return Buffer.from(`${fields.join('\0')}\0`, 'utf8');
}

/** Cuts a byte stream into frames, whatever the chunks' boundaries. */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const frames: Frame[] = [];
    while (this.buffered.length >= HEADER_BYTES) {
      const length = this.buffered.readUInt32LE(1);
      if (this.buffered.length < HEADER_BYTES + length) break;
      frames.push({
        type: String.fromCharCode(this.buffered[0] as number),
        payload: this.buffered.subarray(HEADER_BYTES, HEADER_BYTES + length),
      });
      this.buffered = this.buffered.subarray(HEADER_BYTES + length);
    }
    return frames;
  }
}

type Reply = Frame;

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
}

class HostCalls {
  private child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private readonly pending: Pending[] = [];
  private decoder = new FrameDecoder();

  private start(executor: string): ChildProcessByStdio<Writable, Readable, null> {
    const child = spawn(executor, ['--host'], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.stdout.on('data', (chunk: Buffer) => this.receive(chunk));
    child.on('exit', () => this.fail(new Error('the host helper (strata-exec --host) exited')));
    child.on('error', (err) => this.fail(err));
    child.stdin.on('error', () => undefined); // reported through exit
    this.child = child;
    return child;
  }

  private receive(chunk: Buffer): void {
    for (const reply of this.decoder.push(chunk)) this.pending.shift()?.resolve(reply);
    if (this.pending.length === 0) this.setActive(false);
  }

  private fail(err: Error): void {
    this.child = undefined;
    this.decoder = new FrameDecoder();
    for (const waiting of this.pending.splice(0)) waiting.reject(err);
  }

  /** Held while calls are outstanding; when idle the helper never keeps the process alive. */
  private setActive(active: boolean): void {
    if (this.child) keepProcessAlive(this.child, active);
  }

  call(executor: string, fields: readonly string[]): Promise<Reply> {
    const child = this.child ?? this.start(executor);
    this.setActive(true);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      child.stdin.write(encodeFrame('C', nulSeparated(fields)));
    });
  }
}

const helper = new HostCalls();

/** An errno failure of a host call, with the system's message. */
export class HostCallError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

async function call(executor: string, fields: string[]): Promise<Reply> {
  if (fields.some((field) => field.includes('\0'))) throw new Error('a path contains a NUL byte');
  const reply = await helper.call(executor, fields);
  if (reply.type === 'e') {
    const text = reply.payload.toString('utf8');
    const space = text.indexOf(' ');
    throw new HostCallError(Number(text.slice(0, space)), text.slice(space + 1));
  }
  return reply;
}

/** mount(2) an overlay (or any file system given by type) on `target`. */
export async function mountFileSystem(type: string, target: string, data: string, flags = 0): Promise<void> {
  const executor = await findExecutor();
  if (executor !== undefined) {
    await call(executor, ['mount', type, target, type, String(flags), data]);
    return;
  }
  const options = [data, ...flagWords(flags)].filter(Boolean).join(',');
  await runHostCommandOk('mount', ['-t', type, type, ...(options ? ['-o', options] : []), target]);
}

/** A bind mount (recursive unless asked not to), read-only in a second call when asked. */
export async function bindMount(
  source: string,
  target: string,
  options: { readonly?: boolean; recursive?: boolean } = {},
): Promise<void> {
  const recursive = options.recursive ?? true;
  const executor = await findExecutor();
  if (executor !== undefined) {
    const flags = MountFlag.bind | (recursive ? MountFlag.recursive : 0);
    await call(executor, ['mount', source, target, '', String(flags), '']);
    if (options.readonly)
      await call(executor, [
        'mount',
        '',
        target,
        '',
        String(flags | MountFlag.remount | MountFlag.readonly),
        '',
      ]);
    return;
  }
  await runHostCommandOk('mount', [recursive ? '--rbind' : '--bind', source, target]);
  if (options.readonly) await runHostCommandOk('mount', ['-o', 'remount,bind,ro', target]);
}

/** Changes a mount's propagation (shared, slave, private). */
export async function setPropagation(
  target: string,
  propagation: 'shared' | 'slave' | 'private',
): Promise<void> {
  const executor = await findExecutor();
  if (executor !== undefined) {
    await call(executor, ['mount', '', target, '', String(MountFlag[propagation]), '']);
    return;
  }
  await runHostCommandOk('mount', [`--make-${propagation}`, target]);
}

/** umount2(2); `lazy` detaches now and frees when no longer busy. */
export async function unmountFileSystem(target: string, options: { lazy?: boolean } = {}): Promise<void> {
  const executor = await findExecutor();
  if (executor !== undefined) {
    await call(executor, ['umount', target, String(options.lazy ? MNT_DETACH : 0)]);
    return;
  }
  await runHostCommandOk('umount', [...(options.lazy ? ['-l'] : []), target]);
}

/** Sets a path's atime and mtime to the nanosecond, on a symlink itself (Node's utimes rounds). */
export async function setTimesNs(path: string, atimeNs: bigint, mtimeNs: bigint): Promise<void> {
  const executor = await findExecutor();
  const seconds = (ns: bigint) => String(ns / 1_000_000_000n);
  const nanos = (ns: bigint) => String(ns % 1_000_000_000n);
  if (executor !== undefined) {
    await call(executor, [
      'utimens',
      path,
      seconds(atimeNs),
      nanos(atimeNs),
      seconds(mtimeNs),
      nanos(mtimeNs),
    ]);
    return;
  }
  const stamp = (ns: bigint) => `@${seconds(ns)}.${nanos(ns).padStart(9, '0')}`;
  await runHostCommandOk('touch', ['--no-dereference', '-a', '-d', stamp(atimeNs), path]);
  await runHostCommandOk('touch', ['--no-dereference', '-m', '-d', stamp(mtimeNs), path]);
}

/** An extended attribute of the path itself (not a link's target); undefined when it has none. */
export async function getXattr(path: string, name: string): Promise<Buffer | undefined> {
  const executor = await findExecutor();
  if (executor !== undefined) {
    const reply = await call(executor, ['getxattr', path, name]);
    return reply.type === 'v' ? reply.payload : undefined;
  }
  const result = await runHostCommand('getfattr', ['--no-dereference', '--only-values', '-n', name, path]);
  return result.code === 0 ? result.stdout : undefined;
}

function flagWords(flags: number): string[] {
  const words: string[] = [];
  if (flags & MountFlag.readonly) words.push('ro');
  if (flags & MountFlag.nosuid) words.push('nosuid');
  if (flags & MountFlag.nodev) words.push('nodev');
  if (flags & MountFlag.noexec) words.push('noexec');
  return words;
}
