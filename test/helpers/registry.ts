/**
 * Real registries for interop tests: Debian's CNCF distribution 2.8 (`docker-registry`) on
 * 127.0.0.1, without auth, with htpasswd (bcrypt) Basic auth, with bearer tokens from a small
 * token server written here, and with TLS from a throwaway CA.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, sign, X509Certificate } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { mustRun, strata, type RunResult } from './cli.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface TestCa {
  /** CA certificate (PEM file) that signed the server certificate. */
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A P-256 key and a self-signed certificate for it, valid two days, made with openssl. */
async function selfSignedCertificate(key: string, cert: string, subject: string): Promise<void> {
  await mustRun('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    subject,
  ]);
}

/** A CA and a server certificate for 127.0.0.1 and localhost, made with openssl. */
export async function makeTestCa(dir: string): Promise<TestCa> {
  await mkdir(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  const serverKey = join(dir, 'server.key');
  const serverCsr = join(dir, 'server.csr');
  const serverCert = join(dir, 'server.crt');
  const ext = join(dir, 'server.ext');
  await selfSignedCertificate(caKey, caCert, '/CN=strata test CA');
  await mustRun('openssl', [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    serverKey,
    '-out',
    serverCsr,
    '-subj',
    '/CN=127.0.0.1',
  ]);
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await mustRun('openssl', [
    'x509',
    '-req',
    '-in',
    serverCsr,
    '-CA',
    caCert,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    serverCert,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return { caCert, serverCert, serverKey };
}

/** An htpasswd line with a bcrypt hash, as `htpasswd -B` writes it. */
export function htpasswdLine(user: string, password: string): string {
  return `${user}:${bcrypt.hashSync(password, 8)}\n`;
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate bundle the registry trusts token signatures with. */
  rootCertBundle: string;
  /** Every token request, for tests that count round trips. */
  requests: { scopes: string[]; user: string | undefined; method: string }[];
  close(): Promise<void>;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A token server as distribution's `auth.token` expects: ES256 JWTs with the signing certificate
 * in `x5c`, granting `users` everything they ask for and anonymous clients only pull (when
 * `anonymousPull`). Bad credentials get 401. Scopes come as repeated parameters or space-joined.
 */
export async function startTokenServer(
  dir: string,
  options: { users: Record<string, string>; anonymousPull?: boolean; expiresIn?: number },
): Promise<TokenServer> {
  await mkdir(dir, { recursive: true });
  const key = join(dir, 'token.key');
  const cert = join(dir, 'token.crt');
  await selfSignedCertificate(key, cert, '/CN=strata test token issuer');
  const keyPem = await readFile(key, 'utf8');
  const der = new X509Certificate(await readFile(cert)).raw;
  const service = 'strata-test-registry';
  const issuer = 'strata-test-issuer';
  const requests: TokenServer['requests'] = [];

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scopes = url.searchParams
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .filter((s) => s !== '');
    let user: string | undefined;
    const authorization = req.headers.authorization;
    if (authorization?.startsWith('Basic ')) {
      const [name, ...rest] = Buffer.from(authorization.slice(6), 'base64').toString('utf8').split(':');
      if (name === undefined || options.users[name] !== rest.join(':')) {
        requests.push({ scopes, user: name, method: req.method ?? 'GET' });
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      user = name;
    }
    requests.push({ scopes, user, method: req.method ?? 'GET' });
    const access = scopes.flatMap((scope) => {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first < 0 || last === first) return [];
      const actions = scope
        .slice(last + 1)
        .split(',')
        .filter((action) => user !== undefined || (options.anonymousPull === true && action === 'pull'));
      return [{ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresIn ?? 300;
    const header = { typ: 'JWT', alg: 'ES256', x5c: [der.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key: keyPem, dsaEncoding: 'ieee-p1363' });
    const token = `${signingInput}.${base64url(signature)}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: expiresIn,
        issued_at: new Date(now * 1000).toISOString(),
      }),
    );
  };
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertBundle: cert,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'htpasswd'; users: Record<string, string> }
  | { kind: 'token'; server: TokenServer };

export interface RunningRegistry {
  /** `127.0.0.1:<port>`: the registry part of references. */
  host: string;
  /** `http://…` or `https://…`. */
  url: string;
  dir: string;
  logFile: string;
  stop(): Promise<void>;
}

/** Starts `docker-registry serve` on a free loopback port and waits until it answers. */
export async function startRegistry(
  dir: string,
  options: { auth?: RegistryAuth; tls?: TestCa } = {},
): Promise<RunningRegistry> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
  if (options.tls !== undefined) {
    lines.push('  tls:', `    certificate: ${options.tls.serverCert}`, `    key: ${options.tls.serverKey}`);
  }
  const auth = options.auth ?? { kind: 'none' };
  if (auth.kind === 'htpasswd') {
    const file = join(dir, 'htpasswd');
    await writeFile(
      file,
      Object.entries(auth.users)
        .map(([user, password]) => htpasswdLine(user, password))
        .join(''),
    );
    lines.push('auth:', '  htpasswd:', '    realm: strata-test', `    path: ${file}`);
  } else if (auth.kind === 'token') {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${auth.server.realm}`,
      `    service: ${auth.server.service}`,
      `    issuer: ${auth.server.issuer}`,
      `    rootcertbundle: ${auth.server.rootCertBundle}`,
    );
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);
  const logFile = join(dir, 'registry.log');
  const log = createWriteStream(logFile);
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const url = `${options.tls !== undefined ? 'https' : 'http'}://${host}`;
  // A test process that dies without stopping its registry must not leave it running.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', killOnExit);
      resolve();
    }),
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    log.end();
  };
  const ca = options.tls !== undefined ? await readFile(options.tls.caCert) : undefined;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null)
      throw new Error(`docker-registry exited ${child.exitCode}: ${await readFile(logFile, 'utf8')}`);
    if (await answers(`${url}/v2/`, ca)) break;
    if (tries > 100) {
      await stop();
      throw new Error(`docker-registry did not start: ${await readFile(logFile, 'utf8')}`);
    }
    await sleep(100);
  }
  return { host, url, dir, logFile, stop };
}

function answers(url: string, ca: Buffer | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const requester = url.startsWith('https') ? httpsRequest : httpRequest;
    const req = requester(url, { method: 'GET', ...(ca !== undefined ? { ca } : {}) }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** A directory laid out as Docker's certs.d, trusting `ca` for `host`. */
export async function certsDirFor(dir: string, host: string, ca: TestCa): Promise<string> {
  const certs = join(dir, 'certs.d');
  await mkdir(join(certs, host), { recursive: true });
  await writeFile(join(certs, host, 'ca.crt'), await readFile(ca.caCert));
  return certs;
}

/** sha256 of a file, hex, for comparing what tools wrote. */
export async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Runs the strata CLI (bin/strata, the compiled CLI, as users run it). */
export function strataRegistry(
  root: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return strata(root, args, options);
}

export async function strataRegistryOk(
  root: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const result = await strataRegistry(root, args, options);
  if (result.code !== 0)
    throw new Error(`strata ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result;
}
