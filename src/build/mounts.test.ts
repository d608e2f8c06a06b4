import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseMount } from './mounts.js';
import { runArguments } from './run-step.js';

test('--mount defaults follow BuildKit', () => {
  assert.deepEqual(parseMount('target=/src'), {
    type: 'bind',
    target: '/src',
    source: '/',
    readwrite: false,
  });
  assert.deepEqual(parseMount('type=bind,from=build,src=/out,dst=/in,rw'), {
    type: 'bind',
    target: '/in',
    source: '/out',
    from: 'build',
    readwrite: true,
  });
  const cache = parseMount('type=cache,target=/root/.npm');
  assert.equal(cache.type === 'cache' && cache.id, '/root/.npm', 'a cache id defaults to its target');
  assert.equal(cache.type === 'cache' && cache.mode, 0o755);
  assert.equal(cache.type === 'cache' && cache.sharing, 'shared');
  assert.deepEqual(parseMount('type=secret,id=npmrc'), {
    type: 'secret',
    id: 'npmrc',
    target: '/run/secrets/npmrc',
    required: false,
    mode: 0o400,
    uid: 0,
    gid: 0,
  });
  const envOnly = parseMount('type=secret,id=token,env=TOKEN');
  assert.equal(envOnly.type === 'secret' && envOnly.target, undefined, 'env= alone mounts no file');
  assert.equal(parseMount('type=secret,target=/run/secrets/aws').type === 'secret' ? 'aws' : '', 'aws');
  assert.deepEqual(parseMount('type=tmpfs,target=/tmp,size=64m'), {
    type: 'tmpfs',
    target: '/tmp',
    size: 64 * 1024 * 1024,
  });
  const ssh = parseMount('type=ssh', 1);
  assert.equal(ssh.type === 'ssh' && ssh.target, '/run/buildkit/ssh_agent.1');
  assert.deepEqual(parseMount('"type=bind","target=/a,b"'), {
    type: 'bind',
    target: '/a,b',
    source: '/',
    readwrite: false,
  });
});

test('--mount mistakes are clear errors', () => {
  assert.throws(() => parseMount('type=cache'), /requires a target/);
  assert.throws(() => parseMount('type=nfs,target=/x'), /unsupported mount type "nfs"/);
  assert.throws(() => parseMount('type=tmpfs,target=/x,from=a'), /unexpected key 'from'/);
  assert.throws(() => parseMount('type=cache,target=/x,sharing=sometimes'), /unrecognized sharing parameter/);
  assert.throws(() => parseMount('type=cache,target=/x,mode=9'), /invalid value for mode/);
  assert.throws(() => parseMount('type=secret,src=/etc/passwd'), /use id/);
});

test('RUN argv: exec form, shell form, lone heredoc, heredocs read by the shell', () => {
  const shell = ['/bin/sh', '-c'];
  const heredoc = (name: string, content: string, chomp = false) => ({
    name,
    content,
    chomp,
    expand: true,
    fileDescriptor: 0,
  });
  assert.deepEqual(runArguments({ form: 'exec', args: ['echo', 'hi'], heredocs: [] }, shell), {
    args: ['echo', 'hi'],
  });
  assert.deepEqual(runArguments({ form: 'shell', args: ['echo hi'], heredocs: [] }, shell), {
    args: ['/bin/sh', '-c', 'echo hi'],
  });
  assert.deepEqual(
    runArguments({ form: 'shell', args: ['<<EOF'], heredocs: [heredoc('EOF', 'echo a\n')] }, shell),
    {
      args: ['/bin/sh', '-c', 'echo a\n'],
    },
  );
  assert.deepEqual(
    runArguments({ form: 'shell', args: ['<<-EOF'], heredocs: [heredoc('EOF', '\techo a\n', true)] }, shell),
    {
      args: ['/bin/sh', '-c', 'echo a\n'],
    },
  );
  assert.deepEqual(
    runArguments(
      { form: 'shell', args: ['<<EOF'], heredocs: [heredoc('EOF', '#!/usr/bin/env python3\nprint(1)\n')] },
      shell,
    ),
    {
      args: [],
      script: { name: 'EOF', data: '#!/usr/bin/env python3\nprint(1)\n' },
    },
  );
  assert.deepEqual(
    runArguments({ form: 'shell', args: ['cat <<A > /a'], heredocs: [heredoc('A', 'x\n')] }, shell),
    {
      args: ['/bin/sh', '-c', 'cat <<A > /a\nx\nA'],
    },
  );
});
