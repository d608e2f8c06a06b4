/**
 * `strata registry serve` as users run it: the compiled CLI (bin/strata) spawned on 127.0.0.1,
 * ready once it prints its listening line, stopped with a signal and expected to exit 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, STRATA_BIN } from './cli.js';
import type { TestCa } from './registry.js';

/** One line of the server's access log (stdout), as src/registry/server/http.ts writes it. */
export interface AccessLogLine {
  time: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  durationMs: number;
  remote?: string;
  subject?: string;
  userAgent?: string;
}

export interface StrataRegistryOptions {
  /** Holds the storage (`<dir>/data`, given as the global `--root`) and the config file. */
  dir: string;
  /** config.yml text: written to `<dir>/config.yml` and passed with `--config`. */
  config?: string;
  /** More `registry serve` flags. */
  flags?: readonly string[];
  /** Serve HTTPS with this CA's server certificate (`--tls-cert`, `--tls-key`). */
  tls?: TestCa;
  /**
   * Default `127.0.0.1:0`: the kernel picks a free port, so there is no race with other test files
   * for it; the port is read from the listening line.
   */
  addr?: string;
  /** A storage root other than `<dir>/data` (two servers over one storage). */
  root?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunningStrataRegistry {
  /** `127.0.0.1:<port>`: the registry part of references. */
  host: string;
  /** `http://…` or `https://…`, as the listening line says. */
  url: string;
  /** The storage directory (`--root`), for `strata registry gc`. */
  root: string;
  /** The config file written, if any. */
  configFile?: string;
  child: ChildProcess;
  /** Every access-log line so far, parsed (a line that is not JSON fails the caller). */
  accessLog(): AccessLogLine[];
  /** Waits until the access log has a line `match` accepts (lines are written after responses). */
  waitForAccessLog(match: (line: AccessLogLine) => boolean, timeoutMs?: number): Promise<AccessLogLine>;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM), waits, and throws unless the server exited 0. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const LISTENING = /^strata registry listening on (https?):\/\/([^\s/]+) \(/m;

export async function startStrataRegistry(options: StrataRegistryOptions): Promise<RunningStrataRegistry> {
  await mkdir(options.dir, { recursive: true });
  const root = options.root ?? join(options.dir, 'data');
  const args = ['--root', root, 'registry', 'serve', '--addr', options.addr ?? '127.0.0.1:0'];
  let configFile: string | undefined;
  if (options.config !== undefined) {
    configFile = join(options.dir, 'config.yml');
    await writeFile(configFile, options.config);
    args.push('--config', configFile);
  }
  if (options.tls !== undefined)
    args.push('--tls-cert', options.tls.serverCert, '--tls-key', options.tls.serverKey);
  args.push(...(options.flags ?? []));

  // REGISTRY_* variables configure the server (as distribution's do): none may leak in from the
  // environment the tests run in.
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('REGISTRY_'))),
    ...options.env,
  };
  const child = spawn(STRATA_BIN, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // A test process that dies without stopping its server must not leave it running.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      process.off('exit', killOnExit);
      resolve({ code, signal });
    }),
  );

  const listening = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`strata registry serve did not start within 20 s:\n${stderr}`));
    }, 20_000);
    const check = (): void => {
      const match = LISTENING.exec(stderr);
      if (match === null) return;
      clearTimeout(timer);
      child.stderr.off('data', check);
      resolve(match);
    };
    child.stderr.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`strata registry serve exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  });
  const [, scheme = 'http', host = ''] = listening;

  const accessLog = (): AccessLogLine[] =>
    stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AccessLogLine);

  return {
    host,
    url: `${scheme}://${host}`,
    root,
    ...(configFile !== undefined ? { configFile } : {}),
    child,
    accessLog,
    async waitForAccessLog(match, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = accessLog().find(match);
        if (found !== undefined) return found;
        if (Date.now() > deadline) throw new Error(`no such access-log line in:\n${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const { code, signal: killedBy } = await exited;
      if (code !== 0) {
        throw new Error(`strata registry serve exited ${code ?? killedBy} on ${signal}:\n${stderr}`);
      }
    },
  };
}
