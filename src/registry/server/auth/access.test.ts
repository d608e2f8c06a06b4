import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { isStrataError } from '../../../errors.js';
import {
  anonymousHasAccess,
  effectiveRules,
  globToRegExp,
  grantedActions,
  parseAccessRules,
  type AccessRule,
} from './access.js';
import { parseScope } from './scope.js';
import type { Scope } from './types.js';

function scope(text: string): Scope {
  const parsed = parseScope(text);
  assert.ok(parsed, text);
  return parsed;
}

describe('repository globs', () => {
  test('* stays within one path component, ** crosses them, the rest is literal', () => {
    const cases: [string, string, boolean][] = [
      ['team/*', 'team/app', true],
      ['team/*', 'team/a/b', false],
      ['team/*', 'team', false],
      ['team/**', 'team/a/b', true],
      ['team/**', 'team', false],
      ['**', 'localhost:5000/x/y', true],
      ['*', 'a', true],
      ['*', 'a/b', false],
      ['*/app', 'x/app', true],
      ['a.b', 'a.b', true],
      ['a.b', 'axb', false],
      ['lib+(x)', 'lib+(x)', true],
      ['team/app', 'team/app', true],
      ['team/app', 'team/app2', false],
      ['*-cache/**', 'build-cache/x/y', true],
    ];
    for (const [glob, name, expected] of cases) {
      assert.equal(globToRegExp(glob).test(name), expected, `${glob} vs ${name}`);
    }
  });
});

describe('granted actions', () => {
  const rules: AccessRule[] = [
    { account: 'alice', repository: 'alice/**', actions: ['*'] },
    { account: '*', repository: 'library/*', actions: ['pull'] },
    { account: 'bob', repository: 'library/*', actions: ['push'] },
    { account: 'anonymous', repository: 'public/**', actions: ['pull'] },
    { account: 'admin', type: 'registry', repository: 'catalog', actions: ['*'] },
  ];

  test('the intersection of requested and allowed, in request order', () => {
    assert.deepEqual(grantedActions(rules, 'alice', scope('repository:alice/app:push,pull,delete')), [
      'push',
      'pull',
      'delete',
    ]);
    assert.deepEqual(grantedActions(rules, 'alice', scope('repository:library/debian:pull,push')), ['pull']);
    assert.deepEqual(grantedActions(rules, 'carol', scope('repository:alice/app:pull')), []);
  });

  test('the union over every matching rule', () => {
    assert.deepEqual(grantedActions(rules, 'bob', scope('repository:library/debian:pull,push,delete')), [
      'pull',
      'push',
    ]);
  });

  test('* is any authenticated user, never an anonymous one', () => {
    assert.deepEqual(grantedActions(rules, 'zed', scope('repository:library/x:pull')), ['pull']);
    assert.deepEqual(grantedActions(rules, undefined, scope('repository:library/x:pull')), []);
  });

  test('anonymous rules apply to requests without credentials, and to users as a floor', () => {
    assert.deepEqual(grantedActions(rules, undefined, scope('repository:public/a/b:pull,push')), ['pull']);
    assert.deepEqual(grantedActions(rules, 'carol', scope('repository:public/a:pull')), ['pull']);
  });

  test('a requested * is granted only by a * rule', () => {
    assert.deepEqual(grantedActions(rules, 'alice', scope('repository:alice/x:*')), ['*']);
    assert.deepEqual(grantedActions(rules, 'bob', scope('repository:library/x:*')), []);
  });

  test('the catalog needs a registry rule; repository rules never match it', () => {
    assert.deepEqual(grantedActions(rules, 'admin', scope('registry:catalog:*')), ['*']);
    assert.deepEqual(grantedActions(rules, 'alice', scope('registry:catalog:*')), []);
    assert.deepEqual(
      grantedActions([{ account: '*', repository: '**', actions: ['*'] }], 'a', scope('registry:catalog:*')),
      [],
    );
  });

  test('names with a host and port match globs like any other', () => {
    const hostRules: AccessRule[] = [
      { account: 'ci', repository: 'localhost:5000/*', actions: ['pull', 'push'] },
    ];
    assert.deepEqual(grantedActions(hostRules, 'ci', scope('repository:localhost:5000/app:pull,push')), [
      'pull',
      'push',
    ]);
    assert.deepEqual(grantedActions(hostRules, 'ci', scope('repository:localhost:5001/app:pull')), []);
  });
});

