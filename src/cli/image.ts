import { Command, Option } from 'commander';
import { stat } from 'node:fs/promises';
import type { CliContext } from './context.js';
import { formatRows, type Column } from './format.js';
import { compileTemplate } from './gotemplate.js';
import { humanSize, shortId, timeAgo } from './units.js';
import { openInput, writeOutputAtomically, writeStdout } from './io.js';
import {
  exportImage,
  findImage,
  imageHistory,
  imageSize,
  importImage,
  inspectImage,
  listImages,
  loadImages,
  mountImage,
  unmountImage,
  pruneImages,
  removeImages,
  canonicalName,
  saveImages,
  tagImage,
  type RemovalReport,
  type ResolvedImage,
} from '../index.js';
import { familiarName, familiarString, parseReference } from '../oci/reference.js';
import { parsePlatform } from '../oci/platform.js';
import { StrataError } from '../errors.js';
import { confirm } from './prompt.js';
import { collect } from './options.js';

/** One `docker images` row; field names are what `--format` templates use. */
interface ImageRow {
  ID: string;
  Repository: string;
  Tag: string;
  Digest: string;
  CreatedSince: string;
  CreatedAt: string;
  Size: string;
  VirtualSize: string;
  Containers: string;
  SharedSize: string;
  UniqueSize: string;
}

/** `docker images` rows: one per name, `<none>` for untagged images, newest first. */
function imageRows(images: readonly ResolvedImage[], noTrunc: boolean): ImageRow[] {
  const rows: Array<ImageRow & { sortKey: string }> = [];
  for (const image of images) {
    const id = noTrunc ? image.id : shortId(image.id);
    const common = {
      ID: id,
      CreatedSince: timeAgo(image.config.created),
      CreatedAt: image.config.created ?? '',
      Size: humanSize(imageSize(image)),
      VirtualSize: humanSize(imageSize(image)),
      Containers: 'N/A',
      SharedSize: 'N/A',
      UniqueSize: 'N/A',
      sortKey: image.config.created ?? '',
    };
    const names = image.names.map((name) => parseReference(name, { defaultTag: false }));
    if (names.length === 0) rows.push({ ...common, Repository: '<none>', Tag: '<none>', Digest: '<none>' });
    for (const reference of names) {
      rows.push({
        ...common,
        Repository: familiarName(reference),
        Tag: reference.tag ?? '<none>',
        Digest: image.target.digest,
      });
    }
  }
  rows.sort((a, b) => (a.sortKey === b.sortKey ? 0 : a.sortKey < b.sortKey ? 1 : -1));
  return rows.map(({ sortKey: _sortKey, ...row }) => row);
}

/** Image-level `--filter`s: dangling and label (reference filters select rows, see defineImages). */
function imageFilter(filters: readonly string[]): (image: ResolvedImage) => boolean {
  const predicates = filters.map((filter): ((image: ResolvedImage) => boolean) => {
    const eq = filter.indexOf('=');
    if (eq < 0)
      throw new StrataError('INVALID_ARGUMENT', `bad format of filter (expected name=value): ${filter}`);
    const key = filter.slice(0, eq);
    const value = filter.slice(eq + 1);
    switch (key) {
      case 'dangling':
        if (value !== 'true' && value !== 'false') {
          throw new StrataError('INVALID_ARGUMENT', `invalid filter 'dangling=${value}'`);
        }
        return (image) => (image.names.length === 0) === (value === 'true');
      case 'label': {
        const [labelKey, labelValue] = value.split('=', 2) as [string, string | undefined];
        return (image) => {
          const labels = image.config.config?.Labels ?? {};
          return labelKey in labels && (labelValue === undefined || labels[labelKey] === labelValue);
        };
      }
      default:
        throw new StrataError('INVALID_ARGUMENT', `invalid filter '${key}'`);
    }
  });
  return (image) => predicates.every((predicate) => predicate(image));
}

/** Go's path.Match, which docker uses for `reference=` filters: `*` does not cross `/`. */
function globToRegExp(glob: string): RegExp {
  const source = glob
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\*/g, '[^/]*')
    .replace(/\?/g, '[^/]');
  return new RegExp(`^${source}$`);
}

const IMAGE_COLUMNS: Column[] = [
  { field: 'Repository', header: 'REPOSITORY' },
  { field: 'Tag', header: 'TAG' },
  { field: 'ID', header: 'IMAGE ID' },
  { field: 'CreatedSince', header: 'CREATED' },
  { field: 'Size', header: 'SIZE' },
];

