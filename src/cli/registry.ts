import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { humanSize, shortId } from './units.js';
import {
  login,
  logout,
  pullAllTags,
  pullImage,
  pushAllTags,
  pushCompressionLevel,
  pushImage,
  type TransferEvent,
} from '../registry/client/index.js';
import { familiarName, familiarString, formatReference, parseReference } from '../oci/reference.js';
import { parsePlatform } from '../oci/platform.js';
import type { Digest } from '../oci/digest.js';
import { StrataError } from '../errors.js';
import { collect, integer } from './options.js';

type BlobEvent = Extract<TransferEvent, { type: 'blob' }>;

interface Row {
  id: string;
  text: string;
  startedAt: number | undefined;
  lastPrinted: number;
}

/** Plain-line progress is throttled to this per layer; a live terminal redraws this often. */
const PLAIN_INTERVAL_MS = 1000;
const LIVE_INTERVAL_MS = 100;

/**
 * Renders transfer events like docker's pull/push output: one row per layer, redrawn in place on
 * a terminal, or plain lines (status changes, and byte counts once a second) for logs and CI.
 */
export class TransferRenderer {
  private readonly rows = new Map<Digest, Row>();
  private drawnLines = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly live: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  readonly listener = (event: TransferEvent): void => {
    if (event.type === 'warning') {
      this.line(`WARNING: ${event.message}`);
      return;
    }
    if (event.type !== 'blob' || event.kind !== 'layer') return;
    const row = this.rows.get(event.digest) ?? {
      id: shortId(event.digest),
      text: '',
      startedAt: undefined,
      lastPrinted: 0,
    };
    this.rows.set(event.digest, row);
    if ((event.status === 'started' || event.status === 'resumed') && row.startedAt === undefined)
      row.startedAt = this.now();
    const text = this.describe(event, row);
    const changed = text.split(' ')[0] !== row.text.split(' ')[0] || event.status !== 'progress';
    row.text = text;
    if (this.live) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.redraw();
      }, LIVE_INTERVAL_MS);
      return;
    }
    const now = this.now();
    if (changed || now - row.lastPrinted >= PLAIN_INTERVAL_MS) {
      row.lastPrinted = now;
      this.out.write(`${row.id}: ${text}\n`);
    }
  };

  private describe(event: BlobEvent, row: Row): string {
    const pulling = event.direction === 'pull';
    switch (event.status) {
      case 'waiting':
        return 'Waiting';
      case 'exists':
        return pulling ? 'Already exists' : 'Layer already exists';
      case 'mounted':
        return 'Mounted from another repository';
      case 'compressing':
        return 'Compressing';
      case 'retrying':
        return `Retrying (${event.message ?? 'transfer failed'})`;
      case 'done':
        return pulling ? 'Pull complete' : 'Pushed';
      case 'resumed':
        return `Resuming at ${humanSize(event.transferred)}`;
      default: {
        const seconds = row.startedAt !== undefined ? (this.now() - row.startedAt) / 1000 : 0;
        const speed = seconds > 0 ? `  ${humanSize(event.transferred / seconds)}/s` : '';
        return `${pulling ? 'Downloading' : 'Pushing'} ${humanSize(event.transferred)}/${humanSize(event.size)}${speed}`;
      }
    }
  }

  private redraw(): void {
    const lines = [...this.rows.values()].map((row) => `${row.id}: ${row.text}`);
    const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
    this.out.write(`${up}${lines.map((line) => `\x1b[2K${line}\n`).join('')}`);
    this.drawnLines = lines.length;
  }

  /** A line outside the layer rows (a header, a warning). */
  line(text: string): void {
    if (this.live) {
      this.flush();
      this.rows.clear();
      this.drawnLines = 0;
    }
    this.out.write(`${text}\n`);
  }

  /** Draws the final state; call before printing anything after the transfer. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.live && this.rows.size > 0) this.redraw();
  }
}

interface RegistryFlags {
  quiet?: boolean;
  allTags?: boolean;
  insecureRegistry: string[];
}

function renderer(ctx: CliContext, quiet: boolean | undefined): TransferRenderer | undefined {
  if (quiet === true) return undefined;
  const live = (ctx.stderr as NodeJS.WriteStream).isTTY === true && process.env.TERM !== 'dumb';
  return new TransferRenderer(ctx.stderr, live);
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (chunk: Buffer) => chunks.push(chunk));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

/** `pull`, `push`, `login` and `logout`: thin shells over the registry client in the library. */
export function registerRegistryCommands(program: Command, ctx: CliContext): void {
  program
    .command('pull')
    .description('Download an image from a registry')
    .argument('<name>', 'image reference, e.g. busybox, localhost:5000/app:1, app@sha256:…')
    .option('--platform <os/arch[/variant]>', 'platform to pull from a multi-platform image')
    .option('-a, --all-tags', 'download every tagged image in the repository')
    .option('-q, --quiet', 'suppress verbose output')
    .option(
      '--insecure-registry <host>',
      'allow plain HTTP / unverified TLS for this registry (repeatable)',
      collect,
      [],
    )
    .action(async (name: string, options: RegistryFlags & { platform?: string }) => {
      const store = await ctx.openStore();
      const view = renderer(ctx, options.quiet);
      const common = {
        platform: options.platform !== undefined ? parsePlatform(options.platform) : undefined,
        progress: view?.listener,
        insecureRegistries: options.insecureRegistry,
      };
      if (options.allTags === true) {
        const ref = parseReference(name, { defaultTag: false });
        view?.line(`Pulling all tags of ${familiarName(ref)}`);
        const pulled = await pullAllTags(store, name, common);
        view?.flush();
        for (const { name: pulledName } of pulled) ctx.print(pulledName);
        return;
      }
      const ref = parseReference(name, { defaultTag: false });
      if (ref.tag === undefined && ref.digest === undefined) view?.line('Using default tag: latest');
      const full = parseReference(name);
      view?.line(`${full.tag ?? full.digest}: Pulling from ${full.repository}`);
      const before = await store.images.get(formatReference(full));
      const image = await pullImage(store, name, common);
      view?.flush();
      view?.line(`Digest: ${image.target.digest}`);
      view?.line(
        before?.target.digest === image.target.digest
          ? `Status: Image is up to date for ${familiarString(full)}`
          : `Status: Downloaded newer image for ${familiarString(full)}`,
      );
      ctx.print(formatReference(full));
    });

  program
    .command('push')
    .description('Upload an image to a registry')
    .argument('<name>', 'local image name, e.g. localhost:5000/app:1')
    .option('-a, --all-tags', 'push every local tag of the repository')
    .option(
      '--compression-level <level>',
      'gzip level (0-9; default 2 with libdeflate, else 4) for layers stored uncompressed (what build and load store)',
    )
    .option('-q, --quiet', 'suppress verbose output')
    .option(
      '--insecure-registry <host>',
      'allow plain HTTP / unverified TLS for this registry (repeatable)',
      collect,
      [],
    )
    .action(async (name: string, options: RegistryFlags & { compressionLevel?: string }) => {
      const compressionLevel = integer(options.compressionLevel, '--compression-level');
      pushCompressionLevel('gzip', compressionLevel);
      const store = await ctx.openStore();
      const view = renderer(ctx, options.quiet);
      const common = {
        progress: view?.listener,
        insecureRegistries: options.insecureRegistry,
        compressionLevel,
      };
      const ref = parseReference(name, { defaultTag: !options.allTags });
      view?.line(`The push refers to repository [${ref.registry}/${ref.repository}]`);
      const results =
        options.allTags === true
          ? await pushAllTags(store, name, common)
          : [await pushImage(store, name, common)];
      view?.flush();
      for (const result of results) {
        const pushed = parseReference(result.name);
        if (options.quiet === true) ctx.print(familiarString(pushed));
        else ctx.print(`${pushed.tag ?? pushed.digest ?? ''}: digest: ${result.digest} size: ${result.size}`);
      }
    });

  program
    .command('login')
    .description('Log in to a registry (credentials are checked, then stored as docker stores them)')
    .argument('[server]', 'registry host, default Docker Hub')
    .option('-u, --username <username>', 'username')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option(
      '--insecure-registry <host>',
      'allow plain HTTP / unverified TLS for this registry (repeatable)',
      collect,
      [],
    )
    .action(
      async (
        server: string | undefined,
        options: {
          username?: string;
          password?: string;
          passwordStdin?: boolean;
          insecureRegistry: string[];
        },
      ) => {
        let password = options.password;
        if (options.passwordStdin === true) {
          if (password !== undefined)
            throw new StrataError(
              'INVALID_ARGUMENT',
              '--password and --password-stdin are mutually exclusive',
            );
          if (options.username === undefined)
            throw new StrataError('INVALID_ARGUMENT', 'must provide --username with --password-stdin');
          password = (await readStdin()).replace(/\r?\n$/, '');
        } else if (password !== undefined) {
          ctx.warn('WARNING! Using --password via the CLI is insecure. Use --password-stdin.');
        }
        if (options.username === undefined || password === undefined) {
          throw new StrataError(
            'INVALID_ARGUMENT',
            'login needs -u USERNAME and -p PASSWORD or --password-stdin',
          );
        }
        await login(server, {
          username: options.username,
          password,
          insecureRegistries: options.insecureRegistry,
        });
        ctx.print('Login Succeeded');
      },
    );

  program
    .command('logout')
    .description('Remove the stored credentials of a registry')
    .argument('[server]', 'registry host, default Docker Hub')
    .action(async (server: string | undefined) => {
      const { registry, removed } = await logout(server);
      ctx.print(removed ? `Removing login credentials for ${registry}` : `Not logged in to ${registry}`);
    });
}
