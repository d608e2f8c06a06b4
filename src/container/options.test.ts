import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  mergeEnv,
  normalizeSignal,
  parseEnvFile,
  parseEnvFlags,
  parseMountFlag,
  parsePublish,
  parseRestart,
  parseVolumeFlag,
  publishAll,
  resolveCommand,
  resolveHealthcheck,
  validateName,
} from './options.js';

describe('environment', () => {
  test('env files: literal values, comments and blanks skipped, KEY alone from the host', () => {
    const entries = parseEnvFile('# c\nA=1\n  B="quoted"\n\nHOSTONLY\nUNSET\nC=a=b\r\n', 'f.env', {
      HOSTONLY: 'h',
    });
    assert.deepEqual(entries, ['A=1', 'B="quoted"', 'HOSTONLY=h', 'C=a=b']);
    assert.throws(() => parseEnvFile('=nokey\n', 'f.env', {}), /f\.env:1: variable name is empty/);
  });

  test('-e flags and merging: later wins, first position kept', () => {
    assert.deepEqual(parseEnvFlags(['X=1', 'Y', 'Z'], { Y: 'y' }), ['X=1', 'Y=y']);
    assert.throws(() => parseEnvFlags(['=v'], {}), /invalid environment variable/);
    assert.deepEqual(mergeEnv(['PATH=/bin', 'A=1'], ['A=2', 'B=3']), ['PATH=/bin', 'A=2', 'B=3']);
  });
});

describe('command', () => {
  test('ENTRYPOINT + CMD, --entrypoint drops the image CMD, arguments replace CMD', () => {
    const image = { Entrypoint: ['/entry'], Cmd: ['default'] };
    assert.deepEqual(resolveCommand(image, undefined, []), { entrypoint: ['/entry'], cmd: ['default'] });
    assert.deepEqual(resolveCommand(image, undefined, ['x']), { entrypoint: ['/entry'], cmd: ['x'] });
    assert.deepEqual(resolveCommand(image, 'sh', []), { entrypoint: ['sh'], cmd: [] });
    assert.deepEqual(resolveCommand(image, '', ['ls']), { entrypoint: [], cmd: ['ls'] });
    assert.throws(() => resolveCommand({}, undefined, []), /no command specified/);
  });
});