function defineImages(command: Command, ctx: CliContext): Command {
  return command
    .description('List images')
    .argument('[repository]', 'only images of this REPOSITORY[:TAG]')
    .option('-a, --all', 'show all images (strata keeps no intermediate images; same as default)')
    .option('-q, --quiet', 'only show image IDs')
    .option('--digests', 'show digests')
    .option('--no-trunc', "don't truncate output")
    .option(
      '-f, --filter <filter>',
      'filter output (dangling=true|false, reference=PATTERN, label=KEY[=VALUE])',
      collect,
      [],
    )
    .option('--format <format>', 'pretty-print with a Go template, "table …" or "json"')
    .action(
      async (
        repository: string | undefined,
        options: { quiet?: boolean; digests?: boolean; trunc: boolean; filter: string[]; format?: string },
      ) => {
        const store = await ctx.openStore();
        const references = options.filter
          .filter((f) => f.startsWith('reference='))
          .map((f) => globToRegExp(f.slice('reference='.length)));
        const matches = imageFilter(options.filter.filter((f) => !f.startsWith('reference=')));
        const images = (await listImages(store)).filter(matches);
        let rows = imageRows(images, !options.trunc);
        // Like docker, a reference filter selects names (rows), not whole images.
        rows = rows.filter((row) =>
          references.every(
            (pattern) => pattern.test(row.Repository) || pattern.test(`${row.Repository}:${row.Tag}`),
          ),
        );
        if (repository !== undefined) {
          const wanted = parseReference(repository, { defaultTag: false });
          rows = rows.filter(
            (row) =>
              row.Repository === familiarName(wanted) && (wanted.tag === undefined || row.Tag === wanted.tag),
          );
        }
        if (options.quiet) {
          ctx.stdout.write(rows.map((row) => `${row.ID}\n`).join(''));
          return;
        }
        const columns = options.digests
          ? [
              IMAGE_COLUMNS[0],
              IMAGE_COLUMNS[1],
              { field: 'Digest', header: 'DIGEST' },
              ...IMAGE_COLUMNS.slice(2),
            ]
          : IMAGE_COLUMNS;
        ctx.stdout.write(formatRows(rows, columns as Column[], options.format));
      },
    );
}

function defineTag(command: Command, ctx: CliContext): Command {
  return command
    .description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE')
    .argument('<source>', 'SOURCE_IMAGE[:TAG] or image ID')
    .argument('<target>', 'TARGET_IMAGE[:TAG]')
    .action(async (source: string, target: string) => {
      await tagImage(await ctx.openStore(), source, target);
    });
}

export function printRemoval(ctx: CliContext, report: RemovalReport, style: 'rmi' | 'prune'): void {
  if (style === 'rmi') {
    for (const event of report.events)
      ctx.print(`${event.kind === 'untagged' ? 'Untagged' : 'Deleted'}: ${event.value}`);
    return;
  }
  if (report.events.length > 0) {
    ctx.print('Deleted Images:');
    for (const event of report.events) ctx.print(`${event.kind}: ${event.value}`);
    ctx.print('');
  }
  ctx.print(`Total reclaimed space: ${humanSize(report.bytesFreed)}`);
}

function defineRmi(command: Command, ctx: CliContext): Command {
  return command
    .description('Remove one or more images')
    .argument('<images...>', 'names or IDs')
    .option('-f, --force', 'force removal of an image referenced by several names')
    .option('--no-prune', 'do not delete unreferenced blobs')
    .action(async (images: string[], options: { force?: boolean; prune: boolean }) => {
      const report = await removeImages(await ctx.openStore(), images, options);
      printRemoval(ctx, report, 'rmi');
    });
}

function definePrune(command: Command, ctx: CliContext): Command {
  return command
    .description('Remove unused images')
    .option('-a, --all', 'remove all unused images, not just dangling ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (options: { all?: boolean; force?: boolean }) => {
      const warning = options.all
        ? 'WARNING! This will remove all images without at least one container associated to them.'
        : 'WARNING! This will remove all dangling images.';
      if (!options.force && !(await confirm(ctx, warning))) return;
      printRemoval(ctx, await pruneImages(await ctx.openStore(), options), 'prune');
    });
}

