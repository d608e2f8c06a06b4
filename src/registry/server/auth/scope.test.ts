import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { actionsCover, formatScope, formatScopes, mergeScopes, parseScope, parseScopes } from './scope.js';
import type { Action, Scope } from './types.js';

describe('scopes', () => {
  test('parses a repository scope with several actions', () => {
    assert.deepEqual(parseScope('repository:library/alpine:pull,push'), {
      type: 'repository',
      name: 'library/alpine',
      actions: ['pull', 'push'],
    });
  });

  test('a name with host:port keeps its colon (type from the front, actions from the back)', () => {
    assert.deepEqual(parseScope('repository:localhost:5000/team/app:pull'), {
      type: 'repository',
      name: 'localhost:5000/team/app',
      actions: ['pull'],
    });
    assert.deepEqual(parseScope('repository:registry.example.com:443/a:delete'), {
      type: 'repository',
      name: 'registry.example.com:443/a',
      actions: ['delete'],
    });
  });

  test('the catalog scope', () => {
    assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
  });

  test('unknown actions are dropped, repeated ones kept once, an empty action list is kept', () => {
    assert.deepEqual(parseScope('repository:a:pull,admin,pull,,push')?.actions, ['pull', 'push']);
    assert.deepEqual(parseScope('repository:a:admin'), { type: 'repository', name: 'a', actions: [] });
    assert.deepEqual(parseScope('repository:a:'), { type: 'repository', name: 'a', actions: [] });
  });

  test('what is not a scope', () => {
    for (const text of [
      '',
      'repository',
      'repository:a',
      ':a:pull',
      'repository::pull',
      'user:a:pull',
      'a b:c:d',
    ]) {
      assert.equal(parseScope(text), undefined, text);
    }
  });

  test('several scopes: repeated parameters, space-joined, or both; junk skipped', () => {
    assert.deepEqual(
      parseScopes(['repository:a:pull repository:b:push', '  registry:catalog:*  ', 'nonsense']).map(
        formatScope,
      ),
      ['repository:a:pull', 'repository:b:push', 'registry:catalog:*'],
    );
    assert.deepEqual(parseScopes('repository:a:pull\trepository:b:pull').length, 2);
    assert.deepEqual(parseScopes([]), []);
  });

  test('formats scopes, space-joined', () => {
    assert.equal(
      formatScopes([
        { type: 'repository', name: 'h:5000/a', actions: ['pull', 'push'] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
      ]),
      'repository:h:5000/a:pull,push registry:catalog:*',
    );
  });

  test('merges the actions asked for one resource', () => {
    assert.deepEqual(
      mergeScopes(parseScopes('repository:a:pull repository:b:pull repository:a:push,pull')).map(formatScope),
      ['repository:a:pull,push', 'repository:b:pull'],
    );
  });

  test('* covers every action', () => {
    assert.equal(actionsCover(['*'], 'delete'), true);
    assert.equal(actionsCover(['pull'], 'push'), false);
    assert.equal(actionsCover(['pull', 'push'], 'push'), true);
  });
});

const component = fc.stringMatching(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/);
const repositoryName = fc
  .tuple(
    fc.option(
      fc.tuple(fc.stringMatching(/^[a-z0-9]+(?:\.[a-z0-9]+)*$/), fc.integer({ min: 1, max: 65535 })),
      { nil: undefined },
    ),
    fc.array(component, { minLength: 1, maxLength: 4 }),
  )
  .map(([host, path]) => (host === undefined ? path.join('/') : `${host[0]}:${host[1]}/${path.join('/')}`));
const actions = fc.uniqueArray(fc.constantFrom<Action>('pull', 'push', 'delete', '*'), { maxLength: 4 });
const scope: fc.Arbitrary<Scope> = fc.oneof(
  fc
    .record({ type: fc.constant('repository' as const), name: repositoryName, actions })
    .map((record) => ({ ...record })),
  fc.constant<Scope>({ type: 'registry', name: 'catalog', actions: ['*'] }),
);

describe('scope properties', () => {
  test('parse(format(scope)) is the scope', () => {
    fc.assert(fc.property(scope, (value) => assert.deepEqual(parseScope(formatScope(value)), value)));
  });

  test('parseScopes(formatScopes(list)) is the list', () => {
    fc.assert(
      fc.property(fc.array(scope, { maxLength: 6 }), (list) =>
        assert.deepEqual(parseScopes(formatScopes(list)), list),
      ),
    );
  });

  test('parsing any text never throws and yields only known actions', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        for (const parsed of parseScopes(text)) {
          assert.ok(['repository', 'registry'].includes(parsed.type));
          assert.ok(parsed.name !== '' && !/\s/.test(parsed.name));
          for (const action of parsed.actions) assert.ok(['pull', 'push', 'delete', '*'].includes(action));
        }
      }),
    );
  });
});
