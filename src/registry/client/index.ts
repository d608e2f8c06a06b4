/** The registry client: pull, push, login/logout over the OCI distribution protocol. */
export { pullImage, pullAllTags, type PullOptions } from './pull.js';
export {
  defaultPushGzipLevel,
  pushCompressionLevel,
  pushImage,
  pushAllTags,
  type PushOptions,
  type PushResult,
} from './push.js';
export { login, logout, registryFromServer, type LoginOptions } from './login.js';
export { CredentialStore, dockerConfigDir, type Credentials } from './credentials.js';
export { RegistryError } from './errors.js';
export { DEFAULT_CERTS_DIR, DEFAULT_TIMEOUTS, isInsecureHost, type Timeouts } from './hosts.js';
export type { BlobStatus, ProgressListener, TransferEvent } from './progress.js';
