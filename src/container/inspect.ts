/**
 * What `inspect` and `ps` show of a container, in docker's shapes: the inspect JSON (the fields
 * tools read: State with Health, Config, HostConfig, Mounts, NetworkSettings.Ports, GraphDriver).
 */
import type { ContainerPaths } from './store.js';
import type { ContainerRecord, ContainerState } from './types.js';

function portKey(port: { containerPort: number; protocol: string }): string {
  return `${port.containerPort}/${port.protocol}`;
}

export function inspectContainer(
  record: ContainerRecord,
  state: ContainerState,
  paths: ContainerPaths,
  lowerDirs: readonly string[] = [],
): Record<string, unknown> {
  const running = state.status === 'running';
  const ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const port of running ? state.ports : record.ports) {
    const list = ports[portKey(port)] ?? [];
    list.push({
      HostIp: port.hostIp === '' ? '0.0.0.0' : port.hostIp,
      HostPort: port.hostPort === 0 ? '' : String(port.hostPort),
    });
    ports[portKey(port)] = list;
  }
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const port of record.ports) {
    (bindings[portKey(port)] ??= []).push({
      HostIp: port.hostIp,
      HostPort: port.hostPort === 0 ? '' : String(port.hostPort),
    });
  }
  const [path, ...args] = [...record.entrypoint, ...record.cmd];
  return {
    Id: record.id,
    Created: record.created,
    Path: path ?? '',
    Args: args,
    State: {
      Status: state.status,
      Running: running,
      Paused: false,
      Restarting: state.status === 'restarting',
      OOMKilled: false,
      Dead: state.status === 'dead',
      Pid: state.pid,
      ExitCode: state.exitCode,
      Error: state.error,
      StartedAt: state.startedAt,
      FinishedAt: state.finishedAt,
      ...(state.health ? { Health: state.health } : {}),
    },
    Image: record.image.id,
    LogPath: paths.log,
    Name: `/${record.name}`,
    RestartCount: state.restartCount,
    Driver: 'overlay2',
    Platform: 'linux',
    HostConfig: {
      Binds: record.mounts
        .filter((mount) => mount.type !== 'tmpfs' && !mount.anonymous)
        .map((mount) => `${mount.source}:${mount.destination}${mount.readonly ? ':ro' : ''}`),
      NetworkMode: record.network === 'private' ? 'pasta' : record.network,
      PortBindings: bindings,
      RestartPolicy: { Name: record.restart.name, MaximumRetryCount: record.restart.maximumRetryCount },
      AutoRemove: record.autoRemove,
      ReadonlyRootfs: record.readOnly,
      Init: record.init,
      ExtraHosts: record.extraHosts,
    },
    GraphDriver: {
      Name: 'overlay2',
      Data: {
        LowerDir: lowerDirs.join(':'),
        MergedDir: paths.rootfs,
        UpperDir: paths.upper,
        WorkDir: paths.work,
      },
    },
    Mounts: record.mounts.map((mount) => ({
      Type: mount.type,
      ...(mount.type === 'volume' ? { Name: mount.source } : {}),
      Source: mount.type === 'tmpfs' ? '' : mount.source,
      Destination: mount.destination,
      Mode: mount.readonly ? 'ro' : '',
      RW: !mount.readonly,
    })),
    Config: {
      Hostname: record.hostname,
      User: record.user,
      Tty: record.tty,
      OpenStdin: record.openStdin,
      Env: record.env,
      Cmd: record.cmd,
      Entrypoint: record.entrypoint.length > 0 ? record.entrypoint : null,
      Image: record.image.reference,
      WorkingDir: record.workingDir,
      Labels: record.labels,
      StopSignal: record.stopSignal,
      StopTimeout: record.stopTimeoutSeconds,
      ExposedPorts: Object.fromEntries(record.ports.map((port) => [portKey(port), {}])),
      ...(record.healthcheck
        ? {
            Healthcheck: {
              Test: record.healthcheck.test,
              Interval: record.healthcheck.interval,
              Timeout: record.healthcheck.timeout,
              StartPeriod: record.healthcheck.startPeriod,
              StartInterval: record.healthcheck.startInterval,
              Retries: record.healthcheck.retries,
            },
          }
        : {}),
    },
    NetworkSettings: { Ports: ports },
  };
}