/** `containers`: the top-level `inspect` also finds containers (an image of that name first). */
function defineInspect(command: Command, ctx: CliContext, containers = false): Command {
  return command
    .description(`Display detailed information on one or more images${containers ? ' or containers' : ''}`)
    .argument('<images...>', 'names or IDs')
    .option('-f, --format <format>', 'format the output using the given Go template')
    .action(async (names: string[], options: { format?: string }) => {
      const store = await ctx.openStore();
      const found: Array<Record<string, unknown>> = [];
      const missing: string[] = [];
      for (const name of names) {
        try {
          found.push(inspectImage(await findImage(store, name)));
        } catch (err) {
          if (!(err instanceof StrataError && err.code === 'NOT_FOUND')) throw err;
          const container = containers
            ? await (await import('./container.js')).inspectContainers(store, [name])
            : undefined;
          if (container && container.found.length > 0) found.push(...container.found);
          else missing.push(err.message);
        }
      }
      if (options.format !== undefined) {
        const template = compileTemplate(options.format);
        for (const item of found) ctx.print(template.execute(item));
      } else {
        ctx.print(JSON.stringify(found, null, 4));
      }
      if (missing.length > 0) throw new StrataError('NOT_FOUND', missing.join('\n'));
    });
}

const HISTORY_COLUMNS: Column[] = [
  { field: 'ID', header: 'IMAGE' },
  { field: 'CreatedSince', header: 'CREATED' },
  { field: 'CreatedBy', header: 'CREATED BY' },
  { field: 'Size', header: 'SIZE' },
  { field: 'Comment', header: 'COMMENT' },
];

