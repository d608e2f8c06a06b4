/**
 * Makes a build context from a fidelity case: a temporary copy of the case directory with
 * normalized modes, plus whatever git cannot carry (or should not carry as binary blobs):
 * tar archives for ADD, setuid/sticky modes, hardlinks, symlinks, empty directories.
 */
import { spawn } from 'node:child_process';
import { chmod, cp, link, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Files of a case directory that describe the case rather than belong to its context. */
export const CASE_META_FILES = new Set(['args.json', 'expect.json']);

async function exec(command: string, args: readonly string[], cwd: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`)),
    );
  });
}

/** A checkout's modes depend on the umask and on git's executable bit: make them all plain. */
async function normalizeModes(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await normalizeModes(path);
    else if (entry.isFile()) await chmod(path, 0o644);
  }
}

/**
 * The tree packed into the ADD archives: nested dirs, odd modes, a symlink, a hardlink and a
 * non-root owner, so extraction details (owners kept, links kept) show in the result.
 */
async function makeArchiveTree(root: string): Promise<void> {
  await mkdir(join(root, 'pkg', 'bin'), { recursive: true });
  await mkdir(join(root, 'pkg', 'empty'), { recursive: true });
  await writeFile(join(root, 'pkg', 'README'), 'packed readme\n');
  await writeFile(join(root, 'pkg', 'bin', 'tool'), '#!/bin/sh\necho tool\n');
  await chmod(join(root, 'pkg', 'bin', 'tool'), 0o755);
  await writeFile(join(root, 'pkg', 'secret'), 'only owner\n');
  await chmod(join(root, 'pkg', 'secret'), 0o600);
  await symlink('bin/tool', join(root, 'pkg', 'tool-link'));
  await link(join(root, 'pkg', 'README'), join(root, 'pkg', 'README.hard'));
  await writeFile(join(root, 'top.txt'), 'top level\n');
}

/** GNU tar with fixed owners and times so the archive is the same on every run. */
async function makeArchive(
  context: string,
  name: string,
  compress: 'none' | 'gzip' | 'bzip2' | 'xz',
): Promise<void> {
  const tree = join(context, `.tree-${basename(name)}`);
  await mkdir(tree);
  await makeArchiveTree(tree);
  const tarName = compress === 'none' ? name : `${name}.raw`;
  await exec(
    'tar',
    [
      '--sort=name',
      '--mtime=@1700000000',
      '--owner=1000',
      '--group=1000',
      '--numeric-owner',
      '--format=gnu',
      '-C',
      tree,
      '-cf',
      join(context, tarName),
      '.',
    ],
    context,
  );
  if (compress !== 'none') {
    const flag = compress === 'gzip' ? ['-n', '-9'] : ['-9'];
    await exec(
      'sh',
      ['-c', `${compress} ${flag.join(' ')} -c "$1" > "$2" && rm "$1"`, 'sh', tarName, name],
      context,
    );
  }
  await exec('rm', ['-rf', tree], context);
}

type Generator = (context: string) => Promise<void>;

/** A directory with a relative and an absolute symlink to its subdirectory, for COPY through links. */
async function makeLayout(ctx: string): Promise<void> {
  await mkdir(join(ctx, 'layout', 'real'), { recursive: true });
  await writeFile(join(ctx, 'layout', 'real', 'existing'), 'existing\n');
  await symlink('real', join(ctx, 'layout', 'alias'));
  await symlink('/opt/layout/real', join(ctx, 'layout', 'abs-alias'));
}

/** Per-case generators, by case directory name. */
const GENERATORS: Record<string, Generator> = {
  'add-tar': (ctx) => makeArchive(ctx, 'archive.tar', 'none'),
  'add-tar-gz': (ctx) => makeArchive(ctx, 'archive.tar.gz', 'gzip'),
  'add-tar-bz2': (ctx) => makeArchive(ctx, 'archive.tar.bz2', 'bzip2'),
  'add-tar-xz': (ctx) => makeArchive(ctx, 'archive.tar.xz', 'xz'),
  'add-tar-merge': (ctx) => makeArchive(ctx, 'archive.tgz', 'gzip'),
  'copy-archive-verbatim': (ctx) => makeArchive(ctx, 'archive.tar', 'none'),
  'copy-modes': async (ctx) => {
    await mkdir(join(ctx, 'modes', 'sticky'), { recursive: true });
    await mkdir(join(ctx, 'modes', 'setgid'), { recursive: true });
    await mkdir(join(ctx, 'modes', 'private'), { recursive: true });
    await writeFile(join(ctx, 'modes', 'setuid-bin'), 'pretend binary\n');
    await writeFile(join(ctx, 'modes', 'owner-only'), 'secret\n');
    await writeFile(join(ctx, 'modes', 'exec'), '#!/bin/sh\n');
    await writeFile(join(ctx, 'modes', 'readonly'), 'ro\n');
    await writeFile(join(ctx, 'modes', 'sticky', 'f'), 'f\n');
    await chmod(join(ctx, 'modes', 'setuid-bin'), 0o4755);
    await chmod(join(ctx, 'modes', 'owner-only'), 0o600);
    await chmod(join(ctx, 'modes', 'exec'), 0o755);
    await chmod(join(ctx, 'modes', 'readonly'), 0o444);
    await chmod(join(ctx, 'modes', 'sticky'), 0o1777);
    await chmod(join(ctx, 'modes', 'setgid'), 0o2775);
    await chmod(join(ctx, 'modes', 'private'), 0o700);
  },
  'copy-symlinks': async (ctx) => {
    await mkdir(join(ctx, 'tree', 'sub'), { recursive: true });
    await writeFile(join(ctx, 'tree', 'sub', 'real.txt'), 'real\n');
    await symlink('sub/real.txt', join(ctx, 'tree', 'rel-link'));
    await symlink('/etc/passwd', join(ctx, 'tree', 'abs-link'));
    await symlink('does-not-exist', join(ctx, 'tree', 'dangling'));
    await symlink('sub', join(ctx, 'tree', 'dir-link'));
    await writeFile(join(ctx, 'target.txt'), 'pointed to\n');
    await symlink('target.txt', join(ctx, 'top-link'));
  },
  'copy-hardlinks': async (ctx) => {
    await mkdir(join(ctx, 'hl'), { recursive: true });
    await writeFile(join(ctx, 'hl', 'a'), 'shared content\n');
    await link(join(ctx, 'hl', 'a'), join(ctx, 'hl', 'b'));
    await link(join(ctx, 'hl', 'a'), join(ctx, 'hl', 'c'));
    await writeFile(join(ctx, 'hl', 'lonely'), 'no links\n');
  },
  'copy-empty-dirs': async (ctx) => {
    await mkdir(join(ctx, 'tree', 'empty'), { recursive: true });
    await mkdir(join(ctx, 'tree', 'nested', 'deeper', 'deepest'), { recursive: true });
    await mkdir(join(ctx, 'alone'), { recursive: true });
    await writeFile(join(ctx, 'tree', 'file'), 'file\n');
  },
  'copy-dest-symlink': makeLayout,
  // Modern cases (test/fidelity/modern) share this table: their names differ from the classic ones.
  'copy-link': makeLayout,
  'add-archive-chown': (ctx) => makeArchive(ctx, 'archive.tar', 'none'),
  'chmod-symbolic': async (ctx) => {
    await mkdir(join(ctx, 'tree', 'sub'), { recursive: true });
    await writeFile(join(ctx, 'tree', 'data.txt'), 'data\n');
    await writeFile(join(ctx, 'tree', 'secret'), 'secret\n');
    await writeFile(join(ctx, 'tree', 'exec.sh'), '#!/bin/sh\n');
    await writeFile(join(ctx, 'tree', 'sub', 'inner'), 'inner\n');
    await chmod(join(ctx, 'tree', 'secret'), 0o600);
    await chmod(join(ctx, 'tree', 'exec.sh'), 0o755);
    await chmod(join(ctx, 'tree', 'sub'), 0o700);
    await chmod(join(ctx, 'private'), 0o600);
  },
  dockerignore: async (ctx) => {
    // Empty directories are not in git; the ignore rules must also drop a matched empty one.
    await mkdir(join(ctx, 'build', 'cache'), { recursive: true });
  },
};

/** Copies `caseDir` to `context` (which must not exist) and runs the case's generator. */
export async function prepareCase(caseDir: string, context: string): Promise<void> {
  await cp(caseDir, context, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (source) => !(dirname(source) === caseDir && CASE_META_FILES.has(basename(source))),
  });
  await normalizeModes(context);
  const generate = GENERATORS[basename(caseDir)];
  if (generate) await generate(context);
}

/** Names of the cases that have generated content (for listing in messages). */
export function generatedCases(): string[] {
  return Object.keys(GENERATORS);
}