describe('mounts', () => {
  test('-v: bind, named volume, anonymous volume, options', () => {
    assert.deepEqual(parseVolumeFlag('/host:/data:ro', '/cwd'), {
      type: 'bind',
      source: '/host',
      destination: '/data',
      readonly: true,
      options: [],
    });
    assert.equal(parseVolumeFlag('./rel:/data', '/cwd').source, '/cwd/rel');
    assert.deepEqual(parseVolumeFlag('cache:/var/cache/', '/cwd'), {
      type: 'volume',
      source: 'cache',
      destination: '/var/cache',
      readonly: false,
      options: [],
    });
    assert.equal(parseVolumeFlag('/data', '/cwd').anonymous, true);
    assert.throws(() => parseVolumeFlag('/a:relative', '/cwd'), /not an absolute path/);
    assert.throws(() => parseVolumeFlag('/a:/b:bogus', '/cwd'), /unknown option bogus/);
    assert.throws(() => parseVolumeFlag('/a:/', '/cwd'), /cannot mount over \//);
  });

  test('--mount: bind, volume, tmpfs with options; bad fields are refused', () => {
    assert.deepEqual(parseMountFlag('type=bind,src=/h,dst=/c,readonly', '/'), {
      type: 'bind',
      source: '/h',
      destination: '/c',
      readonly: true,
      options: [],
    });
    assert.deepEqual(parseMountFlag('type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777', '/'), {
      type: 'tmpfs',
      source: '',
      destination: '/t',
      readonly: false,
      options: ['size=64m', 'mode=1777'],
    });
    assert.equal(parseMountFlag('type=volume,target=/v', '/').anonymous, true);
    assert.throws(() => parseMountFlag('type=bind,target=/c', '/'), /source is required/);
    assert.throws(() => parseMountFlag('type=nfs,target=/c', '/'), /type must be/);
    assert.throws(() => parseMountFlag('type=bind,src=/a,target=/c,colour=red', '/'), /unknown field colour/);
    assert.throws(() => parseMountFlag('type=tmpfs,source=/x,target=/t', '/'), /a tmpfs has no source/);
  });
});

describe('ports', () => {
  test('-p forms', () => {
    assert.deepEqual(parsePublish('8080:80'), {
      hostIp: '',
      hostPort: 8080,
      containerPort: 80,
      protocol: 'tcp',
    });
    assert.deepEqual(parsePublish('127.0.0.1:8080:80/udp'), {
      hostIp: '127.0.0.1',
      hostPort: 8080,
      containerPort: 80,
      protocol: 'udp',
    });
    assert.deepEqual(parsePublish('127.0.0.1::80'), {
      hostIp: '127.0.0.1',
      hostPort: 0,
      containerPort: 80,
      protocol: 'tcp',
    });
    assert.deepEqual(parsePublish('[::1]:8080:80'), {
      hostIp: '::1',
      hostPort: 8080,
      containerPort: 80,
      protocol: 'tcp',
    });
    assert.deepEqual(parsePublish('80'), { hostIp: '', hostPort: 0, containerPort: 80, protocol: 'tcp' });
    assert.throws(() => parsePublish('99999:80'), /invalid host port/);
    assert.throws(() => parsePublish('80/sctp'), /invalid protocol/);
    assert.throws(() => parsePublish('8000-8001:80-81'), /ranges are not supported/);
    assert.throws(() => parsePublish('host.name:80:80'), /invalid IP address/);
  });

  test('-P publishes every exposed port', () => {
    assert.deepEqual(publishAll({ '80/tcp': {}, '53/udp': {} }), [
      { hostIp: '', hostPort: 0, containerPort: 80, protocol: 'tcp' },
      { hostIp: '', hostPort: 0, containerPort: 53, protocol: 'udp' },
    ]);
  });
});

describe('policies and settings', () => {
  test('restart policies', () => {
    assert.deepEqual(parseRestart('on-failure:3'), { name: 'on-failure', maximumRetryCount: 3 });
    assert.deepEqual(parseRestart('always'), { name: 'always', maximumRetryCount: 0 });
    assert.throws(() => parseRestart('always:3'), /only on-failure takes a retry count/);
    assert.throws(() => parseRestart('sometimes'), /invalid restart policy/);
  });

  test('healthcheck: image values, flag overrides, defaults, disabling', () => {
    const image = { Test: ['CMD', 'check'], Interval: 5e9, Retries: 0 };
    assert.deepEqual(resolveHealthcheck(image, {}), {
      test: ['CMD', 'check'],
      interval: 5e9,
      timeout: 30e9,
      startPeriod: 0,
      startInterval: 5e9,
      retries: 3,
    });
    assert.deepEqual(resolveHealthcheck(image, { cmd: 'true', retries: 1 })?.test, ['CMD-SHELL', 'true']);
    assert.equal(resolveHealthcheck(image, { disabled: true }), undefined);
    assert.equal(resolveHealthcheck({ Test: ['NONE'] }, {}), undefined);
    assert.equal(resolveHealthcheck(undefined, {}), undefined);
  });

  test('names and signals', () => {
    assert.equal(validateName('web-1.a_b'), 'web-1.a_b');
    assert.throws(() => validateName('-bad'), /invalid container name/);
    assert.equal(normalizeSignal('usr1'), 'SIGUSR1');
    assert.equal(normalizeSignal('SIGTERM'), 'SIGTERM');
    assert.equal(normalizeSignal('9'), '9');
    assert.throws(() => normalizeSignal('SIGNOPE'), /invalid signal/);
  });
});
