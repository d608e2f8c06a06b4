import { readdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { Agent, type Dispatcher } from 'undici';
import { DEFAULT_REGISTRY } from '../../oci/reference.js';
import { StrataError, errnoCode } from '../../errors.js';
import { trustedCertificates } from '../../trust.js';

/** Where Docker Hub's API really lives: `docker.io` is only the name in references. */
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';
/** The key Docker Hub credentials have in `~/.docker/config.json`, for historical reasons. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';
export const DEFAULT_CERTS_DIR = '/etc/docker/certs.d';

export interface Timeouts {
  /** Establishing a connection (TCP + TLS). */
  connectMs: number;
  /** From sending a request to receiving the response headers. */
  headersMs: number;
  /** Longest silence while a body streams: a stalled transfer fails instead of hanging. */
  bodyMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 30_000, headersMs: 120_000, bodyMs: 120_000 };

export interface HostOptions {
  /** Hosts (`host[:port]`) where TLS is optional: HTTPS without verification, then plain HTTP. */
  insecureRegistries?: readonly string[];
  /** Docker's per-host TLS directory (`<dir>/<host[:port]>/{*.crt, *.cert, *.key}`). */
  certsDirectory?: string;
  timeouts?: Partial<Timeouts>;
}

/** How to reach one registry: the base URLs to try, in order, each with its own connection pool. */
export interface RegistryEndpoint {
  /** The registry as references name it (`docker.io`, `localhost:5000`). */
  registry: string;
  /** `https://host[:port]` or `http://…`; insecure registries list HTTPS first, HTTP second. */
  candidates: { baseUrl: string; dispatcher: Dispatcher }[];
  timeouts: Timeouts;
}

/** The host part a reference's registry names, with Docker Hub's API host substituted. */
export function apiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? DOCKER_HUB_ENDPOINT : registry;
}

function hostname(hostAndPort: string): string {
  if (hostAndPort.startsWith('[')) return hostAndPort.slice(1, hostAndPort.indexOf(']'));
  const colon = hostAndPort.lastIndexOf(':');
  return colon < 0 ? hostAndPort : hostAndPort.slice(0, colon);
}

/**
 * Docker's rule: loopback registries need no TLS (a registry started for a test or a local
 * mirror), nor do the ones the user names as insecure.
 */
export function isInsecureHost(registry: string, insecureRegistries: readonly string[] = []): boolean {
  const name = hostname(registry).toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4 && name.startsWith('127.')) return true;
  if (name === '::1') return true;
  return insecureRegistries.some((entry) => {
    const host = entry.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
    return host === registry || host === name;
  });
}

interface HostTls {
  ca: string[];
  cert?: string;
  key?: string;
}

/** Reads `<certsDirectory>/<registry>/`: extra CAs (`*.crt`), a client certificate (`*.cert` + `*.key`). */
async function readHostTls(certsDirectory: string, registry: string): Promise<HostTls | undefined> {
  // Docker Hub's and IPv6 hosts' directories are named as the user types the registry.
  const dir = join(certsDirectory, registry.replace(/[/\\]/g, '_'));
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new StrataError('INVALID_ARGUMENT', `cannot read TLS settings in ${dir}: ${String(err)}`);
  }
  const tls: HostTls = { ca: [] };
  for (const name of names) {
    const path = join(dir, name);
    if (name.endsWith('.crt')) tls.ca.push(await readFile(path, 'utf8'));
    else if (name.endsWith('.cert')) {
      const keyPath = join(dir, `${name.slice(0, -'.cert'.length)}.key`);
      tls.cert = await readFile(path, 'utf8');
      tls.key = await readFile(keyPath, 'utf8').catch(() => {
        throw new StrataError('INVALID_ARGUMENT', `client certificate ${path} has no key file ${keyPath}`);
      });
    }
  }
  return tls.ca.length > 0 || tls.cert !== undefined ? tls : undefined;
}

function agent(
  timeouts: Timeouts,
  tls: { ca?: string[]; cert?: string; key?: string; verify: boolean },
): Agent {
  return new Agent({
    connect: {
      timeout: timeouts.connectMs,
      // certs.d CAs add to the system's (and NODE_EXTRA_CA_CERTS's), as with Docker, rather
      // than replacing them. Without verification no CA is consulted, so none is loaded: parsing
      // the system bundle took ~0.1 s of every command against a loopback registry.
      ...(tls.verify ? withCa(trustedCertificates(tls.ca ?? [])) : {}),
      ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
      rejectUnauthorized: tls.verify,
    },
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyMs,
    connections: 16,
  });
}

/** The endpoint for a registry named in a reference (`docker.io`, `ghcr.io`, `localhost:5000`). */
export async function resolveEndpoint(
  registry: string,
  options: HostOptions = {},
): Promise<RegistryEndpoint> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const host = apiHost(registry);
  const certsDirectory = options.certsDirectory ?? process.env.STRATA_CERTS_DIR ?? DEFAULT_CERTS_DIR;
  const tls = await readHostTls(certsDirectory, registry);
  if (tls !== undefined) {
    // TLS material was configured for this host: the user wants verified HTTPS, even on loopback.
    return {
      registry,
      candidates: [{ baseUrl: `https://${host}`, dispatcher: agent(timeouts, { ...tls, verify: true }) }],
      timeouts,
    };
  }
  if (isInsecureHost(registry, options.insecureRegistries)) {
    return {
      registry,
      candidates: [
        { baseUrl: `https://${host}`, dispatcher: agent(timeouts, { verify: false }) },
        { baseUrl: `http://${host}`, dispatcher: agent(timeouts, { verify: false }) },
      ],
      timeouts,
    };
  }
  return {
    registry,
    candidates: [{ baseUrl: `https://${host}`, dispatcher: agent(timeouts, { verify: true }) }],
    timeouts,
  };
}

/** undici's `connect.ca` option when a CA list is needed (see src/trust.ts). */
export function withCa(ca: string[] | undefined): { ca?: string[] } {
  return ca === undefined ? {} : { ca };
}
