import { join } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { humanSize } from './units.js';
import { StrataError } from '../errors.js';
import { parseGoDuration } from '../oci/duration.js';
import { resolveStoreRoot } from '../store/paths.js';
import { loadRegistryServerConfig, type RegistryServerConfig } from '../registry/server/config.js';
import { collectGarbage } from '../registry/server/gc.js';
import { openRegistryStorage, startRegistryServer, withGcLock } from '../registry/server/server.js';

interface ServeFlags {
  addr?: string;
  config?: string;
  tlsCert?: string;
  tlsKey?: string;
  htpasswd?: string;
  anonymousRead?: boolean;
  gcInterval?: string;
}

interface GcFlags {
  config?: string;
  dryRun?: boolean;
  deleteUntagged?: boolean;
  grace?: string;
}

/**
 * `strata registry serve|gc`. The global `--root` names the registry's storage directory here
 * (as `registry serve --root DIR`); without it the config's storage is used, else
 * `<strata store root>/registry`.
 */
export function registerRegistryServerCommands(program: Command, ctx: CliContext): void {
  const registry = program.command('registry').description('serve an OCI distribution registry');

  registry
    .command('serve')
    .description('serve an OCI distribution 1.1 registry (a drop-in for distribution/registry:2)')
    .option('--addr <host:port>', 'address to listen on (default :5000)')
    .option('--config <file>', "a config file (distribution's config.yml keys, plus strata's)")
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--htpasswd <file>', 'require HTTP Basic auth against this htpasswd file (bcrypt)')
    .option('--anonymous-read', 'let requests without credentials pull')
    .option('--gc-interval <duration>', 'collect garbage online this often (e.g. 1h)')
    .addHelpText('after', '\nStorage: --root DIR (global option) names the storage directory.')
    .action(async (flags: ServeFlags) => {
      const config = await loadConfig(ctx, flags.config, {
        ...definedFlags(flags),
        ...(ctx.rootOption() !== undefined ? { root: ctx.rootOption() } : {}),
      });
      const server = await startRegistryServer(config, {
        log: (line) => ctx.warn(line),
        accessLog: (line) => ctx.print(line),
      });
      ctx.warn(
        `strata registry listening on ${server.url} (storage: ${describeStorage(config)}, auth: ${describeAuth(config)})`,
      );
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      ctx.warn(`${signal}: finishing in-flight requests, then stopping`);
      await server.close();
    });

  registry
    .command('gc')
    .description('delete blobs no manifest references (safe while the registry serves)')
    .option('--config <file>', 'the config file the registry serves with')
    .option('--dry-run', 'report what would be deleted, delete nothing')
    .option('--delete-untagged', 'also delete manifests no tag reaches')
    .option(
      '--grace <duration>',
      'spare blobs used more recently than this (default: the config gc.grace, 1h)',
    )
    .action(async (flags: GcFlags) => {
      const config = await loadConfig(ctx, flags.config, {
        ...(ctx.rootOption() !== undefined ? { root: ctx.rootOption() } : {}),
      });
      if (config.storage.driver === 'inmemory')
        throw new StrataError('INVALID_ARGUMENT', 'gc: in-memory storage belongs to a running server');
      let gracePeriodMs = config.gc.gracePeriodMs;
      if (flags.grace !== undefined) {
        const nanoseconds = parseGoDuration(flags.grace);
        if (nanoseconds === undefined)
          throw new StrataError('INVALID_ARGUMENT', `--grace: invalid duration "${flags.grace}"`);
        gracePeriodMs = nanoseconds / 1e6;
      }
      const driver = await openRegistryStorage(config);
      const report = await withGcLock(config, () =>
        collectGarbage(driver, {
          dryRun: flags.dryRun === true,
          deleteUntagged: flags.deleteUntagged === true,
          gracePeriodMs,
          uploadPurgeAgeMs: config.gc.uploadPurgeAgeMs,
          log: (line) => ctx.print(line),
        }),
      );
      ctx.print(`${report.dryRun ? 'would free' : 'freed'} ${humanSize(report.bytesFreed)}`);
    });
}

async function loadConfig(
  ctx: CliContext,
  file: string | undefined,
  flags: Parameters<typeof loadRegistryServerConfig>[0]['flags'],
): Promise<RegistryServerConfig> {
  return loadRegistryServerConfig({
    ...(file !== undefined ? { file } : {}),
    flags: flags ?? {},
    defaultRoot: join(resolveStoreRoot(undefined), 'registry'),
  });
}

function definedFlags(flags: ServeFlags): Omit<ServeFlags, 'config'> {
  const { config: _config, ...rest } = flags;
  return Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined));
}

function describeStorage(config: RegistryServerConfig): string {
  return config.storage.driver === 'filesystem' ? `filesystem ${config.storage.root}` : 'in memory';
}

function describeAuth(config: RegistryServerConfig): string {
  const anonymous = config.anonymousRead ? ', anonymous pulls' : '';
  if (config.auth.kind === 'none') return 'none';
  if (config.auth.kind === 'htpasswd') return `htpasswd ${config.auth.path}${anonymous}`;
  return `token (${config.auth.builtin ? 'built-in issuer' : `issuer ${config.auth.issuer}`})${anonymous}`;
}
