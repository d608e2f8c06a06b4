/**
 * What strata keeps about a container (docs/run.md): the run configuration resolved once at
 * `run`/`create` time (`containers/<id>/config.json`, never changed afterwards) and the state
 * the supervisor updates as the container runs (`containers/<id>/state.json`).
 */
import type { Descriptor } from '../oci/types.js';

export type RestartPolicyName = 'no' | 'on-failure' | 'always' | 'unless-stopped';

export interface RestartPolicy {
  name: RestartPolicyName;
  /** on-failure:N; 0 = no limit. */
  maximumRetryCount: number;
}

export type Protocol = 'tcp' | 'udp';

/** One `-p`: host address and port (0 = any free port, chosen at start) to a container port. */
export interface PortBinding {
  /** '' = every address of the host (docker's 0.0.0.0). */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
}

export type ContainerMountType = 'bind' | 'volume' | 'tmpfs';

export interface ContainerMount {
  type: ContainerMountType;
  /** Host path (bind), volume name ('' until an anonymous volume is named), unused for tmpfs. */
  source: string;
  /** Absolute path in the container. */
  destination: string;
  readonly: boolean;
  /** tmpfs options (`size=…`, `mode=…`). */
  options: string[];
  /** Anonymous volume: made for this container (an image VOLUME or `-v /path`), removed by `rm -v`. */
  anonymous?: boolean;
}

export type NetworkName = 'host' | 'none' | 'private';

/** A HEALTHCHECK with Docker's defaults filled in; durations in nanoseconds like the image config. */
export interface HealthSettings {
  /** `['CMD', …]` or `['CMD-SHELL', script]`. */
  test: string[];
  interval: number;
  timeout: number;
  startPeriod: number;
  startInterval: number;
  retries: number;
}

/** `containers/<id>/config.json`. */
export interface ContainerRecord {
  id: string;
  name: string;
  created: string;
  image: {
    /** As the user typed it. */
    reference: string;
    /** Image ID (`sha256:…`). */
    id: string;
    /** The manifest (or index) the container was made from: a GC root while the container exists. */
    target: Descriptor;
  };
  /** The process: entrypoint + command, resolved as docker resolves them. */
  entrypoint: string[];
  cmd: string[];
  env: string[];
  /** `-u` or the image's USER ('' = root). */
  user: string;
  workingDir: string;
  hostname: string;
  network: NetworkName;
  ports: PortBinding[];
  mounts: ContainerMount[];
  readOnly: boolean;
  init: boolean;
  tty: boolean;
  openStdin: boolean;
  restart: RestartPolicy;
  autoRemove: boolean;
  stopSignal: string;
  stopTimeoutSeconds: number;
  healthcheck?: HealthSettings;
  /** `--add-host` lines for /etc/hosts. */
  extraHosts: string[];
  labels: Record<string, string>;
}

export type ContainerStatus = 'created' | 'running' | 'restarting' | 'exited' | 'dead';

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface HealthState {
  Status: HealthStatus;
  FailingStreak: number;
  Log: HealthLogEntry[];
}

/** A published port as it was bound at start (a random host port is known from then on). */
export interface BoundPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
}

/** `containers/<id>/state.json`: written by the supervisor while it lives, else by the CLI. */
export interface ContainerState {
  status: ContainerStatus;
  /** Host pid of the container's first process while running, else 0. */
  pid: number;
  /** The strata process that owns runc for this container (foreground run or supervisor). */
  supervisorPid: number;
  /** Its start time (/proc/<pid>/stat), which tells it from a later process with its pid. */
  supervisorStart?: string;
  /** The pasta daemon of a private network while the container runs. */
  pastaPid?: number;
  exitCode: number;
  /** Why the container could not start, if it could not. */
  error: string;
  startedAt: string;
  finishedAt: string;
  restartCount: number;
  health?: HealthState;
  ports: BoundPort[];
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function initialState(): ContainerState {
  return {
    status: 'created',
    pid: 0,
    supervisorPid: 0,
    exitCode: 0,
    error: '',
    startedAt: ZERO_TIME,
    finishedAt: ZERO_TIME,
    restartCount: 0,
    ports: [],
  };
}
