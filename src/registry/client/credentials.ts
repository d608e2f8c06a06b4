import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { StrataError, errnoCode } from '../../errors.js';
import { writeFileAtomic } from '../../store/atomic.js';
import { DEFAULT_REGISTRY } from '../../oci/reference.js';
import { DOCKER_HUB_AUTH_KEY } from './hosts.js';
import { oneLine } from './errors.js';

/**
 * Credentials as Docker keeps them: `$DOCKER_CONFIG/config.json` (default `~/.docker`), with
 * base64 `user:password` in `auths`, or a `docker-credential-<name>` helper chosen per registry
 * by `credHelpers` or for all by `credsStore`. strata reads and writes the same file, so a
 * `docker login` works for strata and the other way round.
 */
export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token (Docker's `identitytoken`), used instead of the password at the realm. */
  identityToken?: string;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [other: string]: unknown;
}

export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.DOCKER_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return join(env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir(), '.docker');
}

/** The `auths` key of a registry: Docker Hub keeps its legacy URL, others their `host[:port]`. */
export function authKey(registry: string): string {
  return registry === DEFAULT_REGISTRY ? DOCKER_HUB_AUTH_KEY : registry;
}

/** Docker's `ConvertToHostname`: `https://host:5000/v2/` names `host:5000`. */
function keyHost(key: string): string {
  const withoutScheme = key.replace(/^https?:\/\//i, '');
  const host = withoutScheme.split('/', 1)[0] ?? '';
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DEFAULT_REGISTRY : host;
}

export class CredentialStore {
  readonly configPath: string;

  constructor(readonly configDir: string = dockerConfigDir()) {
    this.configPath = join(configDir, 'config.json');
  }

  private async read(): Promise<DockerConfigFile> {
    let text: string;
    try {
      text = await readFile(this.configPath, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return {};
      throw new StrataError('INVALID_ARGUMENT', `cannot read ${this.configPath}: ${String(err)}`);
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      return parsed as DockerConfigFile;
    } catch (err) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `${this.configPath} is not valid JSON (${err instanceof Error ? err.message : String(err)})`,
      );
    }
  }

  private helperFor(config: DockerConfigFile, registry: string): string | undefined {
    const helpers = config.credHelpers ?? {};
    for (const [key, helper] of Object.entries(helpers)) {
      if (keyHost(key) === registry && helper !== '') return helper;
    }
    return config.credsStore !== undefined && config.credsStore !== '' ? config.credsStore : undefined;
  }

  /** The credentials for a registry, or undefined to go anonymous. */
  async get(registry: string): Promise<Credentials | undefined> {
    const config = await this.read();
    const helper = this.helperFor(config, registry);
    if (helper !== undefined) return helperGet(helper, authKey(registry));
    for (const [key, entry] of Object.entries(config.auths ?? {})) {
      if (keyHost(key) !== registry) continue;
      if (entry.auth !== undefined && entry.auth !== '') {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) {
          throw new StrataError(
            'INVALID_ARGUMENT',
            `${this.configPath}: the auth entry for ${key} is not base64 user:password`,
          );
        }
        return withIdentity(
          { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) },
          entry.identitytoken,
        );
      }
      if (entry.username !== undefined && entry.password !== undefined) {
        return withIdentity({ username: entry.username, password: entry.password }, entry.identitytoken);
      }
      if (entry.identitytoken !== undefined)
        return { username: '', password: '', identityToken: entry.identitytoken };
    }
    return undefined;
  }

  /** Saves credentials where Docker would: the configured helper, else base64 in `auths`. */
  async store(registry: string, credentials: Credentials): Promise<void> {
    const config = await this.read();
    const helper = this.helperFor(config, registry);
    if (helper !== undefined) {
      await helperStore(helper, authKey(registry), credentials);
      return;
    }
    const auths = { ...(config.auths ?? {}) };
    for (const key of Object.keys(auths)) if (keyHost(key) === registry) delete auths[key];
    auths[authKey(registry)] = {
      auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64'),
    };
    await this.write({ ...config, auths });
  }

  /** Forgets a registry's credentials; false when none were stored. */
  async erase(registry: string): Promise<boolean> {
    const config = await this.read();
    const helper = this.helperFor(config, registry);
    let erased = false;
    if (helper !== undefined) erased = await helperErase(helper, authKey(registry));
    const auths = { ...(config.auths ?? {}) };
    for (const key of Object.keys(auths)) {
      if (keyHost(key) !== registry) continue;
      delete auths[key];
      erased = true;
    }
    if (Object.keys(auths).length !== Object.keys(config.auths ?? {}).length)
      await this.write({ ...config, auths });
    return erased;
  }

  private async write(config: DockerConfigFile): Promise<void> {
    await mkdir(this.configDir, { recursive: true, mode: 0o700 });
    // Passwords live here: readable by the owner only, and never half-written.
    await writeFileAtomic(this.configPath, `${JSON.stringify(config, null, '\t')}\n`, { mode: 0o600 });
  }
}

function withIdentity(credentials: Credentials, identityToken: string | undefined): Credentials {
  return identityToken !== undefined && identityToken !== ''
    ? { ...credentials, identityToken }
    : credentials;
}

const NOT_FOUND_MESSAGE = 'credentials not found in native keychain';

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; the protocol is text in, JSON out. */
function runHelper(
  helper: string,
  action: 'get' | 'store' | 'erase',
  input: string,
): Promise<{ code: number; stdout: string }> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => out.push(chunk));
    child.on('error', (err) => {
      reject(
        new StrataError(
          'INVALID_ARGUMENT',
          errnoCode(err) === 'ENOENT'
            ? `credential helper ${program} is not installed (named by credsStore/credHelpers in the Docker config)`
            : `credential helper ${program} failed to start: ${err.message}`,
        ),
      );
    });
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8') }));
    child.stdin.end(input);
  });
}

async function helperGet(helper: string, serverUrl: string): Promise<Credentials | undefined> {
  const { code, stdout } = await runHelper(helper, 'get', serverUrl);
  if (code !== 0) {
    if (stdout.includes(NOT_FOUND_MESSAGE)) return undefined;
    throw new StrataError(
      'INVALID_ARGUMENT',
      `credential helper docker-credential-${helper} get failed: ${oneLine(stdout)}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `credential helper docker-credential-${helper} printed invalid JSON`,
    );
  }
  const record = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const username = typeof record.Username === 'string' ? record.Username : '';
  const secret = typeof record.Secret === 'string' ? record.Secret : '';
  if (secret === '') return undefined;
  // Helpers mark an OAuth refresh token with this username, as Docker does.
  if (username === '<token>') return { username: '', password: '', identityToken: secret };
  return { username, password: secret };
}

async function helperStore(helper: string, serverUrl: string, credentials: Credentials): Promise<void> {
  const payload = JSON.stringify({
    ServerURL: serverUrl,
    Username: credentials.username,
    Secret: credentials.password,
  });
  const { code, stdout } = await runHelper(helper, 'store', payload);
  if (code !== 0) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `credential helper docker-credential-${helper} store failed: ${oneLine(stdout)}`,
    );
  }
}

async function helperErase(helper: string, serverUrl: string): Promise<boolean> {
  const { code, stdout } = await runHelper(helper, 'erase', serverUrl);
  if (code === 0) return true;
  if (stdout.includes(NOT_FOUND_MESSAGE)) return false;
  throw new StrataError(
    'INVALID_ARGUMENT',
    `credential helper docker-credential-${helper} erase failed: ${oneLine(stdout)}`,
  );
}
