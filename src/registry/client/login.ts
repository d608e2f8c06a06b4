import { DEFAULT_REGISTRY, parseReference } from '../../oci/reference.js';
import { StrataError } from '../../errors.js';
import { CredentialStore, type Credentials } from './credentials.js';
import { RegistryClient, type ClientOptions } from './transport.js';

export interface LoginOptions extends Omit<ClientOptions, 'credentials'> {
  username: string;
  password: string;
}

/**
 * The registry a `login`/`logout` argument names: a host (`localhost:5000`), a URL
 * (`https://ghcr.io/v2/`), or nothing for Docker Hub.
 */
export function registryFromServer(server: string | undefined): string {
  if (server === undefined || server === '') return DEFAULT_REGISTRY;
  const host = server.replace(/^https?:\/\//i, '').split('/', 1)[0] ?? '';
  if (host === 'index.docker.io' || host === 'registry-1.docker.io' || host === DEFAULT_REGISTRY)
    return DEFAULT_REGISTRY;
  // Validates the host with the reference grammar, so `login` and `pull` agree on names.
  const parsed = parseReference(`${host}/probe`);
  if (parsed.registry !== host)
    throw new StrataError('INVALID_ARGUMENT', `invalid registry address ${JSON.stringify(server)}`);
  return host;
}

/**
 * `docker login`: checks the credentials against the registry (its Basic auth, or its token
 * server), and only then stores them (credential helper or `config.json`). Returns the registry.
 */
export async function login(server: string | undefined, options: LoginOptions): Promise<string> {
  const registry = registryFromServer(server);
  if (options.username === '') throw new StrataError('INVALID_ARGUMENT', 'login needs a username');
  if (options.password === '')
    throw new StrataError('INVALID_ARGUMENT', 'login needs a password (use -p or --password-stdin)');
  const credentials: Credentials = { username: options.username, password: options.password };
  const client = await RegistryClient.create(registry, { ...options, credentials });
  await client.ping();
  // A registry with token auth may answer /v2/ without a challenge for anonymous clients;
  // the token server is what judges the credentials.
  await client.auth.verify();
  await new CredentialStore(options.dockerConfigDir).store(registry, credentials);
  return registry;
}

/** `docker logout`: forgets the credentials; false when there were none. */
export async function logout(
  server: string | undefined,
  options: { dockerConfigDir?: string } = {},
): Promise<{ registry: string; removed: boolean }> {
  const registry = registryFromServer(server);
  const removed = await new CredentialStore(options.dockerConfigDir).erase(registry);
  return { registry, removed };
}
