/**
 * Runs short host commands (mount, umount, getfattr, setfattr, touch) through one long-lived bash
 * per process. Spawning a child from Node costs 15–20 ms here (a large process forks, libuv sets
 * up pipes); a build step ran four or five such commands, which was most of a small RUN step's
 * own time. bash forks and execs them in a couple of milliseconds.
 *
 * Protocol: the helper makes a private temporary directory and prints it first; each command is
 * one line of shell-quoted words, run with stdin from `in`, stdout and stderr into `out` and
 * `err` of that directory (binary-safe, any size), and answered with its exit status on one
 * line. Commands run one at a time, in order. The helper removes its directory when its stdin
 * closes (when this process exits). While idle it never keeps the process alive.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export interface ShellResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

interface Pending {
  line: string;
  input: Buffer | undefined;
  resolve: (result: ShellResult) => void;
  reject: (err: Error) => void;
}

const SCRIPT = [
  'd=$(mktemp -d) || exit 1',
  'trap \'rm -rf "$d"\' EXIT',
  'printf "%s\\n" "$d"',
  'while IFS= read -r line; do',
  '  eval "$line" <"$d/in" >"$d/out" 2>"$d/err"',
  '  printf "%d\\n" "$?"',
  'done',
].join('\n');

/** A bash ANSI-C quoted word: any bytes but NUL, newlines included, stay on one line. */
function quote(word: string): string {
  const escaped = word
    .replace(/\\/g, '\\\\')
    .replace(/'/g, "\\'")
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r');
  return `$'${escaped}'`;
}

class ShellRunner {
  private child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private dir: string | undefined;
  private readonly queue: Pending[] = [];
  private running: Pending | undefined;
  private buffer = '';

  private start(): void {
    // LC_ALL=C: getfattr quotes file names by locale; C keeps its output stable.
    const child = spawn('bash', ['-c', SCRIPT], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        if (this.dir === undefined) this.dir = line;
        else this.finish(Number(line));
        this.next();
      }
    });
    child.on('exit', () => this.fail(new Error('the command helper (bash) exited')));
    child.on('error', (err) => this.fail(err));
    child.stdin.on('error', () => undefined); // reported through exit
    this.child = child;
    this.setActive(true);
  }

  private fail(err: Error): void {
    this.child = undefined;
    this.dir = undefined;
    this.buffer = '';
    const failed = [...(this.running ? [this.running] : []), ...this.queue.splice(0)];
    this.running = undefined;
    for (const pending of failed) pending.reject(err);
  }

  private finish(code: number): void {
    const done = this.running;
    const dir = this.dir;
    this.running = undefined;
    if (done === undefined || dir === undefined) return;
    try {
      done.resolve({
        code,
        stdout: readFileSync(join(dir, 'out')),
        stderr: readFileSync(join(dir, 'err'), 'utf8'),
      });
    } catch (err) {
      done.reject(err as Error);
    }
  }

  private next(): void {
    const child = this.child;
    if (this.running !== undefined || child === undefined || this.dir === undefined) return;
    const pending = this.queue.shift();
    if (pending === undefined) {
      this.setActive(false);
      return;
    }
    this.running = pending;
    try {
      writeFileSync(join(this.dir, 'in'), pending.input ?? '');
    } catch (err) {
      this.running = undefined;
      pending.reject(err as Error);
      this.next();
      return;
    }
    child.stdin.write(`${pending.line}\n`);
  }

  /** Held while commands are queued; when idle the helper never keeps the process alive. */
  private setActive(active: boolean): void {
    if (this.child) keepProcessAlive(this.child, active);
  }

  run(command: string, args: readonly string[], input?: Buffer): Promise<ShellResult> {
    const line = [command, ...args].map(quote).join(' ');
    return new Promise((resolve, reject) => {
      this.queue.push({ line, input, resolve, reject });
      if (this.child === undefined) this.start();
      else this.setActive(true);
      this.next();
    });
  }
}

/**
 * Whether a helper child (and its pipes) keeps this process alive: yes while work is
 * outstanding, no when idle, so a long-lived helper never stops Node from exiting.
 */
export function keepProcessAlive(child: ChildProcess, active: boolean): void {
  for (const handle of [child, child.stdout, child.stdin] as unknown as Array<{
    ref?: () => void;
    unref?: () => void;
  }>) {
    if (active) handle.ref?.();
    else handle.unref?.();
  }
}

const runner = new ShellRunner();

/** Runs `command args…` (found on PATH) through the helper; never rejects for an exit status. */
export function runHostCommand(
  command: string,
  args: readonly string[],
  input?: Buffer,
): Promise<ShellResult> {
  return runner.run(command, args, input);
}

/** Like runHostCommand, but a non-zero exit rejects with the command's first line of errors. */
export async function runHostCommandOk(command: string, args: readonly string[]): Promise<Buffer> {
  const result = await runHostCommand(command, args);
  if (result.code !== 0) {
    const message = result.stderr.trim().replace(/\s*\n\s*/g, ' ') || `${command} exited ${result.code}`;
    throw new Error(message);
  }
  return result.stdout;
}