/** docker's Ellipsis: cut to `width` characters, the last one an ellipsis. */
function ellipsis(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}…`;
}

/** Docker's boolean flags take `-H=false`; commander hands the short form over as `=false`. */
function parseBoolFlag(value: string): boolean {
  const text = value.replace(/^=/, '').toLowerCase();
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new StrataError('INVALID_ARGUMENT', `invalid boolean value "${value}" (use true or false)`);
}

function defineHistory(command: Command, ctx: CliContext): Command {
  return command
    .description('Show the history of an image')
    .argument('<image>', 'name or ID')
    .addOption(
      new Option('-H, --human [bool]', 'print sizes and dates in human readable format')
        .default(true)
        .argParser(parseBoolFlag),
    )
    .option('--no-trunc', "don't truncate output")
    .option('-q, --quiet', 'only show image IDs')
    .option('--format <format>', 'pretty-print with a Go template, "table …" or "json"')
    .action(
      async (name: string, options: { human: boolean; trunc: boolean; quiet?: boolean; format?: string }) => {
        const image = await findImage(await ctx.openStore(), name);
        const rows = imageHistory(image).map((row) => {
          const createdBy = row.createdBy.replaceAll('\t', ' ');
          return {
            ID: row.id === '<missing>' || !options.trunc ? row.id : shortId(row.id),
            CreatedSince: options.human ? timeAgo(row.created) : (row.created ?? ''),
            CreatedAt: row.created ?? '',
            CreatedBy: options.trunc ? ellipsis(createdBy, 45) : createdBy,
            Size: options.human ? humanSize(row.size) : String(row.size),
            Comment: row.comment,
          };
        });
        if (options.quiet) {
          ctx.stdout.write(rows.map((row) => `${row.ID}\n`).join(''));
          return;
        }
        ctx.stdout.write(formatRows(rows, HISTORY_COLUMNS, options.format));
      },
    );
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function defineSave(command: Command, ctx: CliContext): Command {
  return command
    .description('Save one or more images to a tar archive (streamed to STDOUT by default)')
    .argument('<images...>', 'names or IDs')
    .option('-o, --output <file>', 'write to a file (or, with --format oci, a directory ending in /)')
    .addOption(new Option('--format <format>', 'archive format').choices(['docker', 'oci']).default('docker'))
    .action(async (names: string[], options: { output?: string; format: 'docker' | 'oci' }) => {
      const store = await ctx.openStore();
      const requests = [];
      for (const name of names) {
        const image = await findImage(store, name);
        // Saving by name records only that name, as docker does; by ID, all of the image's names.
        const canonical = image.names.find((n) => n === canonicalName(name));
        requests.push({ image, names: canonical ? [canonical] : image.names });
      }
      if (
        options.output !== undefined &&
        options.format === 'oci' &&
        (options.output.endsWith('/') || (await isDirectory(options.output)))
      ) {
        const { saveLayoutDirectory } = await import('../image/save.js');
        await saveLayoutDirectory(store, requests, options.output);
        return;
      }
      const stream = await saveImages(store, requests, options.format);
      if (options.output === undefined) await writeStdout(stream, 'save');
      else await writeOutputAtomically(options.output, stream);
    });
}

function defineLoad(command: Command, ctx: CliContext): Command {
  return command
    .description(
      'Load images from a tar archive (docker-archive or OCI layout, optionally compressed) or STDIN',
    )
    .option('-i, --input <file>', 'read from a tar archive file or an OCI layout directory, instead of STDIN')
    .option('-q, --quiet', 'suppress the load output')
    .action(async (options: { input?: string; quiet?: boolean }) => {
      const store = await ctx.openStore();
      const loaded = await loadImages(
        store,
        options.input !== undefined && (await isDirectory(options.input))
          ? { directory: options.input }
          : { stream: await openInput(options.input, 'load') },
      );
      if (options.quiet) return;
      for (const image of loaded) {
        if (image.names.length === 0) ctx.print(`Loaded image ID: ${image.id}`);
        for (const name of image.names) ctx.print(`Loaded image: ${familiarString(parseReference(name))}`);
      }
    });
}

function defineImport(command: Command, ctx: CliContext): Command {
  return command
    .description('Import the contents from a tarball to create a filesystem image')
    .argument('<file>', 'tarball (plain, gzip or zstd), or - for STDIN')
    .argument('[reference]', 'REPOSITORY[:TAG]')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction to the created image', collect, [])
    .option('-m, --message <message>', 'set the commit message for the imported image')
    .option('--platform <platform>', 'set the platform (os/arch[/variant])')
    .action(
      async (
        file: string,
        reference: string | undefined,
        options: { change: string[]; message?: string; platform?: string },
      ) => {
        if (/^https?:\/\//.test(file)) {
          throw new StrataError(
            'UNSUPPORTED',
            'importing from a URL is not supported yet: download the tarball and import the file',
          );
        }
        const store = await ctx.openStore();
        const image = await importImage(store, await openInput(file, 'import'), {
          reference,
          changes: options.change,
          message: options.message,
          platform: options.platform === undefined ? undefined : parsePlatform(options.platform),
          sourceName: file,
        });
        ctx.print(image.id);
      },
    );
}

function defineExport(command: Command, ctx: CliContext): Command {
  return command
    .description("Export an image's flattened filesystem as a tar archive")
    .argument('<image>', 'name or ID')
    .option('-o, --output <file>', 'write to a file, instead of STDOUT')
    .action(async (name: string, options: { output?: string }) => {
      const store = await ctx.openStore();
      const stream = await exportImage(store, await findImage(store, name));
      if (options.output === undefined) await writeStdout(stream, 'export');
      else await writeOutputAtomically(options.output, stream);
    });
}

function defineMount(image: Command, ctx: CliContext): void {
  image
    .command('mount')
    .description("Mount an image's filesystem read-only at DIR (layers unpacked once into snapshots)")
    .argument('<image>', 'name or ID')
    .argument('<dir>', 'mount point (created if missing)')
    .action(async (name: string, dir: string) => {
      const store = await ctx.openStore();
      await mountImage(store, await findImage(store, name), dir);
      ctx.print(dir);
    });
  image
    .command('unmount')
    .alias('umount')
    .description('Unmount an image mounted with `strata image mount`')
    .argument('<dir>', 'mount point')
    .action(async (dir: string) => {
      await unmountImage(dir);
    });
}

export function registerImageCommands(program: Command, ctx: CliContext): void {
  const image = program.command('image').description('Manage images');
  defineImages(image.command('ls').alias('list'), ctx);
  defineTag(image.command('tag'), ctx);
  defineRmi(image.command('rm').alias('remove'), ctx);
  definePrune(image.command('prune'), ctx);
  defineInspect(image.command('inspect'), ctx);
  defineHistory(image.command('history'), ctx);
  defineSave(image.command('save'), ctx);
  defineLoad(image.command('load'), ctx);
  defineImport(image.command('import'), ctx);
  defineMount(image, ctx);

  defineImages(program.command('images'), ctx);
  defineTag(program.command('tag'), ctx);
  defineRmi(program.command('rmi'), ctx);
  defineInspect(program.command('inspect'), ctx, true);
  defineHistory(program.command('history'), ctx);
  defineSave(program.command('save'), ctx);
  defineLoad(program.command('load'), ctx);
  defineImport(program.command('import'), ctx);
  defineExport(program.command('export'), ctx);
}
