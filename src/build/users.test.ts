import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import fc from 'fast-check';

import { isStrataError } from '../errors.js';
import { resolveInRoot, resolveOwner, supplementaryGroups } from './users.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  '# a comment',
  'app:x:1000:1001::/home/app:/bin/sh',
  'svc:x:998:997::/:/usr/sbin/nologin',
  'broken:x:notanumber:1::/:/bin/sh',
  '',
].join('\n');
const GROUP = [
  'root:x:0:',
  'staff:x:50:app,svc',
  'appgrp:x:1001:',
  'docker:x:999:app',
  'again:x:50:app',
  '',
].join('\n');

let scratch: string;
let rootfs: string;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-users-'));
  rootfs = join(scratch, 'rootfs');
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(join(rootfs, 'etc/passwd'), PASSWD);
  await writeFile(join(rootfs, 'etc/group'), GROUP);
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('resolveOwner', () => {
  it('looks names up in the image, user only gives the primary group', async () => {
    assert.deepEqual(await resolveOwner('app', rootfs), { uid: 1000, gid: 1001 });
    assert.deepEqual(await resolveOwner('root', rootfs), { uid: 0, gid: 0 });
  });

  it('takes numbers as they are; a numeric user alone means uid:uid for COPY', async () => {
    assert.deepEqual(await resolveOwner('10', rootfs), { uid: 10, gid: 10 });
    assert.deepEqual(await resolveOwner('1000', rootfs), { uid: 1000, gid: 1000 });
    assert.deepEqual(await resolveOwner('10:20', rootfs), { uid: 10, gid: 20 });
  });

  it('for RUN a numeric user takes its passwd gid, else 0', async () => {
    assert.deepEqual(await resolveOwner('1000', rootfs, { numericUserGroup: 'run' }), {
      uid: 1000,
      gid: 1001,
    });
    assert.deepEqual(await resolveOwner('4242', rootfs, { numericUserGroup: 'run' }), { uid: 4242, gid: 0 });
  });

  it('mixes names and numbers, and :group alone means root', async () => {
    assert.deepEqual(await resolveOwner('app:staff', rootfs), { uid: 1000, gid: 50 });
    assert.deepEqual(await resolveOwner('7:docker', rootfs), { uid: 7, gid: 999 });
    assert.deepEqual(await resolveOwner('app:5', rootfs), { uid: 1000, gid: 5 });
    assert.deepEqual(await resolveOwner(':staff', rootfs), { uid: 0, gid: 50 });
  });

  it('names an unknown user or group in the error', async () => {
    await assert.rejects(resolveOwner('nobody', rootfs), (err: unknown) => {
      assert.ok(isStrataError(err, 'INVALID_ARGUMENT'));
      assert.equal(err.message, 'unable to find user nobody: no matching entries in passwd file');
      return true;
    });
    await assert.rejects(resolveOwner('app:nogroup', rootfs), {
      message: 'unable to find group nogroup: no matching entries in group file',
    });
  });

  it('rejects malformed specs', async () => {
    await assert.rejects(resolveOwner('', rootfs), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(resolveOwner('a:b:c', rootfs), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(resolveOwner(':', rootfs), { code: 'INVALID_ARGUMENT' });
  });

  it('an image without /etc/passwd knows no names but takes numbers', async () => {
    const empty = join(scratch, 'empty');
    await mkdir(empty, { recursive: true });
    assert.deepEqual(await resolveOwner('5:6', empty), { uid: 5, gid: 6 });
    await assert.rejects(resolveOwner('app', empty), /unable to find user app/);
  });

  it('follows an absolute /etc symlink inside the image, never to the host', async () => {
    const linked = join(scratch, 'linked');
    await mkdir(join(linked, 'real/etc'), { recursive: true });
    await writeFile(join(linked, 'real/etc/passwd'), 'inside:x:4321:4322::/:/bin/sh\n');
    await symlink('/real/etc', join(linked, 'etc'));
    assert.deepEqual(await resolveOwner('inside', linked), { uid: 4321, gid: 4322 });
    // The host's root user must not be found through an escaping link.
    const escaping = join(scratch, 'escaping');
    await mkdir(escaping, { recursive: true });
    const hostEtc = join(scratch, 'host-etc');
    await mkdir(hostEtc, { recursive: true });
    await writeFile(join(hostEtc, 'passwd'), 'hostonly:x:1:1::/:/bin/sh\n');
    await symlink(`../../../../../../..${hostEtc}`, join(escaping, 'etc'));
    await assert.rejects(resolveOwner('hostonly', escaping), /unable to find user hostonly/);
  });
});

describe('supplementaryGroups', () => {
  it('lists the groups naming the user, in file order without repeats', async () => {
    assert.deepEqual(await supplementaryGroups('app', rootfs), [50, 999]);
    assert.deepEqual(await supplementaryGroups('svc', rootfs), [50]);
  });

  it('finds the name of a numeric user through passwd', async () => {
    assert.deepEqual(await supplementaryGroups('1000', rootfs), [50, 999]);
    assert.deepEqual(await supplementaryGroups('4242', rootfs), []);
  });

  it('gives none with an explicit group', async () => {
    assert.deepEqual(await supplementaryGroups('app:staff', rootfs), []);
  });
});

describe('resolveInRoot', () => {
  it('keeps missing components lexically and cleans .. at the root', async () => {
    assert.equal(await resolveInRoot(rootfs, '/a/b/../c'), join(rootfs, 'a/c'));
    assert.equal(await resolveInRoot(rootfs, '../../../x'), join(rootfs, 'x'));
    assert.equal(await resolveInRoot(rootfs, '/'), rootfs);
    assert.equal(await resolveInRoot(`${rootfs}/`, 'etc/passwd'), join(rootfs, 'etc/passwd'));
  });

  it('follows relative and absolute links inside the root, including the last component', async () => {
    const root = join(scratch, 'links');
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await symlink('usr/lib', join(root, 'lib'));
    await symlink('/usr/lib/../../../../etc', join(root, 'up'));
    await symlink('../lib', join(root, 'usr/rel'));
    assert.equal(await resolveInRoot(root, '/lib/x.so'), join(root, 'usr/lib/x.so'));
    assert.equal(await resolveInRoot(root, '/up/passwd'), join(root, 'etc/passwd'));
    assert.equal(await resolveInRoot(root, '/usr/rel'), join(root, 'usr/lib'));
  });

  it('reports a symlink loop as UNSAFE_PATH', async () => {
    const root = join(scratch, 'loop');
    await mkdir(root, { recursive: true });
    await symlink('b', join(root, 'a'));
    await symlink('a', join(root, 'b'));
    await assert.rejects(resolveInRoot(root, '/a/x'), { code: 'UNSAFE_PATH' });
  });

  it('never leaves the root, whatever the links and the path (property)', async () => {
    const root = join(scratch, 'property');
    await mkdir(join(root, 'd/e'), { recursive: true });
    await symlink('../../..', join(root, 'd/up'));
    await symlink('/d/e/../../../..', join(root, 'abs'));
    await symlink('/d', join(root, 'd/e/back'));
    const segment = fc.constantFrom('..', '.', 'd', 'e', 'up', 'abs', 'back', 'x', '');
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { maxLength: 10 }), fc.boolean(), async (segments, absolute) => {
        const path = (absolute ? '/' : '') + segments.join('/');
        const resolved = await resolveInRoot(root, path);
        assert.ok(resolved === root || resolved.startsWith(`${root}/`), `${path} → ${resolved}`);
      }),
      { numRuns: 300 },
    );
  });
});