describe('default policy', () => {
  test('no rules configured: every authenticated user gets everything, the catalog too', () => {
    const rules = effectiveRules(undefined, false);
    assert.deepEqual(grantedActions(rules, 'anyone', scope('repository:x/y:pull,push,delete')), [
      'pull',
      'push',
      'delete',
    ]);
    assert.deepEqual(grantedActions(rules, 'anyone', scope('registry:catalog:*')), ['*']);
    assert.deepEqual(grantedActions(rules, undefined, scope('repository:x/y:pull')), []);
    assert.equal(anonymousHasAccess(rules), false);
  });

  test('anonymous read: anonymous may pull any repository, nothing else', () => {
    const rules = effectiveRules(undefined, true);
    assert.deepEqual(grantedActions(rules, undefined, scope('repository:x/y:pull,push,delete')), ['pull']);
    assert.deepEqual(grantedActions(rules, undefined, scope('registry:catalog:*')), []);
    assert.equal(anonymousHasAccess(rules), true);
  });

  test('configured rules replace the default; an empty list grants nothing', () => {
    const none = effectiveRules([], false);
    assert.deepEqual(grantedActions(none, 'anyone', scope('repository:x:pull')), []);
    const withAnonymousRead = effectiveRules([], true);
    assert.deepEqual(grantedActions(withAnonymousRead, 'anyone', scope('repository:x:pull,push')), ['pull']);
  });
});

describe('access rules from a configuration file', () => {
  test('valid rules come back as given', () => {
    const value = [
      { account: 'alice', repository: 'alice/**', actions: ['pull', 'push'] },
      { account: 'admin', type: 'registry', repository: 'catalog', actions: ['*'] },
    ];
    assert.deepEqual(parseAccessRules(value, 'strata.yaml'), value);
  });

  test('errors name the file, the line when known, and the rule', () => {
    const bad: [unknown, RegExp][] = [
      ['nope', /^strata\.yaml: access rules must be a list$/],
      [[{ repository: 'a', actions: ['pull'] }], /strata\.yaml:7: access rule 1: "account"/],
      [[{ account: 'a', repository: 'a', actions: ['pul'] }], /access rule 1: unknown action "pul"/],
      [[{ account: 'a', repository: 'a', actions: [] }], /"actions" must be a non-empty list/],
      [[{ account: 'a', repository: 'a b', actions: ['pull'] }], /"repository"/],
      [[{ account: 'a', type: 'user', repository: 'a', actions: ['pull'] }], /"type"/],
      [[{ account: 'a', type: 'registry', repository: 'x', actions: ['*'] }], /about "catalog"/],
      [[{ account: 'a', repository: 'a', actions: ['pull'], extra: 1 }], /unknown field "extra"/],
      [[null], /expected a mapping/],
    ];
    for (const [value, message] of bad) {
      assert.throws(
        () => parseAccessRules(value, 'strata.yaml', (index) => (index === 0 ? 7 : undefined)),
        (err: unknown) => isStrataError(err, 'INVALID_CONFIG') && message.test(err.message),
        String(message),
      );
    }
  });

  test('without line numbers the message names the file and the rule', () => {
    assert.throws(
      () =>
        parseAccessRules(
          [{ account: 'a', repository: 'a', actions: ['pull'] }, {}],
          'config.yaml#auth.access',
        ),
      /^StrataError: config\.yaml#auth\.access: access rule 2: /,
    );
  });
});
